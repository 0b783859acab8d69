"""CAPABILITY (RFC 9051 6.1.1): the capabilities of the current state, then OK.

``extensions(session)`` lists the capabilities of the extensions implemented in their own
command modules (the session appends them once authenticated):

- ``COMPRESS=DEFLATE`` (RFC 4978), until compression is active;
- ``METADATA`` and ``METADATA-SERVER`` (RFC 5464: mailbox and server entries);
- ``NOTIFY`` (RFC 5465).

(``APPENDLIMIT=n``, RFC 7889, is in the session's own list: the parser enforces it.)
"""

from __future__ import annotations


def extensions(s) -> list[str]:
    caps = []
    if s.compression is None:
        caps.append("COMPRESS=DEFLATE")
    caps += ["METADATA", "METADATA-SERVER", "NOTIFY"]
    return caps


async def run(s, cmd):
    s.untagged("CAPABILITY " + s.capabilities())
    return "CAPABILITY completed"
