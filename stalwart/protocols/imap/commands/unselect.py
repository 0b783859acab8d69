"""UNSELECT (RFC 3691, RFC 9051 6.4.2): leave the mailbox without expunging anything."""

from __future__ import annotations


async def run(s, cmd):
    s.deselect()
    return "UNSELECT completed"
