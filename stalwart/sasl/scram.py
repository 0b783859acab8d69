"""SCRAM-SHA-256 (RFC 7677, RFC 5802), server side, with stored keys only.

Credentials (RFC 5802 3, stored as RFC 5803 describes)::

    SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, i)
    StoredKey      = SHA-256(HMAC(SaltedPassword, "Client Key"))
    ServerKey      = HMAC(SaltedPassword, "Server Key")
    text form      = "SCRAM-SHA-256$<i>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>"

The server keeps only (salt, i, StoredKey, ServerKey): they let it verify a client and
prove itself, but cannot be replayed as a password. An argon2 hash cannot give them, so
the directory computes ``ScramCredentials.from_password`` whenever it sets a password and
stores the text form next to the argon2 hash (see the SMTP/SASL report and
``docs/architecture.md``). An account without it simply cannot use SCRAM.

Exchange (RFC 5802 5, 7)::

    C: n,,n=user,r=<cnonce>                         client-first (gs2 header "n,,")
    S: r=<cnonce><snonce>,s=<salt>,i=<iterations>   server-first
    C: c=biws,r=<cnonce><snonce>,p=<proof>          client-final
    S: v=<server signature>                         server-final (Success.final)

Rules enforced
- gs2 flag "n" or "y" only: we never offer SCRAM-SHA-256-PLUS, so "p=" (channel binding
  requested) fails; "y" is fine because the server does not support binding (5802 6).
- ``c=`` must be exactly base64 of the gs2 header we received (no binding data).
- The nonce in client-final must be client nonce + our nonce; mandatory extensions
  ("m=") are refused; attributes appear in the RFC's order.
- User names use the ``=2C``/``=3D`` escapes; any other "=" sequence is malformed.
- Unknown users (or users with no SCRAM secret) get a normal-looking server-first with a
  salt derived from a per-process secret and the user name, so a client cannot tell
  "no such user" from "wrong password"; the exchange then fails at the proof.
- The proof is compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any

from .base import (MAX_IDENTITY, Challenge, Failure, LookupCredentials, ServerMechanism,
                   Step, Success)
from .saslprep import saslprep

#: RFC 7677 4: the iteration count SHOULD be at least 4096.
DEFAULT_ITERATIONS = 4096
MIN_ITERATIONS = 4096
_PREFIX = "SCRAM-SHA-256$"
_FAKE_SECRET = os.urandom(32)
_PRINTABLE_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_ATTR = re.compile(r"[A-Za-z]=[^,]*")


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What the directory stores for SCRAM-SHA-256: never the password itself."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(cls, password: str, *, salt: bytes | None = None,
                      iterations: int = DEFAULT_ITERATIONS) -> "ScramCredentials":
        if iterations < 1:
            raise ValueError("iterations must be positive")
        salt = os.urandom(16) if salt is None else salt
        salted = salted_password(password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        return cls(salt, iterations, hashlib.sha256(client_key).digest(),
                   _hmac(salted, b"Server Key"))

    def to_string(self) -> str:
        """RFC 5803 form: ``SCRAM-SHA-256$i:salt$StoredKey:ServerKey``."""
        return (f"{_PREFIX}{self.iterations}:{_b64(self.salt)}$"
                f"{_b64(self.stored_key)}:{_b64(self.server_key)}")

    @classmethod
    def parse(cls, text: str) -> "ScramCredentials":
        """Inverse of ``to_string``; ValueError when malformed."""
        if not isinstance(text, str) or not text.startswith(_PREFIX):
            raise ValueError("not a SCRAM-SHA-256 credential")
        try:
            params, keys = text[len(_PREFIX):].split("$")
            iterations, salt = params.split(":")
            stored, server = keys.split(":")
        except ValueError:
            raise ValueError("malformed SCRAM-SHA-256 credential") from None
        values = [_unb64(v) for v in (salt, stored, server)]
        if not iterations.isdigit() or any(v is None for v in values):
            raise ValueError("malformed SCRAM-SHA-256 credential")
        salt_b, stored_b, server_b = values
        if len(stored_b) != 32 or len(server_b) != 32 or not salt_b:
            raise ValueError("malformed SCRAM-SHA-256 credential")
        return cls(salt_b, int(iterations), stored_b, server_b)


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """Hi() of RFC 5802 2.2 over the SASLprep'd password (stored-string rules)."""
    prepared = saslprep(password, allow_unassigned=False)
    return hashlib.pbkdf2_hmac("sha256", prepared.encode("utf-8"), salt, iterations)


