"""BDAT (RFC 3030 2): ``BDAT chunk-size [SP "LAST"]``, then exactly chunk-size octets.

- The chunk is always read, even when the command is refused (no MAIL, no recipient,
  bad sequence): the client sends it without waiting, so the octets must be consumed
  and dropped before the error reply, or they would be executed as commands.
- A malformed BDAT line (no size, not digits, junk after LAST) leaves the number of
  octets that follow unknown, so the stream cannot be re-synchronised: 501 and close.
- Each non-final chunk is answered 250 (2.0.0); LAST ends the message (``data.finish``).
- DATA after BDAT in one transaction is 503 (the machine's table). A chunk that takes the
  message over the size limit is answered 552 5.3.4 and ends the transaction; later chunks
  are read and refused with 503.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import codes
from . import data

if TYPE_CHECKING:
    from ..machine import SmtpMachine

_BDAT = re.compile(r"([0-9]{1,18})(?: +(LAST))? *", re.IGNORECASE)


def handle(m: "SmtpMachine", arg: str) -> None:
    from ..machine import CHUNKING, CONNECTED, GREETED, MAIL, RCPT

    match = _BDAT.fullmatch(arg)
    if match is None:
        m.close(codes.BAD_BDAT)
        return
    size = int(match.group(1))
    last = match.group(2) is not None
    if m.state == CONNECTED:
        m.discard_chunk(size, codes.NEED_HELO)
    elif m.state == GREETED:
        m.discard_chunk(size, codes.NEED_MAIL)
    elif m.state == MAIL:
        m.discard_chunk(size, codes.NO_VALID_RECIPIENTS if m.rcpt_attempts else codes.NEED_RCPT)
    else:
        assert m.state in (RCPT, CHUNKING)
        m.start_chunk(size, last)


def chunk_done(m: "SmtpMachine", receiver: Any, message: bytearray, last: bool) -> None:
    if receiver.size_exceeded:
        m.reset_transaction()
        m.fail(codes.MESSAGE_TOO_BIG)
        return
    if not last:
        m.reply(codes.CHUNK_OK.with_text(f"Chunk accepted, {receiver.size} octets so far"))
        return
    data.finish(m, receiver, message, chunked=True)
