"""RSET, NOOP, QUIT, VRFY, EXPN, HELP (RFC 5321 4.1.1.5 - 4.1.1.10).

- RSET takes no argument (501 otherwise) and aborts the transaction, BDAT included
  (RFC 3030 2); authentication and EHLO survive.
- NOOP ignores its argument (4.1.1.9: "any parameters ... SHOULD be ignored").
- QUIT answers 221 and the machine closes (4.1.1.10); arguments are a 501.
- VRFY answers 252 2.5.0 (3.5.3): we never confirm or deny a mailbox, which would hand
  address harvesters a free directory. EXPN (mailing lists) is not implemented: 502.
- HELP answers 214.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes

if TYPE_CHECKING:
    from ..machine import SmtpMachine


def rset(m: "SmtpMachine", arg: str) -> None:
    if arg.strip(" "):
        m.fail(codes.SYNTAX.with_text("RSET takes no arguments"))
        return
    m.reset_transaction()
    m.reply(codes.RESET)


def noop(m: "SmtpMachine", arg: str) -> None:
    m.reply(codes.NOOP)


def quit(m: "SmtpMachine", arg: str) -> None:
    if arg.strip(" "):
        m.fail(codes.SYNTAX.with_text("QUIT takes no arguments"))
        return
    m.close(codes.BYE)


def vrfy(m: "SmtpMachine", arg: str) -> None:
    if not arg.strip(" "):
        m.fail(codes.SYNTAX.with_text("Syntax: VRFY address"))
        return
    m.reply(codes.VRFY_CANNOT)


def expn(m: "SmtpMachine", arg: str) -> None:
    m.fail(codes.NOT_IMPLEMENTED)


def help(m: "SmtpMachine", arg: str) -> None:
    m.reply(codes.HELP)
