"""EHLO, HELO (RFC 5321 4.1.1.1) and LHLO (RFC 2033 4.1).

- The argument is the client's name: a domain or an address literal. We record it for
  the Received header and for policy, and accept any single token of printable
  characters (clients in the wild send bare hostnames with underscores); a missing or
  multi-word argument, or a control character, is 501.
- Any of them resets the transaction (RFC 5321 4.1.4) but keeps authentication.
- EHLO/LHLO answer with the extensions this session may use (RFC 5321 4.1.1.1): STARTTLS
  only before TLS (RFC 3207 4), REQUIRETLS only over TLS (RFC 8689 4), AUTH only over TLS
  unless configured (RFC 4954 4), no enhanced codes on these lines (RFC 2034 3).
- SMTP refuses LHLO and LMTP refuses EHLO/HELO: 500 5.5.1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes

if TYPE_CHECKING:
    from ..machine import SmtpMachine


def _client_name(m: "SmtpMachine", arg: str) -> str | None:
    name = arg.strip(" ")
    if not name or " " in name or len(name) > 255 or not name.isprintable():
        m.fail(codes.HELO_NEEDS_DOMAIN)
        return None
    return name


def _greet(m: "SmtpMachine", name: str, esmtp: bool) -> None:
    from ..machine import GREETED

    m.reset_transaction()
    m.state = GREETED
    m.session.helo = name
    m.session.esmtp = esmtp


def _extensions(m: "SmtpMachine") -> list[str]:
    cfg = m.config
    lines = ["PIPELINING", "8BITMIME", "SMTPUTF8", f"SIZE {cfg.max_message_size}",
             "CHUNKING", "DSN", "ENHANCEDSTATUSCODES"]
    if cfg.starttls and not m.session.tls:
        lines.append("STARTTLS")
    if m.session.tls:
        lines.append("REQUIRETLS")
    mechanisms = m.auth_offered()
    if mechanisms and not m.session.authenticated:
        lines.append("AUTH " + " ".join(mechanisms))
    lines.append("HELP")
    return lines


def ehlo(m: "SmtpMachine", arg: str) -> None:
    if m.config.lmtp:
        m.fail(codes.LMTP_NEEDS_LHLO)
        return
    _extended_hello(m, arg)


def lhlo(m: "SmtpMachine", arg: str) -> None:
    if not m.config.lmtp:
        m.fail(codes.SMTP_NO_LHLO)
        return
    _extended_hello(m, arg)


def _extended_hello(m: "SmtpMachine", arg: str) -> None:
    name = _client_name(m, arg)
    if name is None:
        return
    _greet(m, name, True)
    m.reply(codes.reply(250, "", f"{m.config.hostname} Hello {name}", *_extensions(m)))


def helo(m: "SmtpMachine", arg: str) -> None:
    if m.config.lmtp:
        m.fail(codes.LMTP_NEEDS_LHLO)
        return
    name = _client_name(m, arg)
    if name is None:
        return
    _greet(m, name, False)
    m.reply(codes.reply(250, "", f"{m.config.hostname} Hello {name}"))
