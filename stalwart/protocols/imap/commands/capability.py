"""CAPABILITY (RFC 9051 6.1.1): the capabilities of the current state, then OK."""

from __future__ import annotations


async def run(s, cmd):
    s.untagged("CAPABILITY " + s.capabilities())
    return "CAPABILITY completed"
