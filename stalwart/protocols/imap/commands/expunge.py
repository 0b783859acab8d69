"""EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3, UIDPLUS RFC 4315 2.1).

Removes the messages flagged \\Deleted (for UID EXPUNGE: only those in the UID set) from
the selected mailbox. The EXPUNGE (or VANISHED) responses come from the view's sync just
before the tagged OK, like those caused by other sessions. Refused on a read-only mailbox.
"""

from __future__ import annotations

from ..session import Bad, No


def deleted_uids(s, uids) -> list[int]:
    view = s.selected
    acc = view.account   # the owner: another account for a shared mailbox (ACL)
    out = []
    for uid in uids:
        eid = view.eids.get(uid)
        email = s.store.get_email(acc, eid) if eid is not None else None
        if email is not None and "$deleted" in email["kw"]:
            out.append(uid)
    return out


async def run(s, cmd):
    view = s.selected
    if view.readonly:
        raise No("Mailbox is read-only")
    candidates = view.uids
    if cmd.args is not None and cmd.args.uids is not None:
        try:
            candidates = view.resolve(cmd.args.uids, uid=True)
        except ValueError as exc:
            raise Bad(str(exc)) from None
    uids = deleted_uids(s, [u for u in candidates if u not in view.pending_expunge])
    if uids:
        await s.store.expunge(view.account, view.id, uids, actor=s.account["id"])
    return "EXPUNGE completed"
