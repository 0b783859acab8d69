"""Argument parsing shared by the TRANSACTION commands (RFC 1939 3, 5).

A message number is a decimal number in ASCII digits; anything else (a sign, "1_000",
non-ASCII digits that ``int()`` would take, more than 10 digits) is a syntax error, never
an exception. A number naming no message, or a message marked deleted, gets ``-ERR``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes
from ..maildrop import MaildropMessage

if TYPE_CHECKING:
    from ..machine import Pop3Machine

#: 10 digits cover every 32-bit value; longer is a syntax error.
MAX_DIGITS = 10


def parse_number(text: str) -> int | None:
    """A non-negative decimal number, or None."""
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def split_args(arg: str) -> list[str]:
    """Arguments separated by spaces (RFC 1939 3 says one; we accept runs of them)."""
    return [a for a in arg.split(" ") if a]


def message(m: "Pop3Machine", text: str) -> MaildropMessage | None:
    """The live message numbered ``text``; None after replying ``-ERR`` to the client."""
    number = parse_number(text)
    if number is None:
        m.fail(codes.syntax("Invalid message number"))
        return None
    msg = m.maildrop.get(number)
    if msg is None:
        m.fail(codes.NO_SUCH_MESSAGE)
        return None
    if msg.deleted:
        m.fail(codes.MESSAGE_DELETED)
        return None
    return msg


def no_args(m: "Pop3Machine", verb: str, arg: str) -> bool:
    """True if ``arg`` is empty; else reply a syntax error and return False."""
    if arg.strip(" "):
        m.fail(codes.syntax(f"{verb} takes no argument"))
        return False
    return True
