"""STARTTLS (RFC 9051 6.2.1): OK, then the adapter negotiates TLS.

Refused when TLS is already active or not configured. Bytes the client pipelined behind
the command are discarded when TLS starts (``ImapSession.tls_started``).
"""

from __future__ import annotations

from ..session import Bad, No


async def run(s, cmd):
    if s.tls_active:
        raise Bad("TLS is already active", "CLIENTBUG")
    if not s.tls_available:
        raise No("TLS is not available")
    s.tagged(cmd.tag, "OK", "Begin TLS negotiation now")
    s.want_starttls = True
    return None
