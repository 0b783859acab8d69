"""The selected mailbox as one session sees it: sequence numbers, UIDs, cached flags.

Invariants (RFC 9051 sections 2.3.1.2 and 7.5):

- ``uids`` is strictly increasing; message sequence number n is ``uids[n - 1]``. It changes
  only when this session tells the client: EXISTS appends, EXPUNGE/VANISHED removes.
- A message removed in the store by another session (or by this one's MOVE before it
  reports) stays in ``uids`` until an EXPUNGE may be sent: never while a FETCH, STORE or
  SEARCH (non-UID) is being answered, nor when no command is in progress (except IDLE).
  Those UIDs wait in ``pending_expunge``.
- ``known_modseq`` is the mailbox's highest modseq up to which the client has been told
  everything (it only grows); ``sync`` reports what changed after it.
- ``flags`` caches (keywords, modseq) per UID as last reported; a change is reported once.
- ``saved`` is the SEARCHRES result (RFC 5182) as UIDs; expunged UIDs leave it.
- \\Recent (IMAP4rev1 only, ``report_recent``): the UID ranges this session claimed in
  the store (``claim_recent``; a claim is exclusive, so a message is recent in one session
  only); ``* n RECENT`` follows every EXISTS.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
import weakref

from ...store import StoreError
from . import encode
from .flags import to_flags
from .types import SequenceSet

_SYSTEM_KEYWORDS = frozenset({"$seen", "$answered", "$flagged", "$draft", "$deleted"})


class _Snapshot:
    """What SELECT needs of one mailbox (UIDs, email ids, flags), shared by the sessions of
    this process and brought up to date from the change log rather than read again: a
    SELECT of a 10,000-message mailbox read every email record (msgpack) each time, which
    dominated the mixed benchmark (bench/macro/imap_mixed.py) with 100 clients.

    Invariant: the fields describe the mailbox at modseq ``record["hms"]``. Views share the
    containers (an idle session costs no copy of them) and copy them before their first
    change (``SelectedMailbox._own``); so the snapshot never changes them in place either:
    ``catch_up`` replaces them."""

    __slots__ = ("record", "uids", "eids", "flags", "keywords", "uid_of")

    def __init__(self, record: dict, rows: list) -> None:
        self.record = record
        self.uids = [row[0] for row in rows]
        self.eids = {uid: eid for uid, eid, _, _ in rows}
        self.uid_of = {eid: uid for uid, eid, _, _ in rows}
        self.flags = {uid: (frozenset(kw), modseq) for uid, _, kw, modseq in rows}
        self.keywords = set()
        for kw, _ in self.flags.values():
            self.keywords |= kw - _SYSTEM_KEYWORDS

    def catch_up(self, store, account: int, record: dict) -> bool:
        """Apply the changes after ``self.record["hms"]`` up to ``record``; False when a
        fresh read is cheaper or needed (history unavailable, many changes)."""
        mbox = record["id"]
        since = self.record["hms"]
        try:
            changes = store.changes_since(account, "Email", since)
            gone = store.vanished_since(account, mbox, since)
            new = store.mailbox_uids_after(account, mbox, self.uids[-1] if self.uids else 0)
        except StoreError:
            return False
        changed = set(changes["updated"]) | set(changes["created"])
        if len(changed) + len(gone) > max(256, len(self.uids) // 4):
            return False
        if changed or gone or new:
            # Views share these containers (copy on write): never change them in place.
            self.uids, self.eids, self.flags = list(self.uids), dict(self.eids), dict(self.flags)
            self.keywords, self.uid_of = set(self.keywords), dict(self.uid_of)
        if gone:
            dead = {u for u in gone if u in self.eids}
            if dead:
                self.uids = [u for u in self.uids if u not in dead]
                for uid in dead:
                    self.uid_of.pop(self.eids.pop(uid), None)
                    self.flags.pop(uid, None)
        for uid, eid in new:
            self.uids.append(uid)
            self.eids[uid] = eid
            self.uid_of[eid] = uid
            changed.add(eid)
        for eid in changed:
            uid = self.uid_of.get(eid)
            if uid is None:
                continue
            email = store.get_email(account, eid)
            if email is None or mbox not in email["mb"]:
                continue   # removed meanwhile: the VANISHED index of a later change says so
            kw = frozenset(email["kw"])
            self.flags[uid] = (kw, email["modseq"])
            self.keywords |= kw - _SYSTEM_KEYWORDS
        self.record = record
        return True


#: store -> {(account, mailbox): snapshot}; per store object (tests run many stores in one
#: process), dropped with it.
_SNAPSHOTS: "weakref.WeakKeyDictionary[object, dict[tuple[int, int], _Snapshot]]" = \
    weakref.WeakKeyDictionary()
SNAPSHOT_CACHE = 64   # mailboxes per store (i.e. per process in the server)


def _snapshot(store, account: int, mbox: int) -> _Snapshot | None:
    cache = _SNAPSHOTS.get(store)
    if cache is None:
        cache = _SNAPSHOTS[store] = {}
    record = store.get_mailbox(account, mbox)
    if record is None:
        cache.pop((account, mbox), None)
        return None
    key = (account, mbox)
    snap = cache.pop(key, None)
    if snap is not None and snap.record["uidvalidity"] == record["uidvalidity"] and \
            snap.record["hms"] <= record["hms"] and \
            (snap.record["hms"] == record["hms"] or snap.catch_up(store, account, record)):
        cache[key] = snap   # most recently used last
        return snap
    snap = _Snapshot(record, store.mailbox_messages(account, mbox))
    if len(cache) >= SNAPSHOT_CACHE:
        cache.pop(next(iter(cache)))
    cache[key] = snap
    return snap


class SelectedMailbox:
    def __init__(self, store, account: int, record: dict, name: str, readonly: bool) -> None:
        self.store = store
        self.account = account
        self.id = record["id"]
        self.name = name
        self.readonly = readonly
        # The process-wide snapshot of this mailbox, brought up to date (see _Snapshot);
        # this view shares its containers until it changes them (copy on write, _own).
        snap = _snapshot(store, account, self.id)
        record = snap.record if snap is not None else record
        self.uidvalidity = record["uidvalidity"]
        self.uidnext = record["uidnext"]
        self.known_modseq = record["hms"]
        self._shared = snap is not None   # containers shared with the snapshot until _own()
        if snap is not None:
            self.uids: list[int] = snap.uids
            self.eids: dict[int, int] = snap.eids
            self.flags: dict[int, tuple[frozenset, int]] = snap.flags
            self.keywords: set[str] = snap.keywords
        else:   # the mailbox is gone: an empty view, the next sync says so
            self.uids, self.eids, self.flags, self.keywords = [], {}, {}, set()
        self.pending_expunge: set[int] = set()
        self.saved: set[int] = set()
        self.report_recent = False
        self.recent_ranges: list[tuple[int, int]] = []
        self.recent_claimed = 0
        self._recent_told = 0

    def _own(self) -> None:
        """Copy the containers shared with the mailbox snapshot before changing them."""
        if self._shared:
            self.uids, self.eids = list(self.uids), dict(self.eids)
            self.flags, self.keywords = dict(self.flags), set(self.keywords)
            self._shared = False

    def _cache(self, uid: int, email: dict) -> bool:
        """Record a message's flags; True if they differ from what was cached."""
        kw = frozenset(email["kw"])
        old = self.flags.get(uid)
        entry = (kw, email["modseq"])
        if old == entry:
            return False
        self._own()
        self.flags[uid] = entry
        self.keywords |= kw - _SYSTEM_KEYWORDS
        return True

    # ------------------------------------------------------------------ numbering
    def __len__(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def resolve(self, seqset: SequenceSet, uid: bool) -> list[int]:
        """UIDs named by a sequence set, in ascending order.

        Message numbers beyond the mailbox are a client error (RFC 9051 6.4.8 makes them
        BAD for non-UID commands: raises ValueError); UIDs that do not exist are ignored.
        """
        out: set[int] = set()
        if seqset.saved:
            out |= {u for u in self.saved if u in self.eids}
        if uid:
            largest = self.uids[-1] if self.uids else 0
            for lo, hi in seqset.resolve(largest):
                a = bisect_left(self.uids, lo)
                b = bisect_right(self.uids, hi)
                out.update(self.uids[a:b])
        else:
            n = len(self.uids)
            for lo, hi in seqset.resolve(n):
                if hi > n or lo < 1:
                    raise ValueError(f"Invalid message sequence number {hi} "
                                     f"(the mailbox has {n} messages)")
                out.update(self.uids[lo - 1:hi])
        return sorted(out)

    def flag_list(self) -> bytes:
        return encode.flag_list(to_flags(sorted(_SYSTEM_KEYWORDS | self.keywords)))

    # ------------------------------------------------------------------ changes
    def sync(self, *, allow_expunge: bool, condstore: bool, qresync: bool,
             uid_in_fetch: bool, utf8: bool = True) -> list[bytes]:
        """Untagged responses bringing the client up to date with the store."""
        out: list[bytes] = []
        record = self.store.get_mailbox(self.account, self.id)
        current: dict[int, int]
        if record is None:
            current = {}  # the mailbox was deleted: everything in it is gone
            gone = set(self.uids)
        elif record["hms"] == self.known_modseq and not (allow_expunge and self.pending_expunge):
            return out
        changed_eids: set[int] = set()
        if record is not None:
            # Only what changed after known_modseq: UIDs removed since (the VANISHED index),
            # UIDs above the last one known, emails changed (the change log). A full scan
            # of the mailbox at every command cost O(messages) under concurrent STOREs.
            last = self.uids[-1] if self.uids else 0
            try:
                changes = self.store.changes_since(self.account, "Email", self.known_modseq)
                changed_eids = set(changes["updated"]) | set(changes["created"])
                gone = set(self.store.vanished_since(self.account, self.id,
                                                     self.known_modseq)) & set(self.eids)
                current = dict(self.store.mailbox_uids_after(self.account, self.id, last))
            except StoreError:
                current = dict(self.store.mailbox_uids(self.account, self.id))
                changed_eids = set(current.values())
                gone = {u for u in self.uids if u not in current}
        self.pending_expunge |= gone
        if allow_expunge and self.pending_expunge:
            out += self.expunge_responses(sorted(self.pending_expunge), qresync)
        new = [u for u in sorted(current) if u not in self.eids and (not self.uids or u > self.uids[-1])]
        before_keywords = set(self.keywords)
        flag_updates: list[int] = []
        for uid in self.uids:
            eid = self.eids[uid]
            if uid in self.pending_expunge or eid not in changed_eids:
                continue
            email = self.store.get_email(self.account, eid)
            if email is not None:
                old = self.flags.get(uid)
                if self._cache(uid, email) and (old is None or old[0] != frozenset(email["kw"])
                                                or condstore):
                    flag_updates.append(uid)
        if new:
            self._own()
        for uid in new:
            self.uids.append(uid)
            self.eids[uid] = current[uid]
            email = self.store.get_email(self.account, current[uid])
            if email is not None:
                self._cache(uid, email)
        if self.keywords != before_keywords:
            out.append(b"* FLAGS " + self.flag_list() + b"\r\n")
            out.append(b"* OK [PERMANENTFLAGS " + self.flag_list()[:-1] + b" \\*)] Flags\r\n")
        if new:
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        if self.report_recent and new:   # RFC 3501 7.3.2: with the size change
            self._recent_told = self.recent_count()
            out.append(b"* %d RECENT\r\n" % self._recent_told)
        for uid in flag_updates:
            out.append(self.flags_response(uid, condstore, uid_in_fetch or qresync))
        if record is not None:
            self.uidnext = record["uidnext"]
            self.known_modseq = max(self.known_modseq, record["hms"])
            if not self._shared and not self.pending_expunge:
                self._reshare()
        return out

    def _reshare(self) -> None:
        """Drop this view's own containers for the snapshot's when they are equal again
        (the client has been told everything): after a change reaches every idle session,
        they share one copy again instead of keeping one each."""
        snap = _snapshot(self.store, self.account, self.id)
        if snap is not None and snap.record["hms"] == self.known_modseq and \
                snap.uids == self.uids and snap.eids == self.eids and \
                snap.flags == self.flags and snap.keywords == self.keywords:
            self.uids, self.eids, self.flags, self.keywords = \
                snap.uids, snap.eids, snap.flags, snap.keywords
            self._shared = True

    def expunge_responses(self, uids: list[int], qresync: bool) -> list[bytes]:
        """Remove ``uids`` from the view and say so (highest sequence number first, so
        every EXPUNGE names the number the client has at that moment)."""
        present = [u for u in uids if self.seq_of(u) is not None]
        out: list[bytes] = []
        if qresync and present:
            out.append(f"* VANISHED {encode.number_set(present)}\r\n".encode())
        if present:
            self._own()
        for uid in sorted(present, reverse=True):
            seq = self.seq_of(uid)
            if not qresync:
                out.append(b"* %d EXPUNGE\r\n" % seq)
            del self.uids[seq - 1]
            self.eids.pop(uid, None)
            self.flags.pop(uid, None)
        self.saved -= set(uids)
        self.pending_expunge -= set(uids)
        return out

    def flags_response(self, uid: int, condstore: bool, with_uid: bool) -> bytes:
        kw, modseq = self.flags[uid]
        items = []
        if with_uid:
            items.append(b"UID %d" % uid)
        items.append(b"FLAGS " + encode.flag_list(self.flags_of(uid, kw)))
        if condstore:
            items.append(b"MODSEQ (%d)" % modseq)
        return b"* %d FETCH (%s)\r\n" % (self.seq_of(uid), b" ".join(items))

    # ------------------------------------------------------------------ \\Recent
    def is_recent(self, uid: int) -> bool:
        return self.report_recent and any(lo <= uid <= hi for lo, hi in self.recent_ranges)

    def recent_count(self) -> int:
        return sum(bisect_right(self.uids, hi) - bisect_left(self.uids, lo)
                   for lo, hi in self.recent_ranges)

    def flags_of(self, uid: int, keywords) -> list[str]:
        """The IMAP flags of message ``uid``: its keywords, and \\Recent when it is."""
        flags = to_flags(keywords)
        if self.is_recent(uid):
            flags.append("\\Recent")
        return flags

    def add_recent(self, first: int, last: int) -> None:
        if first <= last:
            self.recent_ranges.append((first, last))
        self.recent_claimed = max(self.recent_claimed, last)

    async def start_recent(self) -> None:
        """SELECT/EXAMINE by an IMAP4rev1 client: SELECT claims the new messages, EXAMINE
        only looks at the ones no session has claimed (RFC 3501 6.3.2)."""
        self.report_recent = True
        record = self.store.get_mailbox(self.account, self.id) or {"uidnext": self.uidnext}
        if self.readonly:
            self.add_recent(self.store.recent_mark(self.account, self.id) + 1,
                            record["uidnext"] - 1)
        else:
            self.add_recent(*await self.store.claim_recent(self.account, self.id))
        self._recent_told = self.recent_count()

    async def claim_recent(self) -> None:
        """Claim, in the store, the messages that arrived since the last claim (only for
        a read-write IMAP4rev1 view; a read-only one never takes \\Recent away)."""
        if not self.report_recent or self.readonly:
            return
        record = self.store.get_mailbox(self.account, self.id)
        if record is None or record["uidnext"] - 1 <= self.recent_claimed:
            return
        if self.store.recent_mark(self.account, self.id) >= record["uidnext"] - 1:
            self.recent_claimed = record["uidnext"] - 1   # another session took them
            return
        self.add_recent(*await self.store.claim_recent(self.account, self.id))
