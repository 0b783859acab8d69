"""IDLE (RFC 2177, RFC 9051 6.3.13): "+ idling", then updates as they happen until DONE.

The session reports changes when the store's event arrives (``ImapSession.idle_poll``);
EXPUNGE/VANISHED are allowed while idling. DONE ends it with the tagged OK.
"""

from __future__ import annotations


async def run(s, cmd):
    s.write_all(s.sync_updates(allow_expunge=True))
    s.write(b"+ idling\r\n")
    s.idling = cmd.tag
    s._dirty = False
    s.parser.expect_idle_done()
    return None
