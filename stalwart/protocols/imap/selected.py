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
    """What SELECT, SEARCH and FETCH need of one mailbox (UIDs, email ids, flags, received
    dates and sizes), shared by the sessions of this process and brought up to date from
    the change log rather than read again: a SELECT of a 10,000-message mailbox read every
    email record (msgpack) each time, and so did every SEARCH whatever its key, which
    dominated the mixed benchmark (bench/macro/imap_mixed.py) with 100 clients.

    Invariants: ``uids``, ``eids``, ``flags``, ``keywords`` and ``uid_of`` describe the
    mailbox at modseq ``record["hms"]``. Views share these containers (an idle session
    costs no copy of them) and copy them before their first change
    (``SelectedMailbox._own``); so while a view may hold them (``lent``) the snapshot never
    changes them in place either: ``catch_up`` replaces them, and changes the fresh copies
    in place until a view takes them again. ``info`` maps email id -> (received, size),
    which never change for an email: it only grows (filled as records are read, by
    ``SelectedMailbox.fill_info`` for the rest), is never lent, and may hold ids that left
    the mailbox (dropped when the snapshot is read afresh). Two indexes for SEARCH, built
    on first use and never lent either: ``_by_keyword`` (keyword -> UIDs that have it,
    kept up to date by ``catch_up``) and ``_by_received`` (UIDs ordered by received date,
    dropped when messages come or go)."""

    __slots__ = ("record", "uids", "eids", "flags", "keywords", "uid_of", "info", "lent",
                 "info_full", "_by_keyword", "_by_received", "_uid_set")

    def __init__(self, record: dict, rows: list, info: dict | None = None) -> None:
        self.record = record
        self.uids = [row[0] for row in rows]
        self.eids = {uid: eid for uid, eid, _, _ in rows}
        self.uid_of = {eid: uid for uid, eid, _, _ in rows}
        self.flags = {uid: (frozenset(kw), modseq) for uid, _, kw, modseq in rows}
        self.keywords = set()
        for kw, _ in self.flags.values():
            self.keywords |= kw - _SYSTEM_KEYWORDS
        uid_of = self.uid_of
        self.info: dict[int, tuple[int, int]] = \
            {e: v for e, v in info.items() if e in uid_of} if info else {}
        self.lent = False
        self.info_full = False   # info has every UID's email (catch_up adds the new ones)
        self._by_keyword: dict[str, set[int]] = {}
        self._by_received: tuple[list[int], list[int]] | None = None
        self._uid_set: frozenset[int] | None = None

    def uid_set(self) -> frozenset[int]:
        """The UIDs as a set (SEARCH's starting candidates)."""
        if self._uid_set is None:
            self._uid_set = frozenset(self.uids)
        return self._uid_set

    def with_keyword(self, keyword: str) -> set[int]:
        """The UIDs whose keywords include ``keyword`` (do not change the set)."""
        found = self._by_keyword.get(keyword)
        if found is None:
            found = self._by_keyword[keyword] = \
                {uid for uid, (kw, _) in self.flags.items() if keyword in kw}
        return found

    def received_between(self, lo: int | None, hi: int | None) -> list[int]:
        """The UIDs received in [lo, hi) (None: unbounded) among those ``info`` knows."""
        if self._by_received is None:
            info, eids = self.info, self.eids
            rows = sorted((info[eids[u]][0], u) for u in self.uids if eids[u] in info)
            self._by_received = ([t for t, _ in rows], [u for _, u in rows])
        times, uids = self._by_received
        a = 0 if lo is None else bisect_left(times, lo)
        b = len(times) if hi is None else bisect_left(times, hi)
        return uids[a:b]

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
        if (changed or gone or new) and self.lent:
            # Views share these containers (copy on write): never change them in place.
            self.uids, self.eids, self.flags = list(self.uids), dict(self.eids), dict(self.flags)
            self.keywords, self.uid_of = set(self.keywords), dict(self.uid_of)
            self.lent = False
        if gone:
            dead = {u for u in gone if u in self.eids}
            if dead:
                self.uids = [u for u in self.uids if u not in dead]
                for uid in dead:
                    self.uid_of.pop(self.eids.pop(uid), None)
                    self.flags.pop(uid, None)
                for having in self._by_keyword.values():
                    having -= dead
                self._by_received = self._uid_set = None
        if new:
            self._by_received = self._uid_set = None
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
            self.info[eid] = (email["received"], email["size"])
            for keyword, having in self._by_keyword.items():
                if keyword in kw:
                    having.add(uid)
                else:
                    having.discard(uid)
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
    snap = _Snapshot(record, store.mailbox_messages(account, mbox),
                     snap.info if snap is not None else None)
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
        # Containers shared with the snapshot: uids/eids until _own(), flags/keywords until
        # _own_flags(); _touched: the UIDs whose flags this view changed since its copy.
        self._shared = self._shared_flags = snap is not None
        self._touched: set[int] | None = None   # a set once the flags are this view's own
        if snap is not None:
            snap.lent = True
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
        """Copy the UIDs shared with the mailbox snapshot before changing them."""
        if self._shared:
            self.uids, self.eids = list(self.uids), dict(self.eids)
            self._shared = False

    def _own_flags(self) -> None:
        """Copy the flags shared with the mailbox snapshot before changing them (a flag
        change, the common case, leaves the UIDs shared)."""
        if self._shared_flags:
            self.flags, self.keywords = dict(self.flags), set(self.keywords)
            self._shared_flags = False
            self._touched = set()

    def _cache(self, uid: int, email: dict) -> bool:
        """Record a message's flags; True if they differ from what was cached."""
        kw = frozenset(email["kw"])
        old = self.flags.get(uid)
        entry = (kw, email["modseq"])
        if old == entry:
            return False
        self._own_flags()
        self.flags[uid] = entry
        if self._touched is not None:
            self._touched.add(uid)
        self.keywords |= kw - _SYSTEM_KEYWORDS
        return True

    # ------------------------------------------------------------------ present state
    def current(self) -> _Snapshot | None:
        """The process-wide snapshot of this mailbox brought up to the store's present
        state (from the change log; cheap when little changed), or None when the mailbox
        is gone or was recreated (another UIDVALIDITY: its UIDs are other messages).

        What SEARCH and FETCH read instead of every email record: ``flags[uid]`` is
        (keywords, modseq) now, for the UIDs still in the mailbox (a UID of this view
        missing there was removed and not reported yet); ``info[eid]`` (received, size)
        once ``fill_info`` ran for it. ``self.flags`` by contrast is what the client was
        told, which the next ``sync`` compares with the store."""
        snap = _snapshot(self.store, self.account, self.id)
        if snap is None or snap.record["uidvalidity"] != self.uidvalidity:
            return None
        return snap

    def fill_info(self, snap: _Snapshot, uids) -> None:
        """Make sure ``snap.info`` knows the received date and size of ``uids`` (the UIDs
        of this view that ``snap`` has); reads only the records it lacks (once per
        process and email: they never change)."""
        info, eids, flags = snap.info, self.eids, snap.flags
        missing = [eids[u] for u in uids if u in flags and eids[u] not in info]
        for eid in missing:
            email = self.store.get_email(self.account, eid)
            if email is not None:
                info[eid] = (email["received"], email["size"])
        if missing:
            snap._by_received = None

    def records(self, uids) -> dict[int, dict]:
        """{uid: {"kw", "modseq", "received", "size"}} of ``uids`` as the store has them
        now, leaving out the messages that are gone. From the snapshot (``current``);
        the store is read only for what it lacks: a message removed from the mailbox
        but not reported yet (its record as it is, if any) or a size not seen yet."""
        snap = self.current()
        out: dict[int, dict] = {}
        if snap is None:
            for uid in uids:
                email = self.store.get_email(self.account, self.eids[uid])
                if email is not None:
                    out[uid] = email
            return out
        self.fill_info(snap, uids)
        flags, info, eids = snap.flags, snap.info, self.eids
        for uid in uids:
            state = flags.get(uid)
            eid = eids[uid]
            meta = info.get(eid) if state is not None else None
            if meta is None:
                email = self.store.get_email(self.account, eid)
                if email is not None:
                    out[uid] = email
                continue
            out[uid] = {"kw": state[0], "modseq": state[1], "received": meta[0],
                        "size": meta[1]}
        return out

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
                eids = self.eids
                gone = {u for u in self.store.vanished_since(self.account, self.id,
                                                             self.known_modseq) if u in eids}
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
        for uid, email in self._changed(changed_eids):
            if uid in self.pending_expunge:
                continue
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
            if not (self._shared and self._shared_flags) and not self.pending_expunge:
                self._reshare()
        return out

    def _changed(self, changed_eids: set[int]) -> list[tuple[int, dict | None]]:
        """(uid, {"kw", "modseq"} now or None) of this view's messages among
        ``changed_eids``, in UID order. From the snapshot, caught up to the same state
        (no email record read, O(changes)); one pass over the view when it is unusable."""
        snap = self.current() if changed_eids else None
        out: list[tuple[int, dict | None]] = []
        if snap is not None and snap.record["hms"] >= self.known_modseq:
            uid_of, flags, eids = snap.uid_of, snap.flags, self.eids
            for eid in changed_eids:
                uid = uid_of.get(eid)
                # Not in the snapshot: it left the mailbox, so it is in the VANISHED index
                # after known_modseq (pending expunge) or no message of this view.
                if uid is not None and eids.get(uid) == eid:
                    kw, modseq = flags[uid]
                    out.append((uid, {"kw": kw, "modseq": modseq}))
            out.sort(key=lambda row: row[0])
            return out
        for uid in self.uids:
            eid = self.eids[uid]
            if eid in changed_eids:
                out.append((uid, self.store.get_email(self.account, eid)))
        return out

    def _reshare(self) -> None:
        """Drop this view's own containers for the snapshot's when they are equal again
        (the client has been told everything): after a change reaches every idle session,
        they share one copy again instead of keeping one each."""
        snap = _snapshot(self.store, self.account, self.id)
        if snap is None or snap.record["hms"] != self.known_modseq:
            return
        if not self._shared and (snap.uids is self.uids or snap.uids == self.uids) and \
                snap.eids == self.eids:
            self.uids, self.eids = snap.uids, snap.eids
            snap.lent = self._shared = True
        # Own flags = the ones lent at this view's modseq then (every change after it
        # goes through _cache): only the UIDs changed since can differ from the snapshot.
        if self._shared and not self._shared_flags and self._touched is not None and \
                snap.keywords == self.keywords and \
                all(snap.flags.get(u) == self.flags.get(u) for u in self._touched):
            self.flags, self.keywords = snap.flags, snap.keywords
            snap.lent = self._shared_flags = True
            self._touched = None

    def expunge_responses(self, uids: list[int], qresync: bool) -> list[bytes]:
        """Remove ``uids`` from the view and say so (highest sequence number first, so
        every EXPUNGE names the number the client has at that moment)."""
        present = [u for u in uids if self.seq_of(u) is not None]
        out: list[bytes] = []
        if qresync and present:
            out.append(f"* VANISHED {encode.number_set(present)}\r\n".encode())
        if present:
            self._own()
            self._own_flags()
            if self._touched is not None:
                self._touched.update(present)
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
