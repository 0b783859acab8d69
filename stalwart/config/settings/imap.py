"""Settings of the IMAP server.

Read by ``stalwart.protocols.imap.server.limits_from_config`` in the imap workers.
"""

from __future__ import annotations

from ..registry import declare, section
from ..types import Size

section("imap", """
The IMAP server (RFC 9051, IMAP4rev1 clients too). Its listeners are the
`server.listener.<id>` entries with `protocol = "imap"`.
""")

declare("imap.append-limit", Size(), """
    Largest message APPEND (and REPLACE) accepts, advertised to clients as
    `APPENDLIMIT=<octets>` (RFC 7889) and in `STATUS (APPENDLIMIT)`. A larger message is
    refused with `NO [TOOBIG]` before it is sent (synchronizing literal) or read and
    dropped (non-synchronizing literal, RFC 7888).""",
    section="imap", default="50mb")
