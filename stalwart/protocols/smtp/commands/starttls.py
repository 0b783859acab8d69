"""STARTTLS (RFC 3207).

- No argument (501 5.5.4). Not once TLS is up (503), not without a certificate (454 4.7.0),
  only after EHLO and outside a transaction (the machine's table).
- 220 2.0.0, then the ``StartTls`` request: the adapter flushes the 220, runs the
  handshake and answers True (up) or False (failed: we close; the stream is unusable).
- Anything the client pipelined behind STARTTLS arrived in clear text and is dropped
  unread (CVE-2011-0411, RFC 3207 5 "the server MUST discard").
- After the handshake the session starts over (RFC 3207 4.2): the client must EHLO again,
  and it learns the post-TLS extensions (no STARTTLS, AUTH, REQUIRETLS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes
from ..events import StartTls

if TYPE_CHECKING:
    from ..machine import SmtpMachine


def handle(m: "SmtpMachine", arg: str) -> None:
    if arg.strip(" "):
        m.fail(codes.SYNTAX.with_text("STARTTLS takes no arguments"))
        return
    if m.session.tls:
        m.fail(codes.ALREADY_TLS)
        return
    if not m.config.starttls:
        m.fail(codes.TLS_NOT_AVAILABLE)
        return
    m.reply(codes.READY_TLS)
    m.pending_input()           # clear-text injection after STARTTLS is never executed

    def on_tls(ok: bool) -> None:
        if ok is not True:
            m.close_silently()
            return
        m.pending_input()       # nothing read before the handshake may survive it
        m.session.tls = True
        m.reset_session()

    m.request(StartTls(m.session), on_tls)
