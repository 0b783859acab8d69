"""STORE and UID STORE (RFC 9051 6.4.6; UNCHANGEDSINCE from CONDSTORE, RFC 7162 3.1.3).

- FLAGS replaces, +FLAGS adds, -FLAGS removes; \\Recent is refused by the parser.
- Without .SILENT, a FETCH (FLAGS) is sent for every message named (UID too for UID STORE,
  MODSEQ once CONDSTORE is on). With .SILENT and CONDSTORE, FETCH (MODSEQ) still reports
  the new modseq of the changed messages (RFC 7162 3.1.3).
- UNCHANGEDSINCE: messages changed after that modseq are left alone and listed in
  OK [MODIFIED set] (sequence numbers, or UIDs for UID STORE).
- Refused on a read-only mailbox; a message expunged by another session is skipped and the
  answer is NO [EXPUNGEISSUED] for the non-UID form.
"""

from __future__ import annotations

from .. import encode
from ..flags import to_keywords
from ..session import Bad, No


async def run(s, cmd):
    view = s.selected
    args = cmd.args
    uid_cmd = cmd.name.startswith("UID ")
    if view.readonly:
        raise No("Mailbox is read-only")
    try:
        uids = view.resolve(args.sequence, uid=uid_cmd)
    except ValueError as exc:
        raise Bad(str(exc)) from None
    if args.unchanged_since is not None:
        s.condstore = True
    gone = [u for u in uids if u in view.pending_expunge]
    uids = [u for u in uids if u not in view.pending_expunge]
    acc = view.account   # the owner: another account for a shared mailbox (ACL)
    keywords = to_keywords(args.flags)
    result = {"updated": [], "conflicts": []}
    if uids:
        kwargs = {"add": keywords} if args.mode == "+" else \
            {"remove": keywords} if args.mode == "-" else {"replace": keywords}
        result = await s.store.set_keywords(acc, [view.eids[u] for u in uids],
                                            unchanged_since=args.unchanged_since,
                                            actor=s.account["id"], mailbox=view.id, **kwargs)
    conflicts = set(result["conflicts"])
    updated = set(result["updated"])
    modified = []
    for uid in uids:
        eid = view.eids[uid]
        if eid in conflicts:
            modified.append(uid if uid_cmd else view.seq_of(uid))
            continue
        email = s.store.get_email(acc, eid)
        if email is None:
            continue
        view._cache(uid, email)
        items = []
        if uid_cmd or s.qresync:
            items.append(f"UID {uid}")
        if not args.silent:
            items.append("FLAGS (" + " ".join(view.flags_of(uid, email["kw"])) + ")")
        if s.condstore and (not args.silent or eid in updated):
            items.append(f"MODSEQ ({email['modseq']})")
        if args.silent and not (s.condstore and eid in updated):
            continue
        s.untagged(f"{view.seq_of(uid)} FETCH ({' '.join(items)})")
    if modified:
        return "Conditional STORE failed for some messages", \
            f"MODIFIED {encode.number_set(modified)}"
    if gone and not uid_cmd:
        raise No("Some of the messages were expunged", "EXPUNGEISSUED")
    return "STORE completed"
