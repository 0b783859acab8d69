"""SELECT and EXAMINE (RFC 9051 6.3.2/6.3.3; CONDSTORE/QRESYNC parameters RFC 7162 3.2.5).

Responses, in order: [CLOSED] if a mailbox was selected (RFC 7162 3.2.11, RFC 9051), the
QRESYNC VANISHED (EARLIER) and FETCH lines, EXISTS, RECENT (IMAP4rev1 only, always 0: this
server never sets \\Recent), FLAGS, PERMANENTFLAGS, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ
(once CONDSTORE is on), UNSEEN (IMAP4rev1), the LIST line (IMAP4rev2), then
OK [READ-WRITE] or [READ-ONLY]. A failed SELECT leaves no mailbox selected.
"""

from __future__ import annotations

from .. import encode
from ..flags import to_flags
from ..mailboxes import MailboxTree
from ..selected import SelectedMailbox
from ..session import Bad, No, State


async def run(s, cmd):
    args = cmd.args
    if args.qresync is not None and not s.qresync:
        raise Bad("QRESYNC parameter needs ENABLE QRESYNC first (RFC 7162 3.2.5)", "CLIENTBUG")
    if s.selected is not None:
        s.deselect()
        s.untagged("OK [CLOSED] Previous mailbox closed")
    acc = s.account["id"]
    tree = MailboxTree(s.store.list_mailboxes(acc))
    record = tree.find(args.name)
    if record is None:
        raise No("Mailbox does not exist", "NONEXISTENT")
    if args.condstore:
        s.condstore = True
    readonly = cmd.name == "EXAMINE"
    view = SelectedMailbox(s.store, acc, record, tree.path[record["id"]], readonly)
    if args.qresync is not None and args.qresync.uidvalidity == view.uidvalidity:
        _qresync(s, view, args.qresync)
    s.untagged(f"{len(view)} EXISTS")
    if not s.rev2:
        s.untagged("0 RECENT")
    flags = view.flag_list()
    s.untagged(b"FLAGS " + flags)
    if readonly:
        s.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox")
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
    return ("EXAMINE completed", "READ-ONLY") if readonly else ("SELECT completed", "READ-WRITE")


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
