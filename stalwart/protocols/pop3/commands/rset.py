"""RSET (RFC 1939 5): unmark every message marked deleted in this session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes
from ._args import no_args

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    if no_args(m, verb, arg):
        m.maildrop.reset()
        count, octets = m.maildrop.stat()
        m.reply(codes.ok("Maildrop has " + codes.summary(count, octets)))