def decode_saslname(text: str) -> str | None:
    """RFC 5802 5.1: ``=2C`` is ",", ``=3D`` is "="; any other "=" is an error."""
    if "," in text:
        return None
    out = []
    i = 0
    while i < len(text):
        if text[i] == "=":
            code = text[i + 1:i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                return None
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def encode_saslname(text: str) -> str:
    return text.replace("=", "=3D").replace(",", "=2C")


class ScramSha256(ServerMechanism):
    name = "SCRAM-SHA-256"
    plaintext = False

    def __init__(self, *, nonce: str | None = None) -> None:
        """``nonce``: the server's nonce part (tests only; default 24 random octets)."""
        super().__init__()
        if nonce is not None and not _PRINTABLE_NONCE.fullmatch(nonce):
            raise ValueError("nonce must be printable ASCII without ','")
        self._snonce = nonce if nonce is not None else _b64(os.urandom(24))
        self._state = "first"
        self._gs2 = ""
        self._first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._authcid = ""
        self._authzid = ""
        self._creds: ScramCredentials | None = None
        self._identity: Any = None

    def _fail(self, reason: str, malformed: bool = True) -> Failure:
        self._state = "done"
        return Failure(reason, self._authcid, malformed=malformed)

    def _start(self, initial: bytes | None) -> Step:
        if initial is None:
            # RFC 4422 5: the client sends client-first in answer to an empty challenge.
            self._state = "wait-first"
            return Challenge(b"")
        return self._client_first(initial)

    def _respond(self, data: bytes) -> Step:
        if self._state == "wait-first":
            return self._client_first(data)
        if self._state == "wait-final":
            return self._client_final(data)
        return self._fail("unexpected response")

    def _client_first(self, data: bytes) -> Step:
        if len(data) > 2 * MAX_IDENTITY + 256:
            return self._fail("client-first too long")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail("client-first is not UTF-8")
        parts = text.split(",")
        if len(parts) < 4:
            return self._fail("client-first too short")
        flag, authz = parts[0], parts[1]
        if flag.startswith("p="):
            return self._fail("channel binding requested but not offered")
        if flag not in ("n", "y"):
            return self._fail("bad gs2 channel binding flag")
        if authz:
            if not authz.startswith("a="):
                return self._fail("bad gs2 authzid")
            decoded = decode_saslname(authz[2:])
            if not decoded:
                return self._fail("bad authzid")
            self._authzid = decoded
        self._gs2 = f"{flag},{authz},"
        bare = parts[2:]
        if bare[0].startswith("m="):
            return self._fail("mandatory extension not supported")
        if not bare[0].startswith("n=") or not bare[1].startswith("r="):
            return self._fail("client-first needs n= then r=")
        user = decode_saslname(bare[0][2:])
        if not user or any(ord(ch) < 0x20 for ch in user):
            return self._fail("bad user name")
        try:
            self._authcid = saslprep(user)
        except ValueError:
            return self._fail("user name prohibited by SASLprep")
        if not all(_ATTR.fullmatch(a) for a in bare[2:]):
            return self._fail("bad extension attribute")
        cnonce = bare[1][2:]
        if not _PRINTABLE_NONCE.fullmatch(cnonce):
            return self._fail("bad client nonce")
        self._nonce = cnonce + self._snonce
        self._first_bare = ",".join(bare)
        self._state = "lookup"
        return LookupCredentials(self._authcid, self._authzid, self.name)

    def _resolve(self, answer: Any) -> Step:
        if self._state != "lookup":
            raise RuntimeError("resolve() outside the credential lookup")
        creds = identity = None
        if answer is not None:
            creds, identity = answer
            if isinstance(creds, str):
                try:
                    creds = ScramCredentials.parse(creds)
                except ValueError:
                    creds = None
        if creds is None:
            # Unknown user: answer as if it existed, then fail the proof.
            fake_salt = _hmac(_FAKE_SECRET, self._authcid.encode("utf-8"))[:16]
            creds = ScramCredentials(fake_salt, DEFAULT_ITERATIONS, b"", b"")
            identity = None
        self._creds = creds
        self._identity = identity
        self._server_first = f"r={self._nonce},s={_b64(creds.salt)},i={creds.iterations}"
        self._state = "wait-final"
        return Challenge(self._server_first.encode("ascii"))

    def _client_final(self, data: bytes) -> Step:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return self._fail("client-final is not ASCII")
        head, sep, proof_attr = text.rpartition(",")
        if not sep or not proof_attr.startswith("p="):
            return self._fail("client-final needs a proof")
        attrs = head.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("c=") or not attrs[1].startswith("r="):
            return self._fail("client-final needs c= then r=")
        if any(a.startswith("m=") for a in attrs[2:]):
            return self._fail("mandatory extension not supported")
        if not all(_ATTR.fullmatch(a) for a in attrs[2:]):
            return self._fail("bad extension attribute")
        binding = _unb64(attrs[0][2:])
        if binding != self._gs2.encode("utf-8"):
            return self._fail("channel binding data does not match the gs2 header")
        if not hmac.compare_digest(attrs[1][2:].encode(), self._nonce.encode()):
            return self._fail("nonce mismatch")
        proof = _unb64(proof_attr[2:])
        if proof is None or len(proof) != 32:
            return self._fail("bad proof encoding")
        creds = self._creds
        assert creds is not None
        auth_message = f"{self._first_bare},{self._server_first},{head}".encode("utf-8")
        self._state = "done"
        if self._identity is None or len(creds.stored_key) != 32:
            return Failure("unknown user or no SCRAM credentials", self._authcid)
        signature = _hmac(creds.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), creds.stored_key):
            return Failure("invalid credentials", self._authcid)
        verifier = _hmac(creds.server_key, auth_message)
        return Success(self._identity, self._authcid, self._authzid,
                       final=f"v={_b64(verifier)}".encode("ascii"))
