"""USER name / PASS string (RFC 1939 7): plain-text login, TLS or a loopback peer only.

- USER is answered ``+OK`` whatever the name (RFC 1939 7 allows it; answering ``-ERR``
  for unknown names would let anyone enumerate accounts). A second USER replaces the
  first.
- PASS takes the rest of the line, spaces included, as the password (RFC 1939 7: "the
  server may treat spaces in the argument as part of the password"). PASS without USER
  before it: ``-ERR``. The name is forgotten after PASS, whatever the outcome.
- Without TLS (and without a loopback peer or configuration allowing it) both are refused
  with ``-ERR [AUTH]`` (RFC 2595 4), and CAPA does not announce USER.
- Names and passwords are UTF-8 (RFC 6856 "UTF8 USER"); the machine has checked that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stalwart import sasl

from .. import codes
from ..events import TEMPFAIL, Authenticate
from . import auth

if TYPE_CHECKING:
    from ..machine import Pop3Machine

MECHANISM = "USER"


def handle_user(m: "Pop3Machine", verb: str, arg: str) -> None:
    if not m.plaintext_allowed():
        m.fail(codes.TLS_REQUIRED)
        return
    name = arg.strip(" ")
    if not name or len(name.encode("utf-8")) > sasl.base.MAX_IDENTITY:
        m.fail(codes.syntax("use USER name"))
        return
    m.user = name
    m.reply(codes.ok("Send your password"))


def handle_pass(m: "Pop3Machine", verb: str, arg: str) -> None:
    if not m.plaintext_allowed():
        m.fail(codes.TLS_REQUIRED)
        return
    user = m.user
    if user is None:
        m.fail(codes.USER_FIRST)
        return
    m.user = None
    if not arg or len(arg.encode("utf-8")) > sasl.base.MAX_PASSWORD:
        auth.failed(m, MECHANISM, user, "empty or over-long password", codes.AUTH_FAILED)
        return
    request = sasl.VerifyPassword(user, arg)

    def on_answer(identity: Any) -> None:
        if identity is TEMPFAIL:
            auth.failed(m, MECHANISM, user, "directory unavailable", codes.AUTH_TEMP,
                        count=False)
        elif identity is None:
            auth.failed(m, MECHANISM, user, "invalid credentials", codes.AUTH_FAILED)
        else:
            auth.authenticated(m, identity, user, MECHANISM)

    m.request(Authenticate(m.session, MECHANISM, request), on_answer)
