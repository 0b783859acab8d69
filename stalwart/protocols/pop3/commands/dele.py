"""DELE msg (RFC 1939 5): mark a message deleted; it goes only at QUIT (UPDATE).

A message already marked gets ``-ERR``; its number stays valid for the session, and every
other command refuses it until RSET. Nothing is written to the store here, so a session
that ends without QUIT removes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes
from ._args import message, split_args

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    args = split_args(arg)
    if len(args) != 1:
        m.fail(codes.syntax("use DELE msg"))
        return
    msg = message(m, args[0])
    if msg is not None:
        msg.deleted = True
        m.reply(codes.ok(f"Message {msg.number} deleted"))
