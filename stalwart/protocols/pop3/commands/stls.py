"""STLS (RFC 2595 4): start TLS on the clear-text port 110.

- Only in AUTHORIZATION (the machine's table), only when a certificate is configured
  and TLS is not already active: else ``-ERR``.
- ``+OK`` is queued, then ``StartTls`` asks the adapter to flush it and do the handshake.
  Octets the client pipelined behind STLS are discarded by ``tls_started()``, never
  executed (CVE-2011-0411 class); a USER given before is forgotten.
- A failed handshake closes the session (the stream is in an unknown state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import codes
from ..events import StartTls

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    if arg.strip(" "):
        m.fail(codes.syntax("STLS takes no argument"))
        return
    if m.session.tls:
        m.fail(codes.STLS_ACTIVE)
        return
    if not m.config.starttls:
        m.fail(codes.STLS_UNAVAILABLE)
        return
    m.reply(codes.STLS_BEGIN)

    def on_answer(ok: Any) -> None:
        if ok:
            m.tls_started()
        else:
            m.abort()

    m.request(StartTls(m.session), on_answer)
