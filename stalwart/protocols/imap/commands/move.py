"""MOVE and UID MOVE (RFC 6851): copy, then expunge from the source, as one store step.

Responses: an untagged OK [COPYUID ...] first, then EXPUNGE (or VANISHED under QRESYNC)
for every moved message, then the tagged OK (RFC 6851 3.3). Refused on a read-only
mailbox; a missing destination is NO [TRYCREATE]; moving into the same mailbox is NO
[CANNOT] (the store keeps one UID per mailbox per message).
"""

from __future__ import annotations

from ..session import No
from .copy import copyuid, source_uids, target


async def run(s, cmd):
    view = s.selected
    if view.readonly:
        raise No("Mailbox is read-only")
    dest = target(s, cmd.args.name)
    if dest["id"] == view.id:
        raise No("Source and destination are the same mailbox", "CANNOT")
    if dest["owner"] != view.account:
        raise No("Messages cannot be moved between accounts; COPY them instead", "CANNOT")
    uids = source_uids(s, cmd)
    if not uids:
        return "MOVE completed, nothing to move"
    results = await s.store.move(view.account, [view.eids[u] for u in uids], view.id,
                                 dest["id"], actor=s.account["id"])
    pairs = list(zip(uids, (r["uid"] for r in results)))
    s.untagged(f"OK [{copyuid(dest['uidvalidity'], pairs)}] Moved")
    s.write_all(view.expunge_responses(uids, s.qresync))
    return "MOVE completed"
