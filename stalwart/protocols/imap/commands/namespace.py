"""NAMESPACE (RFC 2342, RFC 9051 6.3.10): the personal namespace "" and the "other users"
namespace "Other Users/" (mailboxes other accounts share through ACL, RFC 4314; see
commands/acl.py), both with separator "/"; no shared (public) namespace.
"""

from __future__ import annotations

from ..mailboxes import SEP
from .acl import OTHER_PREFIX


async def run(s, cmd):
    s.untagged(f'NAMESPACE (("" "{SEP}")) (("{OTHER_PREFIX}" "{SEP}")) NIL')
    return "NAMESPACE completed"
