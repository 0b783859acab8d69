"""NAMESPACE (RFC 2342, RFC 9051 6.3.10): one personal namespace, "" with separator "/".

Shared mailboxes (ACL, RFC 4314) will add an "other users" namespace when they land.
"""

from __future__ import annotations

from ..mailboxes import SEP


async def run(s, cmd):
    s.untagged(f'NAMESPACE (("" "{SEP}")) NIL NIL')
    return "NAMESPACE completed"
