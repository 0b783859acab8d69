"""MAIL FROM (RFC 5321 4.1.1.2) with SIZE, BODY, SMTPUTF8, DSN, AUTH=, REQUIRETLS.

    MAIL FROM:<reverse-path> [SP mail-parameters] CRLF

Checks, in order, each with its reply:
1. ``FROM:`` keyword (501 5.5.4); path syntax and limits (501 5.1.3); parameters (555 /
   501, see params.py). UTF-8 in the path needs the SMTPUTF8 parameter (553 5.6.7).
2. REQUIRETLS on a clear-text session: 530 5.7.10 (RFC 8689 4.1).
3. SIZE above our limit: 552 5.3.4 (RFC 1870 6).
4. Submission listeners need AUTH first: 530 5.7.0 (RFC 6409 4.3, RFC 4954 6).
5. Messages per session: past the limit, 421 and close.
6. Policy (``CheckSender``): may this client use this sender (submission: the address
   must belong to the authenticated account)?
The AUTH= parameter is kept only for an authenticated client (RFC 4954 5: otherwise it
is treated as ``AUTH=<>``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .. import codes
from ..address import SmtpSyntaxError, parse_path, split_path_params
from ..events import CheckSender, Envelope, Verdict
from ..params import parse_mail_params

if TYPE_CHECKING:
    from ..machine import SmtpMachine


def handle(m: "SmtpMachine", arg: str) -> None:
    from ..machine import MAIL

    if arg[:5].upper() != "FROM:":
        m.fail(codes.SYNTAX.with_text("Syntax: MAIL FROM:<address>"))
        return
    try:
        path_text, words = split_path_params(arg[5:])
        if not m.session.tls and any(w.upper() == "REQUIRETLS" for w in words):
            m.fail(codes.REQUIRETLS_NEEDS_TLS)
            return
        params = parse_mail_params(words, m.extensions())
        path = parse_path(path_text, reverse=True, utf8=params.smtputf8)
    except SmtpSyntaxError as exc:
        m.fail(exc.reply)
        return
    if params.size is not None and params.size > m.config.max_message_size:
        m.fail(codes.MESSAGE_TOO_BIG)
        return
    if m.config.submission and not m.session.authenticated:
        m.fail(codes.AUTH_REQUIRED)
        return
    if m.messages >= m.config.max_messages:
        m.close(codes.TOO_MANY_MESSAGES)
        return
    if params.auth is not None and not m.session.authenticated:
        params = dataclasses.replace(params, auth=None)

    def on_verdict(verdict: Verdict | None) -> None:
        if verdict is not None and not verdict.accepted:
            m.fail(verdict.reply)
            return
        m.envelope = Envelope(path, params, body=params.body)
        m.rcpt_attempts = 0
        m.state = MAIL
        m.reply(verdict.reply if verdict is not None else codes.SENDER_OK)

    m.request(CheckSender(m.session, path, params), on_verdict)
