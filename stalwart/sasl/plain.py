"""PLAIN (RFC 4616): ``[authzid] NUL authcid NUL passwd`` in one message.

Rules enforced (RFC 4616 2):
- Exactly two NUL separators; authcid and passwd non-empty; every part valid UTF-8
  without control characters (password: without NUL). Up to 320 octets of identity and
  1024 of password are accepted (the RFC asks for at least 255).
- Without an initial response the server sends an empty challenge and the client sends
  the message in its reply (RFC 4422 5, RFC 4954 4).
- The password is handed to the directory as is; PLAIN is offered only over TLS unless
  the operator allows it (the protocol checks ``plaintext``).
"""

from __future__ import annotations

from typing import Any

from .base import (MAX_PASSWORD, Challenge, Failure, ServerMechanism, Step, Success,
                   VerifyPassword, decode_identity)


class Plain(ServerMechanism):
    name = "PLAIN"
    plaintext = True

    def __init__(self) -> None:
        super().__init__()
        self._request: VerifyPassword | None = None

    def _start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return self._respond(initial)

    def _respond(self, data: bytes) -> Step:
        if self._request is not None:
            return Failure("unexpected response", self._request.authcid, malformed=True)
        parts = data.split(b"\x00")
        if len(parts) != 3:
            return Failure("PLAIN message needs exactly two NUL separators", malformed=True)
        authzid = decode_identity(parts[0])
        authcid = decode_identity(parts[1])
        if authzid is None or not authcid:
            return Failure("bad identity in PLAIN message", malformed=True)
        if not parts[2] or len(parts[2]) > MAX_PASSWORD:
            return Failure("empty or over-long password", authcid, malformed=True)
        try:
            password = parts[2].decode("utf-8")
        except UnicodeDecodeError:
            return Failure("password is not UTF-8", authcid, malformed=True)
        self._request = VerifyPassword(authcid, password, authzid)
        return self._request

    def _resolve(self, answer: Any) -> Step:
        req = self._request
        if req is None:
            raise RuntimeError("resolve() before a VerifyPassword step")
        if answer is None:
            return Failure("invalid credentials", req.authcid)
        return Success(answer, req.authcid, req.authzid)
