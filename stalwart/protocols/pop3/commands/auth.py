"""AUTH (RFC 5034) over the sans-IO mechanisms of ``stalwart.sasl``, and what every way
of logging in shares (USER/PASS goes through ``authenticated`` / ``failed`` too).

    AUTH                                   -> +OK, one mechanism per line, "."
    AUTH mechanism [SP initial-response]   initial-response: base64, or "=" for empty
    + [base64 challenge]                   the client answers one base64 line, or "*"
    +OK maildrop ... / -ERR [AUTH] ...

Rules enforced
- Only in the AUTHORIZATION state (the machine's table); unknown or not offered
  mechanism ``-ERR``; a plain-text mechanism without TLS ``-ERR [AUTH]`` (RFC 5034 6).
- "*" cancels (``-ERR``, not counted as a failure); bad base64 ``-ERR [AUTH]``.
- Additional data with success (SCRAM's server signature) is sent as a last "+"
  challenge and the client's empty line is awaited before the final reply.
- After a successful exchange the maildrop is opened (``OpenMaildrop``); if the store
  cannot give it, ``-ERR [SYS/TEMP]`` and the session stays in AUTHORIZATION (RFC 1939 7:
  "unable to lock maildrop").
- Every outcome produces an ``AuthOutcome`` (fail2ban line, delay);
  ``max_auth_failures`` failures end the session with ``-ERR [AUTH]``. A directory that
  cannot be reached answers ``TEMPFAIL``: ``-ERR [SYS/TEMP]``, not counted.
- ``AUTH`` without a mechanism lists the mechanisms offered (not in RFC 5034; clients
  from the RFC 1734 era send it, and Dovecot and others answer it this way).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import TYPE_CHECKING, Any

from stalwart import sasl

from .. import codes
from ..events import TEMPFAIL, Authenticate, AuthOutcome, OpenMaildrop

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def _b64decode(text: bytes) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    name, _, initial_text = arg.strip(" ").partition(" ")
    name = name.upper()
    initial_text = initial_text.strip(" ")
    if not name:
        m.send_raw(codes.multiline(codes.SASL_FOLLOWS, m.mechanisms_offered()))
        return
    if " " in initial_text:
        m.fail(codes.syntax("use AUTH mechanism [initial-response]"))
        return
    if name not in m.config.auth_mechanisms or sasl.server_mechanism(name) is None:
        m.fail(codes.AUTH_UNKNOWN_MECHANISM)
        return
    if name not in m.mechanisms_offered():
        m.fail(codes.TLS_REQUIRED)
        return
    initial: bytes | None = None
    if initial_text == "=":
        initial = b""
    elif initial_text:
        initial = _b64decode(initial_text.encode("ascii", "replace"))
        if initial is None:
            m.sasl_name = name
            failed(m, name, "", "bad base64", codes.AUTH_BAD_BASE64)
            return
    mech = sasl.server_mechanism(name)
    m.sasl = mech
    m.sasl_name = name
    _step(m, mech.start(initial))


def on_response(m: "Pop3Machine", text: bytes) -> None:
    """One line from the client while an exchange is in progress."""
    name = m.sasl_name
    if text == b"*":
        m.end_sasl()
        failed(m, name, "", "cancelled by the client", codes.AUTH_CANCELLED, count=False)
        return
    if m.sasl_final is not None:
        step = m.sasl_final
        m.end_sasl()
        if text != b"":
            failed(m, name, step.authcid, "data after the server's final message",
                   codes.AUTH_FAILED)
            return
        authenticated(m, step.identity, step.authcid, name)
        return
    data = _b64decode(text)
    if data is None:
        m.end_sasl()
        failed(m, name, "", "bad base64", codes.AUTH_BAD_BASE64)
        return
    _step(m, m.sasl.respond(data))


def abort(m: "Pop3Machine", reply: codes.Reply) -> None:
    """The exchange cannot go on (an over-long response line)."""
    name = m.sasl_name
    m.end_sasl()
    failed(m, name, "", "response line too long", reply)


def _step(m: "Pop3Machine", step: Any) -> None:
    name = m.sasl_name
    if isinstance(step, sasl.Challenge):
        m.begin_sasl()
        m.send_raw(b"+ " + base64.b64encode(step.data) + b"\r\n")
    elif isinstance(step, (sasl.VerifyPassword, sasl.LookupCredentials)):
        mech = m.sasl

        def on_answer(value: Any) -> None:
            if value is TEMPFAIL:
                m.end_sasl()
                failed(m, name, step.authcid, "directory unavailable", codes.AUTH_TEMP,
                       count=False)
                return
            _step(m, mech.resolve(value))

        m.request(Authenticate(m.session, name, step), on_answer)
    elif isinstance(step, sasl.Success):
        if step.final:
            m.begin_sasl()
            m.sasl_final = step
            m.send_raw(b"+ " + base64.b64encode(step.final) + b"\r\n")
        else:
            m.end_sasl()
            authenticated(m, step.identity, step.authcid, name)
    else:
        assert isinstance(step, sasl.Failure)
        m.end_sasl()
        reply = codes.AUTH_BAD_BASE64.with_text("Malformed authentication exchange") \
            if step.malformed else codes.AUTH_FAILED
        failed(m, name, step.authcid, step.reason, reply)


# ---------------------------------------------------------------------- shared outcome
def authenticated(m: "Pop3Machine", identity: Any, authcid: str, mechanism: str) -> None:
    """Credentials accepted: open the maildrop, then enter TRANSACTION."""
    session = m.session

    def on_maildrop(value: Any) -> None:
        if value is TEMPFAIL or value is None:
            m.reply(codes.MAILDROP_TEMP)
            return
        session.identity = identity
        session.authcid = authcid
        session.auth_mechanism = mechanism
        m.enter_transaction(value)
        count, octets = value.stat()
        m.reply(codes.ok("Maildrop has " + codes.summary(count, octets)))

    m.notify(AuthOutcome(session, mechanism, authcid, True, "", m.auth_failures))
    # The request carries a copy of the session that already has the identity: the
    # session itself is marked authenticated only once the maildrop is open.
    m.request(OpenMaildrop(dataclasses.replace(session, identity=identity)), on_maildrop)


def failed(m: "Pop3Machine", mechanism: str, authcid: str, reason: str, reply: codes.Reply,
           *, count: bool = True) -> None:
    """Credentials refused (or the exchange broken): reply, count, maybe hang up."""
    if count:
        m.auth_failures += 1
    m.notify(AuthOutcome(m.session, mechanism, authcid, False, reason, m.auth_failures))
    if count and m.auth_failures >= m.config.max_auth_failures:
        m.close(codes.AUTH_TOO_MANY)
        return
    m.fail(reply)
