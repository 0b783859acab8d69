"""UIDL [msg] (RFC 1939 7): the unique ids, as ``number unique-id``.

Same shape as LIST. The ids are stable across sessions and never reused (see
``maildrop.uidl``: INBOX UIDVALIDITY and the store's email id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes
from ._args import message, split_args

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    args = split_args(arg)
    if len(args) > 1:
        m.fail(codes.syntax("use UIDL [msg]"))
        return
    if args:
        msg = message(m, args[0])
        if msg is not None:
            m.reply(codes.ok(f"{msg.number} {msg.uid_string}"))
        return
    m.send_raw(codes.multiline(codes.ok("Unique-ID listing follows"),
                               [f"{msg.number} {msg.uid_string}" for msg in m.maildrop.live()]))
