"""STATUS (RFC 9051 6.3.11; SIZE RFC 8438; HIGHESTMODSEQ RFC 7162 3.1.8; APPENDLIMIT
RFC 7889): counters of a mailbox from its store record, without selecting it.

DELETED counts messages with \\Deleted (a scan). RECENT (IMAP4rev1 only) counts the
messages no session has claimed as \\Recent, plus this session's own when the mailbox is
selected here.
"""

from __future__ import annotations

from . import acl


def status_items(s, record: dict, items, owner: int | None = None) -> str:
    """``owner``: the account of ``record`` when it is not the session's (ACL)."""
    acc = s.account["id"] if owner is None else owner
    out = []
    for item in items:
        if item == "MESSAGES":
            value = record["total"]
        elif item == "UIDNEXT":
            value = record["uidnext"]
        elif item == "UIDVALIDITY":
            value = record["uidvalidity"]
        elif item == "UNSEEN":
            value = record["unseen"]
        elif item == "SIZE":
            value = record["size"]
        elif item == "HIGHESTMODSEQ":
            value = record["hms"]
        elif item == "RECENT":
            value = _recent(s, acc, record)
        elif item == "APPENDLIMIT":
            value = s.limits.max_append
        elif item == "DELETED":
            value = 0
            for _, eid in s.store.mailbox_uids(acc, record["id"]):
                email = s.store.get_email(acc, eid)
                value += bool(email and "$deleted" in email["kw"])
        else:
            continue
        out.append(f"{item} {value}")
    return " ".join(out)


def _recent(s, acc: int, record: dict) -> int:
    from bisect import bisect_right

    uids = [uid for uid, _ in s.store.mailbox_uids(acc, record["id"])]
    unclaimed = len(uids) - bisect_right(uids, s.store.recent_mark(acc, record["id"]))
    view = s.selected
    if view is not None and view.account == acc and view.id == record["id"]:
        return unclaimed + view.recent_count() if view.report_recent and not view.readonly \
            else unclaimed
    return unclaimed


async def run(s, cmd):
    target = acl.require(s, cmd.args.name, "r")   # another account's: "r" (RFC 4314 4)
    if "HIGHESTMODSEQ" in cmd.args.items:
        s.condstore = True
    s.untagged(b"STATUS " + s.mailbox_name(target.path) + b" (" +
               status_items(s, target.record, cmd.args.items,
                            owner=target.owner).encode() + b")")
    return "STATUS completed"
