"""AUTHENTICATE (RFC 9051 6.2.2, SASL-IR RFC 4959) over ``stalwart.sasl`` mechanisms.

The exchange: challenges go out as "+ base64", each client line comes back as a
``SaslResponse`` event (the parser is in SASL mode meanwhile); "*" cancels with BAD.
An empty initial response is sent as "=" (RFC 4959). Plaintext mechanisms need TLS unless
configured otherwise (``NO [PRIVACYREQUIRED]``).

SCRAM-SHA-256 (RFC 7677) uses the account's RFC 5803 credentials from the store
(``store.get_scram_credentials``); an unknown user runs the exchange to the end and fails
like a wrong password. IMAP has no room for additional data with success (RFC 9051
6.2.2), so the server-final message ("v=...") goes out as a last "+" challenge and the
tagged OK follows the client's empty answer.
"""

from __future__ import annotations

import binascii

from ....sasl import Challenge, Failure, LookupCredentials, Success, VerifyPassword, \
    is_plaintext, server_mechanism
from ..session import Bad, No
from .login import fail, refuse_banned

OFFERED = ("SCRAM-SHA-256", "PLAIN")


async def run(s, cmd):
    mech_name = cmd.args.mechanism
    mech = server_mechanism(mech_name) if mech_name in OFFERED else None
    if mech is None:
        raise No(f"Unsupported authentication mechanism {mech_name}", "CANNOT")
    if is_plaintext(mech_name) and not s.plaintext_allowed():
        raise No("Plaintext authentication needs TLS", "PRIVACYREQUIRED")
    if refuse_banned(s, cmd.tag):
        return None
    initial = None
    if cmd.args.initial is not None:
        initial = _b64(cmd.args.initial)
        if initial is None:
            raise Bad("Invalid base64 in the initial response")
    s.sasl = (cmd, mech)
    await _advance(s, mech.start(initial))
    return None


async def respond(s, line: bytes) -> None:
    """A client line during the exchange."""
    cmd, mech = s.sasl
    if line == b"*":
        _end(s)
        s.tagged(cmd.tag, "BAD", "Authentication cancelled")
        return
    data = _b64(line)
    if data is None:
        _end(s)
        s.tagged(cmd.tag, "BAD", "Invalid base64 in the SASL response")
        return
    if isinstance(mech, Success):
        # The answer to the server-final challenge: empty, then the outcome.
        _end(s)
        if data:
            s.tagged(cmd.tag, "BAD", "Expected an empty response to the final challenge")
        else:
            _succeed(s, cmd, mech)
        return
    await _advance(s, mech.respond(data))


def _succeed(s, cmd, step: Success) -> None:
    s.login(step.identity)
    s.tagged(cmd.tag, "OK", "Authenticated", "CAPABILITY " + s.capabilities())


def _credentials(s, step: LookupCredentials):
    """(RFC 5803 text, account) for SCRAM, or None (unknown, disabled, no secret)."""
    account = s.store.get_account(step.authcid)
    if account is None or account.get("disabled"):
        return None
    if step.authzid:
        other = s.store.get_account(step.authzid)
        if other is None or other.get("id") != account.get("id"):
            return None
    secret = s.store.get_scram_credentials(step.authcid)
    return None if secret is None else (secret, account)


def _b64(text: bytes) -> bytes | None:
    if text == b"=":
        return b""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return None


def _end(s) -> None:
    s.sasl = None
    s.parser.expect_command()


async def _advance(s, step) -> None:
    cmd, mech = s.sasl
    while True:
        if isinstance(step, Challenge):
            s.write(b"+ " + binascii.b2a_base64(step.data, newline=False) + b"\r\n")
            s.parser.expect_sasl()
            return
        if isinstance(step, VerifyPassword):
            account = None
            if step.authzid in ("", step.authcid):
                account = await s.store.authenticate(step.authcid, step.password)
            step = mech.resolve(account)
            continue
        if isinstance(step, LookupCredentials):
            step = mech.resolve(_credentials(s, step))
            continue
        if isinstance(step, Success) and step.final:
            s.sasl = (cmd, step)
            s.write(b"+ " + binascii.b2a_base64(step.final, newline=False) + b"\r\n")
            s.parser.expect_sasl()
            return
        _end(s)
        if isinstance(step, Success):
            _succeed(s, cmd, step)
        elif isinstance(step, Failure):
            if step.malformed:
                s.tagged(cmd.tag, "BAD", "Malformed SASL message")
            else:
                await fail(s, cmd.tag, step.authcid)
        return
