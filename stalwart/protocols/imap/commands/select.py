"""SELECT and EXAMINE (RFC 9051 6.3.2/6.3.3; CONDSTORE/QRESYNC parameters RFC 7162 3.2.5).

Responses, in order: [CLOSED] if a mailbox was selected (RFC 7162 3.2.11, RFC 9051), the
QRESYNC VANISHED (EARLIER) and FETCH lines, EXISTS, RECENT (IMAP4rev1 only: SELECT claims
the messages no session has seen, EXAMINE only counts them; see selected.py), FLAGS, PERMANENTFLAGS, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ
(once CONDSTORE is on), UNSEEN (IMAP4rev1), the LIST line (IMAP4rev2), then
OK [READ-WRITE] or [READ-ONLY]. A failed SELECT leaves no mailbox selected.
"""

from __future__ import annotations

from .. import encode
from ..flags import to_flags
from ..selected import SelectedMailbox
from ..session import Bad, State
from . import acl


async def run(s, cmd):
    args = cmd.args
    if args.qresync is not None and not s.qresync:
        raise Bad("QRESYNC parameter needs ENABLE QRESYNC first (RFC 7162 3.2.5)", "CLIENTBUG")
    if s.selected is not None:
        s.deselect()
        s.untagged("OK [CLOSED] Previous mailbox closed")
    # The mailbox may be another account's (ACL, RFC 4314 4): "r" to select it, and
    # READ-ONLY without any right to change it.
    target = acl.require(s, args.name, "r")
    record = target.record
    if args.condstore:
        s.condstore = True
    readonly = cmd.name == "EXAMINE" or not any(r in target.rights for r in "swte")
    view = SelectedMailbox(s.store, target.owner, record, target.path, readonly)
    view.rights = target.rights
    if args.qresync is not None and args.qresync.uidvalidity == view.uidvalidity:
        _qresync(s, view, args.qresync)
    s.untagged(f"{len(view)} EXISTS")
    if not s.rev2:
        await view.start_recent()   # \Recent: claimed by SELECT, looked at by EXAMINE
        s.untagged(f"{view.recent_count()} RECENT")
    flags = view.flag_list()
    s.untagged(b"FLAGS " + flags)
    if readonly:
        s.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox")
    elif target.shared:
        s.untagged(b"OK [PERMANENTFLAGS " + acl.permanent_flags(flags, target.rights) +
                   b"] Flags permitted")
    else:
        s.untagged(b"OK [PERMANENTFLAGS " + flags[:-1] + b" \\*)] Flags permitted")
    s.untagged(f"OK [UIDVALIDITY {view.uidvalidity}] UIDs valid")
    s.untagged(f"OK [UIDNEXT {view.uidnext}] Predicted next UID")
    if s.condstore:
        s.untagged(f"OK [HIGHESTMODSEQ {view.known_modseq}] Highest")
    if not s.rev2:
        for seq, uid in enumerate(view.uids, 1):
            if "$seen" not in view.flags.get(uid, (frozenset({"$seen"}), 0))[0]:
                s.untagged(f"OK [UNSEEN {seq}] First unseen")
                break
    if s.rev2:
        s.untagged(b'LIST () "/" ' + s.mailbox_name(view.name))
    s.selected = view
    s.state = State.SELECTED
    return f"{cmd.name} completed", "READ-ONLY" if readonly else "READ-WRITE"


def _qresync(s, view, q) -> None:
    """RFC 7162 3.2.5.2: what vanished and what changed since the client's modseq."""
    vanished = s.store.vanished_since(view.account, view.id, q.modseq)
    if q.known_uids is not None:
        top = max(view.uids[-1] if view.uids else 0, max(vanished, default=0))
        vanished = [u for u in vanished if q.known_uids.contains(u, top)]
    vanished = [u for u in vanished if u not in view.eids]
    if vanished:
        s.untagged(f"VANISHED (EARLIER) {encode.number_set(vanished)}")
    for seq, uid in enumerate(view.uids, 1):
        kw, modseq = view.flags.get(uid, (frozenset(), 0))
        if modseq > q.modseq:
            s.untagged(f"{seq} FETCH (UID {uid} FLAGS (" + " ".join(to_flags(kw)) +
                       f") MODSEQ ({modseq}))")
