"""NOOP (RFC 1939 5): ``+OK``; only resets the autologout timer (the adapter does that
on any input)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes
from ._args import no_args

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    if no_args(m, verb, arg):
        m.reply(codes.NOOP)
