"""COPY and UID COPY (RFC 9051 6.4.7, COPYUID from UIDPLUS RFC 4315 3).

The copies are new messages with their own UIDs and flags (sharing the stored blob).
A missing destination is NO [TRYCREATE]. Sequence numbers beyond the mailbox are BAD;
UIDs that do not exist are skipped (OK without COPYUID when none is left).
"""

from __future__ import annotations

from ..session import Bad, No
from . import acl


def target(s, name: str) -> dict:
    """The destination: the record, with "owner" (another account's mailbox is reached
    through ACL; the store checks the "i" right)."""
    found = acl.resolve(s, name)
    if found is None:
        raise No("Destination mailbox does not exist", "TRYCREATE")
    return {**found.record, "owner": found.owner}


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
    ids = [view.eids[u] for u in uids]
    if dest["owner"] == view.account:
        results = await s.store.copy(view.account, ids, dest["id"], actor=s.account["id"],
                                     source=view.id)
    else:   # between accounts (a shared mailbox and one's own): ACL checked by the store
        results = await s.store.copy_across(s.account["id"], view.account, view.id, ids,
                                            dest["owner"], dest["id"])
    pairs = list(zip(uids, (r["uid"] for r in results)))
    return "COPY completed", copyuid(dest["uidvalidity"], pairs)


