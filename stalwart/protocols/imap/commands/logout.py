"""LOGOUT (RFC 9051 6.1.3): BYE, the tagged OK, then the connection is closed."""

from __future__ import annotations

from ..session import State


async def run(s, cmd):
    s.untagged("BYE Logging out")
    s.tagged(cmd.tag, "OK", "LOGOUT completed")
    s.state = State.LOGOUT
    s.close()
    return None
