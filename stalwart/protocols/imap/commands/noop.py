"""NOOP (RFC 9051 6.1.2): does nothing but let pending updates be reported."""

from __future__ import annotations


async def run(s, cmd):
    return "NOOP completed"
