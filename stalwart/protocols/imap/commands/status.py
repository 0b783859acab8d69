"""STATUS (RFC 9051 6.3.11; SIZE RFC 8438; HIGHESTMODSEQ RFC 7162 3.1.8; APPENDLIMIT
RFC 7889): counters of a mailbox from its store record, without selecting it.

DELETED counts messages with \\Deleted (a scan); RECENT is always 0 (IMAP4rev1 only).
"""

from __future__ import annotations

from ..mailboxes import MailboxTree
from ..session import No


def status_items(s, record: dict, items) -> str:
    acc = s.account["id"]
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
            value = 0
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


async def run(s, cmd):
    tree = MailboxTree(s.store.list_mailboxes(s.account["id"]))
    record = tree.find(cmd.args.name)
    if record is None:
        raise No("Mailbox does not exist", "NONEXISTENT")
    if "HIGHESTMODSEQ" in cmd.args.items:
        s.condstore = True
    s.untagged(b"STATUS " + s.mailbox_name(tree.path[record["id"]]) + b" (" +
               status_items(s, record, cmd.args.items).encode() + b")")
    return "STATUS completed"
