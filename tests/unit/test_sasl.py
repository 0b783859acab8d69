"""Server-side SASL mechanisms driven as the protocols drive them.

SCRAM-SHA-256 is checked against the RFC 7677 section 3 example and end to end against a
client written here from RFC 5802 section 3 (not from any library)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest

from stalwart import sasl
from stalwart.sasl import (Challenge, Failure, LookupCredentials, ScramCredentials, ScramSha256,
                           Success, VerifyPassword, saslprep)

IDENTITY = {"id": 7, "name": "user"}


# ---------------------------------------------------------------------- PLAIN / LOGIN
def test_plain_initial_response():
    mech = sasl.server_mechanism("plain")
    step = mech.start(b"\x00user\x00pencil")
    assert step == VerifyPassword("user", "pencil", "")
    done = mech.resolve(IDENTITY)
    assert done == Success(IDENTITY, "user", "")
    with pytest.raises(RuntimeError):
        mech.respond(b"again")


def test_plain_without_initial_response_gets_empty_challenge():
    mech = sasl.server_mechanism("PLAIN")
    assert mech.start(None) == Challenge(b"")
    assert mech.respond(b"admin\x00user\x00pw") == VerifyPassword("user", "pw", "admin")
    assert isinstance(mech.resolve(None), Failure)


@pytest.mark.parametrize("message", [
    b"user\x00pencil",                 # one NUL
    b"\x00\x00pencil",                 # empty authcid
    b"\x00user\x00",                   # empty password
    b"\x00us\xffer\x00pw",             # not UTF-8
    b"\x00user\x00pw\x00extra",        # three NULs
    b"\x00us\x01er\x00pw",             # control character in the identity
    b"\x00" + b"u" * 400 + b"\x00pw",  # identity over the limit
    b"\x00user\x00" + b"p" * 2000,     # password over the limit
])
def test_plain_malformed_is_failure_not_exception(message):
    step = sasl.server_mechanism("PLAIN").start(message)
    assert isinstance(step, Failure) and step.malformed


def test_login_asks_username_then_password():
    mech = sasl.server_mechanism("LOGIN")
    assert mech.start(None) == Challenge(b"Username:")
    assert mech.respond(b"user") == Challenge(b"Password:")
    assert mech.respond(b"pencil") == VerifyPassword("user", "pencil", "")
    assert mech.resolve(IDENTITY).identity == IDENTITY


def test_login_initial_response_is_the_user_name():
    mech = sasl.server_mechanism("LOGIN")
    assert mech.start(b"user") == Challenge(b"Password:")
    assert isinstance(mech.respond(b""), Failure)


def test_unknown_mechanism():
    assert sasl.server_mechanism("CRAM-MD5") is None
    assert sasl.is_plaintext("PLAIN") and not sasl.is_plaintext("SCRAM-SHA-256")


# ---------------------------------------------------------------------- SASLprep
def test_saslprep_rfc4013_examples():
    assert saslprep("I\u00adX") == "IX"             # soft hyphen mapped to nothing
    assert saslprep("user") == "user"
    assert saslprep("USER") == "USER"
    assert saslprep("\u00aa") == "a"               # NFKC
    assert saslprep("\u2168") == "IX"              # NFKC
    assert saslprep("a\u00a0b") == "a b"           # non-ASCII space mapped to space
    with pytest.raises(ValueError):
        saslprep("\u0007")                          # prohibited control
    with pytest.raises(ValueError):
        saslprep("\u0627\u0031")                    # bidi: must end with RandALCat


# ---------------------------------------------------------------------- SCRAM
def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


class ScramClient:
    """A SCRAM-SHA-256 client written from RFC 5802 section 3 for these tests."""

    def __init__(self, user: str, password: str, *, nonce: str | None = None,
                 authzid: str = "", gs2_flag: str = "n") -> None:
        self.user, self.password = user, password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        authz = f"a={authzid.replace('=', '=3D').replace(',', '=2C')}" if authzid else ""
        self.gs2 = f"{gs2_flag},{authz},"
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.first_bare = f"n={name},r={self.nonce}"

    def first(self) -> bytes:
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first: bytes, *, tamper: bool = False) -> bytes:
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce)
        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac("sha256", saslprep(self.password).encode(), salt,
                                     int(attrs["i"]))
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={base64.b64encode(self.gs2.encode()).decode()},r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = _hmac(stored_key, self.auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        if tamper:
            proof = bytes([proof[0] ^ 1]) + proof[1:]
        self.server_key = _hmac(salted, b"Server Key")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        expected = base64.b64encode(_hmac(self.server_key, self.auth_message)).decode()
        return server_final.decode() == f"v={expected}"


def _scram(password: str, client: ScramClient, *, stored: str | None = None,
           iterations: int = 4096):
    creds = ScramCredentials.from_password(stored or password, iterations=iterations)
    mech = ScramSha256()
    step = mech.start(client.first())
    assert isinstance(step, LookupCredentials)
    challenge = mech.resolve((creds.to_string(), IDENTITY))
    assert isinstance(challenge, Challenge)
    return mech, mech.respond(client.final(challenge.data))


def test_scram_rfc7677_example():
    """The exchange of RFC 7677 section 3, byte for byte."""
    creds = ScramCredentials.from_password(
        "pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), iterations=4096)
    mech = ScramSha256(nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert mech.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == \
        LookupCredentials("user", "", "SCRAM-SHA-256")
    assert mech.resolve((creds, IDENTITY)) == Challenge(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    done = mech.respond(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert done == Success(IDENTITY, "user", "",
                           final=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_end_to_end_with_our_client():
    client = ScramClient("jane@example.com", "s3cret pass")
    _, done = _scram("s3cret pass", client)
    assert isinstance(done, Success) and done.identity == IDENTITY
    assert client.verify(done.final)


def test_scram_user_name_escapes_and_unicode_password():
    client = ScramClient("a,b=c", "p\u00e4ss\u2168")
    mech = ScramSha256()
    step = mech.start(client.first())
    assert step.authcid == "a,b=c"
    creds = ScramCredentials.from_password("p\u00e4ssIX")   # SASLprep maps U+2168 to "IX"
    done = mech.respond(client.final(mech.resolve((creds, IDENTITY)).data))
    assert isinstance(done, Success) and client.verify(done.final)


def test_scram_wrong_password_fails():
    _, done = _scram("right", ScramClient("user", "wrong"), stored="right")
    assert isinstance(done, Failure) and not done.malformed


def test_scram_tampered_proof_fails():
    client = ScramClient("user", "pw")
    creds = ScramCredentials.from_password("pw")
    mech = ScramSha256()
    mech.start(client.first())
    challenge = mech.resolve((creds, IDENTITY))
    assert isinstance(mech.respond(client.final(challenge.data, tamper=True)), Failure)


def test_scram_unknown_user_looks_like_a_known_one():
    client = ScramClient("ghost", "pw")
    mech = ScramSha256()
    mech.start(client.first())
    challenge = mech.resolve(None)
    assert isinstance(challenge, Challenge) and b",s=" in challenge.data and b",i=4096" in challenge.data
    # The fake salt is stable per user, so probing twice reveals nothing either.
    again = ScramSha256()
    again.start(ScramClient("ghost", "pw").first())
    salt = lambda d: d.split(b",")[1]
    assert salt(again.resolve(None).data) == salt(challenge.data)
    assert isinstance(mech.respond(client.final(challenge.data)), Failure)


def test_scram_channel_binding_requests_are_refused():
    step = ScramSha256().start(b"p=tls-exporter,,n=user,r=abc")
    assert isinstance(step, Failure)
    # "y": client could bind but thinks we cannot; we do not offer -PLUS, so it is fine.
    client = ScramClient("user", "pw", gs2_flag="y")
    _, done = _scram("pw", client)
    assert isinstance(done, Success)


def test_scram_binding_data_must_match_header():
    client = ScramClient("user", "pw", gs2_flag="y")
    mech = ScramSha256()
    mech.start(client.first())
    challenge = mech.resolve((ScramCredentials.from_password("pw"), IDENTITY))
    final = client.final(challenge.data).replace(b"c=eSws", b"c=biws")   # claims "n,,"
    assert isinstance(mech.respond(final), Failure)


@pytest.mark.parametrize("first", [
    b"", b"n,,", b"x,,n=user,r=abc", b"n,,r=abc,n=user", b"n,,n=us=ZZer,r=abc",
    b"n,,m=ext,n=user,r=abc", b"n,b=x,n=user,r=abc", b"n,,n=,r=abc", b"n,,n=user,r=a,b",
    b"\xff\xfe", b"n,,n=user,r=" + b"x" * 5000,
])
def test_scram_malformed_client_first(first):
    step = ScramSha256().start(first)
    assert isinstance(step, Failure) and step.malformed


@pytest.mark.parametrize("final", [
    b"", b"c=biws", b"c=biws,r=WRONG,p=AAAA", b"r=x,c=biws,p=AAAA", b"c=!!!,r=x,p=AAAA",
    b"\xff", b"c=biws,r=NONCE,p=not-base64",
])
def test_scram_malformed_client_final(final):
    client = ScramClient("user", "pw", nonce="fixed")
    mech = ScramSha256(nonce="srv")
    mech.start(client.first())
    mech.resolve((ScramCredentials.from_password("pw"), IDENTITY))
    step = mech.respond(final.replace(b"NONCE", b"fixedsrv"))
    assert isinstance(step, Failure)


def test_scram_mechanism_is_single_use():
    mech = ScramSha256()
    mech.start(b"garbage")
    with pytest.raises(RuntimeError):
        mech.respond(b"more")


def test_scram_credentials_text_form_round_trips():
    creds = ScramCredentials.from_password("pencil", iterations=5000)
    text = creds.to_string()
    assert text.startswith("SCRAM-SHA-256$5000:")
    assert ScramCredentials.parse(text) == creds
    for bad in ("", "SCRAM-SHA-1$4096:abc$def:ghi", "SCRAM-SHA-256$x:AAAA$AAAA:AAAA",
                "SCRAM-SHA-256$4096:AAAA$AAAA", "SCRAM-SHA-256$4096:AAAA$!!:AAAA"):
        with pytest.raises(ValueError):
            ScramCredentials.parse(bad)
