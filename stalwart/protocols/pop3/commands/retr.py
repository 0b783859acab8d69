"""RETR msg (RFC 1939 5) and TOP msg n (RFC 1939 7): message content, dot-stuffed.

- ``FetchMessage`` asks the adapter for the content; it answers with an iterable of
  chunks, None when another session removed the message after the maildrop snapshot
  (``-ERR``, the session goes on), or ``TEMPFAIL`` (``-ERR [SYS/TEMP]``).
- On content: ``+OK <size> octets`` (RETR) or ``+OK`` (TOP), then the content streamed
  through ``encoder.MessageEncoder`` (CRLF line ends, dot stuffing, TOP's header plus n
  body lines) and the terminating ".". The machine pulls one chunk at a time.
- TOP's ``n`` is a non-negative number (0: the header only); RETR does not mark the
  message as read (POP3 has no such state; IMAP's \\Seen is left alone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import codes
from ..encoder import MessageEncoder
from ..events import TEMPFAIL, FetchMessage
from ._args import message, parse_number, split_args

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    args = split_args(arg)
    top_lines: int | None = None
    if verb == "TOP":
        if len(args) != 2:
            m.fail(codes.syntax("use TOP msg n"))
            return
        top_lines = parse_number(args[1])
        if top_lines is None:
            m.fail(codes.syntax("Invalid line count"))
            return
    elif len(args) != 1:
        m.fail(codes.syntax("use RETR msg"))
        return
    msg = message(m, args[0])
    if msg is None:
        return

    def on_answer(source: Any) -> None:
        if source is TEMPFAIL:
            m.reply(codes.MESSAGE_TEMP)
        elif source is None:
            m.reply(codes.MESSAGE_GONE)
        else:
            m.reply(codes.ok(f"{msg.size} octets") if top_lines is None
                    else codes.ok("Top of message follows"))
            m.start_content(source, MessageEncoder(top_lines))

    m.request(FetchMessage(m.session, m.maildrop, msg, top_lines), on_answer)
