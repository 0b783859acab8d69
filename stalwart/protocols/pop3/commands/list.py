"""LIST [msg] (RFC 1939 5): sizes, as ``number octets``.

Without an argument, a multi-line listing of every message not marked deleted (numbers
keep their gaps); with one, a single line for that message, ``-ERR`` if it does not exist
or is marked deleted. Sizes are the stored octets (exact for CRLF messages, which is what
delivery stores).
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
        m.fail(codes.syntax("use LIST [msg]"))
        return
    if args:
        msg = message(m, args[0])
        if msg is not None:
            m.reply(codes.ok(f"{msg.number} {msg.size}"))
        return
    count, octets = m.maildrop.stat()
    m.send_raw(codes.multiline(codes.ok(codes.summary(count, octets)),
                               [f"{msg.number} {msg.size}" for msg in m.maildrop.live()]))
