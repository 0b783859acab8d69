"""LOGIN (draft-murchison-sasl-login): the server asks "Username:" then "Password:".

Not standardised, but every mail client still speaks it. Rules kept here:
- The challenges are the literal texts ``Username:`` and ``Password:``; the protocol
  base64-encodes them (RFC 4954 4).
- An initial response, when given, is the user name (Outlook, smtplib do this).
- Both answers are UTF-8 without NUL or control characters; the user name at most 320
  octets, the password at most 1024. No authorization identity exists in LOGIN.
"""

from __future__ import annotations

from typing import Any

from .base import (MAX_PASSWORD, Challenge, Failure, ServerMechanism, Step, Success,
                   VerifyPassword, decode_identity)

USERNAME = b"Username:"
PASSWORD = b"Password:"


class Login(ServerMechanism):
    name = "LOGIN"
    plaintext = True

    def __init__(self) -> None:
        super().__init__()
        self._user: str | None = None
        self._request: VerifyPassword | None = None

    def _start(self, initial: bytes | None) -> Step:
        if initial is None or initial == b"":
            return Challenge(USERNAME)
        return self._respond(initial)

    def _respond(self, data: bytes) -> Step:
        if self._request is not None:
            return Failure("unexpected response", self._request.authcid, malformed=True)
        if self._user is None:
            user = decode_identity(data)
            if not user:
                return Failure("bad user name", malformed=True)
            self._user = user
            return Challenge(PASSWORD)
        if not data or len(data) > MAX_PASSWORD or b"\x00" in data:
            return Failure("empty or bad password", self._user, malformed=True)
        try:
            password = data.decode("utf-8")
        except UnicodeDecodeError:
            return Failure("password is not UTF-8", self._user, malformed=True)
        self._request = VerifyPassword(self._user, password, "")
        return self._request

    def _resolve(self, answer: Any) -> Step:
        req = self._request
        if req is None:
            raise RuntimeError("resolve() before a VerifyPassword step")
        if answer is None:
            return Failure("invalid credentials", req.authcid)
        return Success(answer, req.authcid, "")
