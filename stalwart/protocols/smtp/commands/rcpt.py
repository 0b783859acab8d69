"""RCPT TO (RFC 5321 4.1.1.3) with the DSN parameters NOTIFY and ORCPT (RFC 3461 4).

    RCPT TO:<forward-path> [SP rcpt-parameters] CRLF

- ``<Postmaster>`` without a domain must be accepted (4.1.1.3): the policy decides where
  it goes. A source route (``<@a,@b:user@c>``) is parsed and ignored (4.1.1.3, App. C).
- A UTF-8 address needs SMTPUTF8 on MAIL: 553 5.6.7 (RFC 6531 3.4).
- Past ``max_recipients`` accepted: 452 4.5.3 (4.5.3.1.10: the client sends the rest in
  another transaction).
- The same recipient twice (compared as the directory does: case-insensitive, IDNA) is
  answered 250 again but kept once: one delivery per recipient.
- Everything else is the policy's decision (``CheckRecipient``): relay or local, known
  user or not. The machine never relays by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes
from ..address import SmtpSyntaxError, parse_path, split_path_params
from ..events import CheckRecipient, Recipient, Verdict
from ..params import parse_rcpt_params

if TYPE_CHECKING:
    from ..machine import SmtpMachine


def _key(path) -> str:
    return "postmaster" if path.postmaster else path.address.key()


def handle(m: "SmtpMachine", arg: str) -> None:
    from ..machine import RCPT

    if arg[:3].upper() != "TO:":
        m.fail(codes.SYNTAX.with_text("Syntax: RCPT TO:<address>"))
        return
    envelope = m.envelope
    assert envelope is not None
    m.rcpt_attempts += 1
    utf8 = envelope.params.smtputf8
    try:
        path_text, words = split_path_params(arg[3:])
        params = parse_rcpt_params(words, m.extensions(), utf8=utf8)
        path = parse_path(path_text, reverse=False, utf8=utf8)
    except SmtpSyntaxError as exc:
        m.fail(exc.reply)
        return
    if len(envelope.recipients) >= m.config.max_recipients:
        m.fail(codes.TOO_MANY_RECIPIENTS)
        return
    key = _key(path)
    if any(_key(r.path) == key for r in envelope.recipients):
        m.reply(codes.RECIPIENT_OK)
        return

    def on_verdict(verdict: Verdict) -> None:
        if not isinstance(verdict, Verdict):
            m.fail(codes.TEMP_LOOKUP)
            return
        if not verdict.accepted:
            m.fail(verdict.reply)
            return
        envelope.recipients.append(Recipient(path, params, verdict.target))
        m.state = RCPT
        m.reply(verdict.reply)

    m.request(CheckRecipient(m.session, envelope, path, params), on_verdict)
