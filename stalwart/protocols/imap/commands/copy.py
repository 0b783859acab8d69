"""COPY and UID COPY (RFC 9051 6.4.7, COPYUID from UIDPLUS RFC 4315 3).

The copies are new messages with their own UIDs and flags (sharing the stored blob).
A missing destination is NO [TRYCREATE]. Sequence numbers beyond the mailbox are BAD;
UIDs that do not exist are skipped (OK without COPYUID when none is left).
"""

from __future__ import annotations

from ..mailboxes import MailboxTree
from ..session import Bad, No


def target(s, name: str) -> dict:
    record = MailboxTree(s.store.list_mailboxes(s.account["id"])).find(name)
    if record is None:
        raise No("Destination mailbox does not exist", "TRYCREATE")
    return record


def source_uids(s, cmd) -> list[int]:
    view = s.selected
    try:
        uids = view.resolve(cmd.args.sequence, uid=cmd.name.startswith("UID "))
    except ValueError as exc:
        raise Bad(str(exc)) from None
    missing = [u for u in uids if u in view.pending_expunge]
    if missing and not cmd.name.startswith("UID "):
        raise No("Some of the messages were expunged", "EXPUNGEISSUED")
    return [u for u in uids if u not in view.pending_expunge]


def copyuid(uidvalidity: int, pairs: list[tuple[int, int]]) -> str:
    src = ",".join(str(a) for a, _ in pairs)
    dst = ",".join(str(b) for _, b in pairs)
    return f"COPYUID {uidvalidity} {src} {dst}"


async def run(s, cmd):
    dest = target(s, cmd.args.name)
    uids = source_uids(s, cmd)
    if not uids:
        return "COPY completed, nothing to copy"
    view = s.selected
    results = await s.store.copy(s.account["id"], [view.eids[u] for u in uids], dest["id"])
    pairs = list(zip(uids, (r["uid"] for r in results)))
    return "COPY completed", copyuid(dest["uidvalidity"], pairs)


