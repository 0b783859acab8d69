"""CLOSE (RFC 9051 6.4.1): expunge \\Deleted messages silently (read-write only), leave.

No EXPUNGE responses are sent (the mailbox is no longer selected when CLOSE completes).
"""

from __future__ import annotations

from .expunge import deleted_uids


async def run(s, cmd):
    view = s.selected
    if not view.readonly:
        uids = deleted_uids(s, view.uids)
        if uids:
            await s.store.expunge(view.account, view.id, uids, actor=s.account["id"])
    s.deselect()
    return "CLOSE completed"
