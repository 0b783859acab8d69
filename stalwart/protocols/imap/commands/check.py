"""CHECK (RFC 3501 6.4.1; removed by RFC 9051 but still sent by IMAP4rev1 clients).

Every write is durable when acknowledged, so there is nothing to flush: it acts as NOOP.
"""

from __future__ import annotations


async def run(s, cmd):
    return "CHECK completed"
