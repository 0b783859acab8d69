"""AUTH (RFC 4954) over the sans-IO mechanisms of ``stalwart.sasl``.

    AUTH mechanism [SP initial-response] CRLF       initial-response: base64 or "="
    334 [base64 challenge]                          client answers one base64 line
    235 2.7.0 / 535 5.7.8 / 501 / 454 4.7.0 / 534 5.7.9

Rules enforced
- Only after EHLO and outside a transaction (the machine's table); not twice (503);
  unknown or not offered mechanism 504 5.5.4; mechanisms need TLS unless configured
  (530 5.7.0 "must issue STARTTLS first", RFC 4954 4).
- "=" is an empty initial response; "*" as a response cancels with 501 5.7.0; bad base64
  is 501 5.5.2 (RFC 4954 4). Lines are up to 12288 octets.
- Additional data with success (SCRAM's server signature) is sent as a 334 challenge and
  the client's empty response is awaited before 235 (RFC 4954 4).
- Every outcome produces an ``AuthOutcome`` event (for the fail2ban log line and the
  delay); ``max_auth_failures`` failures in one session end it with 421.
- A directory that cannot be reached answers ``TEMPFAIL``: 454 4.7.0, not counted.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from stalwart import sasl

from .. import codes
from ..events import TEMPFAIL, Authenticate, AuthOutcome

if TYPE_CHECKING:
    from ..machine import SmtpMachine


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def handle(m: "SmtpMachine", arg: str) -> None:
    if m.session.authenticated:
        m.fail(codes.ALREADY_AUTHENTICATED)
        return
    name, _, initial_text = arg.strip(" ").partition(" ")
    name = name.upper()
    if not name or " " in initial_text.strip(" "):
        m.fail(codes.SYNTAX.with_text("Syntax: AUTH mechanism [initial-response]"))
        return
    if name not in m.config.auth_mechanisms:
        m.fail(codes.UNKNOWN_MECHANISM)
        return
    if name not in m.auth_offered():
        m.fail(codes.TLS_REQUIRED)
        return
    mech = sasl.server_mechanism(name)
    if mech is None:
        m.fail(codes.UNKNOWN_MECHANISM)
        return
    initial: bytes | None = None
    initial_text = initial_text.strip(" ")
    if initial_text == "=":
        initial = b""
    elif initial_text:
        initial = _b64decode(initial_text)
        if initial is None:
            m.fail(codes.AUTH_BAD_BASE64)
            return
    m.sasl = mech
    m.sasl_name = name
    _step(m, mech.start(initial))


def on_response(m: "SmtpMachine", text: str) -> None:
    """One line from the client while an exchange is in progress."""
    mech = m.sasl
    if text == "*":
        _failed(m, "cancelled by the client", "", codes.AUTH_CANCELLED, count=False)
        return
    if m.sasl_final:
        # The client acknowledged our additional success data with an empty line.
        if text != "":
            _failed(m, "data after the server's final message", "", codes.AUTH_FAILED)
            return
        identity = m.sasl_final_identity
        _succeeded(m, identity)
        return
    data = _b64decode(text)
    if data is None:
        _failed(m, "bad base64", "", codes.AUTH_BAD_BASE64)
        return
    _step(m, mech.respond(data))


def _step(m: "SmtpMachine", step: Any) -> None:
    if isinstance(step, sasl.Challenge):
        m.begin_sasl()
        m.reply(codes.reply(334, "", base64.b64encode(step.data).decode("ascii")))
    elif isinstance(step, (sasl.VerifyPassword, sasl.LookupCredentials)):
        mech = m.sasl

        def on_answer(value: Any) -> None:
            if value is TEMPFAIL:
                _failed(m, "directory unavailable", step.authcid, codes.AUTH_TEMP, count=False)
                return
            _step(m, mech.resolve(value))

        m.request(Authenticate(m.session, m.sasl_name, step), on_answer)
    elif isinstance(step, sasl.Success):
        if step.final:
            m.begin_sasl()
            m.sasl_final = True
            m.sasl_final_identity = step
            m.reply(codes.reply(334, "", base64.b64encode(step.final).decode("ascii")))
        else:
            _succeeded(m, step)
    else:
        assert isinstance(step, sasl.Failure)
        reply = codes.AUTH_BAD_BASE64.with_text("Malformed authentication exchange") \
            if step.malformed else codes.AUTH_FAILED
        _failed(m, step.reason, step.authcid, reply)


def _succeeded(m: "SmtpMachine", step: "sasl.Success") -> None:
    name = m.sasl_name
    m.end_sasl()
    m.session.identity = step.identity
    m.session.authcid = step.authcid
    m.session.auth_mechanism = name
    m.reply(codes.AUTH_OK)
    m.notify(AuthOutcome(m.session, name, step.authcid, True, "", m.auth_failures))


def _failed(m: "SmtpMachine", reason: str, authcid: str, reply, *, count: bool = True) -> None:
    name = m.sasl_name
    m.end_sasl()
    if count:
        m.auth_failures += 1
    m.notify(AuthOutcome(m.session, name, authcid, False, reason, m.auth_failures))
    if count and m.auth_failures >= m.config.max_auth_failures:
        m.close(reply)
        m.close(codes.TOO_MANY_AUTH_FAILURES)
        return
    m.fail(reply)
