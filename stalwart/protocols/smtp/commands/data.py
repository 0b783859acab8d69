"""DATA (RFC 5321 4.1.1.4) and the end of a message, shared with BDAT LAST.

- DATA takes no argument (501). Without MAIL, 503; with MAIL but no accepted recipient,
  554 5.5.1 if recipients were tried and refused (RFC 2920 3.1 asks for it, so a
  pipelining client knows not to send the content), else 503 5.5.1 (RFC 5321 3.3).
- 354, then the content is read by the DATA receiver (dot-unstuffing, ``<CRLF>.<CRLF>``
  only, bare CR/LF policy against SMTP smuggling, size limit).
- ``finish`` decides what happens to a complete message: size over the limit (552 5.3.4),
  bare newlines (550 5.6.0), NUL or 8-bit octets without BODY=8BITMIME/SMTPUTF8
  (554 5.6.0, RFC 6152 3); otherwise the ``Deliver`` request. Its answer has one reply per
  recipient: LMTP sends them all (RFC 2033 4.2), SMTP sends one (``merge_replies``).
- A 250 goes out only after the adapter answered ``Deliver``, which it does only once the
  message is durable (ARCHITECTURE.md "group commit").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import codes
from ..codes import Reply
from ..events import Deliver

if TYPE_CHECKING:
    from ..machine import SmtpMachine


def handle(m: "SmtpMachine", arg: str) -> None:
    from ..machine import MAIL

    if arg.strip(" "):
        m.fail(codes.SYNTAX.with_text("DATA takes no arguments"))
        return
    if m.state == MAIL:
        m.fail(codes.NO_VALID_RECIPIENTS if m.rcpt_attempts else codes.NEED_RCPT)
        return
    m.reply(codes.START_DATA)
    m.start_data()


def content_error(m: "SmtpMachine", receiver: Any) -> Reply | None:
    """The reply refusing a complete message, or None when it may be delivered."""
    error = receiver.error
    if error is not None:
        code, status = error.reply_code.split(" ", 1)
        return codes.reply(int(code), status, error.message[:1].upper() + error.message[1:])
    envelope = m.envelope
    assert envelope is not None
    if receiver.nul_count:
        return codes.EIGHT_BIT_WITHOUT_8BITMIME.with_text("NUL octets are not allowed in a message")
    if (receiver.eight_bit_count and m.config.reject_8bit_without_8bitmime
            and envelope.body != "8BITMIME" and not envelope.params.smtputf8):
        return codes.EIGHT_BIT_WITHOUT_8BITMIME
    return None


def finish(m: "SmtpMachine", receiver: Any, message: bytearray, *, chunked: bool) -> None:
    """A whole message arrived (DATA terminator or BDAT LAST)."""
    envelope = m.envelope
    assert envelope is not None
    refusal = content_error(m, receiver)
    if refusal is not None:
        m.reset_transaction()
        m.fail(refusal)
        return
    envelope.chunked = chunked
    count = len(envelope.recipients)

    def on_delivered(replies: list[Reply]) -> None:
        if not isinstance(replies, list) or len(replies) != count \
                or not all(isinstance(r, Reply) for r in replies):
            replies = [codes.TEMP_DELIVERY] * count
        m.messages += 1
        m.reset_transaction()
        if m.config.lmtp:
            for r in replies:
                m.reply(r)
        else:
            m.reply(_merge(replies))

    m.request(Deliver(m.session, envelope, bytes(message)), on_delivered)


def _merge(replies: list[Reply]) -> Reply:
    from ..machine import merge_replies

    return merge_replies(replies)
