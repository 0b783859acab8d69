"""CAPA (RFC 2449 5): the capabilities of this session, in every state.

Announced, and why:

- ``TOP``, ``UIDL`` (RFC 2449 6.1, RFC 1939 7), ``PIPELINING`` (6.6: replies are
  flushed per pipeline, commands run in order), ``RESP-CODES`` (6.4) and
  ``AUTH-RESP-CODE`` (RFC 3206 6: failed logins carry ``[AUTH]`` or ``[SYS/...]``).
- ``USER`` and ``SASL <mechanisms>`` (6.2, 6.3, RFC 5034) only before authentication,
  and plain-text ones only where they may be used (TLS, loopback or configuration).
- ``STLS`` (RFC 2595 4) before authentication when a certificate exists and TLS is off.
- ``UTF8 USER`` (RFC 6856 2): UTF-8 mode, and UTF-8 names and passwords in USER/PASS.
- ``EXPIRE NEVER`` (6.7): the server never deletes messages on its own; ``IMPLEMENTATION``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def capabilities(m: "Pop3Machine") -> list[str]:
    from ..machine import AUTHORIZATION

    caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
    if m.state == AUTHORIZATION:
        if m.plaintext_allowed():
            caps.append("USER")
        mechanisms = m.mechanisms_offered()
        if mechanisms:
            caps.append("SASL " + " ".join(mechanisms))
        if m.starttls_offered():
            caps.append("STLS")
    caps += ["UTF8 USER", "EXPIRE NEVER", "IMPLEMENTATION Stalwart"]
    return caps


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    if arg.strip(" "):
        m.fail(codes.syntax("CAPA takes no argument"))
        return
    m.send_raw(codes.multiline(codes.CAPA_FOLLOWS, capabilities(m)))
