"""FETCH and UID FETCH (RFC 9051 6.4.5) with BINARY (RFC 3516), CONDSTORE/QRESYNC
(RFC 7162: MODSEQ, CHANGEDSINCE, VANISHED) and PREVIEW (RFC 8970).

- UID FETCH always returns UID; CHANGEDSINCE returns only messages whose modseq is
  higher and adds MODSEQ; VANISHED (UID FETCH only, QRESYNC enabled) first reports the
  UIDs of the set expunged since that modseq as ``* VANISHED (EARLIER)``.
- BODY[...] without PEEK, RFC822 and RFC822.TEXT and BINARY[...] set \\Seen on a
  read-write mailbox (in one store write, before the responses); those messages then also
  return FLAGS.
- Partial fetches ``<offset.count>`` answer ``BODY[section]<offset>`` with at most count
  octets; data goes as a quoted string when it fits, else as a literal (literal8 for
  BINARY data with NUL).
- BINARY of a part whose transfer encoding is unknown is NO [UNKNOWN-CTE].
- With CONDSTORE enabled, a response that carries FLAGS carries MODSEQ as well.
- A message another session expunged (not yet reported) is skipped; the non-UID form then
  ends with NO [EXPUNGEISSUED], the UID form with OK.
"""

from __future__ import annotations

from .. import encode
from ..message import UnknownCTE
from ..session import Bad, No
from ..types import FetchItem, Section
from . import acl

_SETS_SEEN = {"RFC822", "RFC822.TEXT"}


def _sets_seen(item: FetchItem) -> bool:
    return item.name in _SETS_SEEN or (item.name in ("BODY[]", "BINARY") and not item.peek)


def _partial(data: bytes, partial) -> bytes:
    if partial is None:
        return data
    start, count = partial
    return data[start:start + count]


def _item(s, item: FetchItem, uid: int, eid: int, email: dict) -> bytes:
    utf8 = s.utf8
    name = item.name
    if name == "UID":
        return b"UID %d" % uid
    if name == "FLAGS":
        return b"FLAGS " + encode.flag_list(s.selected.flags_of(uid, email["kw"]))
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + encode.internal_date(email["received"])
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % email["size"]
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % email["modseq"]
    msg = s.message(eid)
    if name == "ENVELOPE":
        return b"ENVELOPE " + msg.envelope(utf8)
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + msg.bodystructure(True, utf8)
    if name == "BODY":
        return b"BODY " + msg.bodystructure(False, utf8)
    if name == "RFC822":
        return b"RFC822 " + encode.literal(msg.raw)
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + encode.literal(msg.section(Section(text="HEADER")))
    if name == "RFC822.TEXT":
        return b"RFC822.TEXT " + encode.literal(msg.section(Section(text="TEXT")))
    if name == "PREVIEW":
        return b"PREVIEW " + encode.string(msg.preview, utf8)
    if name == "BODY[]":
        data = _partial(msg.section(item.section), item.partial)
        origin = b"<%d>" % item.partial[0] if item.partial else b""
        return b"BODY[" + item.section.spec().encode() + b"]" + origin + b" " + \
            encode.string(data, utf8)
    if name in ("BINARY", "BINARY.SIZE"):
        try:
            data = msg.binary(item.section.part)
        except UnknownCTE:
            raise No("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
        spec = item.section.spec().encode()
        if name == "BINARY.SIZE":
            return b"BINARY.SIZE[" + spec + b"] %d" % len(data)
        data = _partial(data, item.partial)
        origin = b"<%d>" % item.partial[0] if item.partial else b""
        body = encode.literal(data) if b"\x00" in data else encode.string(data, utf8)
        return b"BINARY[" + spec + b"]" + origin + b" " + body
    raise Bad(f"Unsupported fetch item {name}")


async def run(s, cmd):
    view = s.selected
    args = cmd.args
    uid_cmd = cmd.name.startswith("UID ")
    acc = view.account   # the owner: another account for a shared mailbox (ACL)
    if args.vanished and not (uid_cmd and s.qresync):
        raise Bad("VANISHED needs UID FETCH and ENABLE QRESYNC (RFC 7162 3.2.6)", "CLIENTBUG")
    try:
        uids = view.resolve(args.sequence, uid=uid_cmd)
    except ValueError as exc:
        raise Bad(str(exc)) from None
    items = list(args.items)
    names = {i.name for i in items}
    if uid_cmd and "UID" not in names:
        items.insert(0, FetchItem("UID"))
    if args.changed_since is not None or "MODSEQ" in names:
        s.condstore = True
        if "MODSEQ" not in names:
            items.append(FetchItem("MODSEQ"))
    if args.vanished:
        vanished = s.store.vanished_since(acc, view.id, args.changed_since)
        top = max([view.uids[-1] if view.uids else 0] + vanished)
        vanished = [u for u in vanished if u not in view.eids and args.sequence.contains(u, top)]
        if vanished:
            s.untagged(f"VANISHED (EARLIER) {encode.number_set(vanished)}")
    # Flags, modseq, date and size as the store has them now, from the mailbox snapshot
    # (selected.py): no email record is read for FLAGS, and the work is O(requested).
    records = view.records([u for u in uids if u not in view.pending_expunge])
    if args.changed_since is None:
        emails = records
    else:
        emails = {u: e for u, e in records.items() if e["modseq"] > args.changed_since}
    missing = len(emails) < len(uids) and args.changed_since is None
    if not view.readonly and "s" in acl.view_rights(view) and any(_sets_seen(i) for i in items):
        unseen = [view.eids[u] for u, e in emails.items() if "$seen" not in e["kw"]]
        if unseen:
            await s.store.set_keywords(acc, unseen, add=["$seen"], actor=s.account["id"],
                                       mailbox=view.id)
            changed = set(unseen)
            for uid in list(emails):
                if view.eids[uid] in changed:
                    emails[uid] = s.store.get_email(acc, view.eids[uid]) or emails[uid]
                    view._cache(uid, emails[uid])
            if "FLAGS" not in names:
                items.append(FetchItem("FLAGS"))
                names.add("FLAGS")
    if s.condstore and "FLAGS" in names and "MODSEQ" not in {i.name for i in items}:
        # RFC 7162 3.1.2: once CONDSTORE is enabled, every FETCH response carrying FLAGS
        # carries MODSEQ too.
        items.append(FetchItem("MODSEQ"))
    for uid, email in emails.items():
        eid = view.eids[uid]
        parts = [_item(s, item, uid, eid, email) for item in items]
        if any(item.name == "FLAGS" for item in items):
            view._cache(uid, email)  # the client now knows these flags
        s.write(b"* %d FETCH (" % view.seq_of(uid) + b" ".join(parts) + b")\r\n")
    if missing and not uid_cmd:
        raise No("Some messages were expunged by another session", "EXPUNGEISSUED")
    return "FETCH completed"
