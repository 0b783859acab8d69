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
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ...store import StoreError
from . import encode
from .flags import to_flags
from .types import SequenceSet

_SYSTEM_KEYWORDS = frozenset({"$seen", "$answered", "$flagged", "$draft", "$deleted"})


class SelectedMailbox:
    def __init__(self, store, account: int, record: dict, name: str, readonly: bool) -> None:
        self.store = store
        self.account = account
        self.id = record["id"]
        self.name = name
        self.readonly = readonly
        self.uidvalidity = record["uidvalidity"]
        self.uidnext = record["uidnext"]
        self.known_modseq = record["hms"]
        rows = store.mailbox_messages(account, self.id)   # one consistent read
        self.uids: list[int] = [row[0] for row in rows]
        self.eids: dict[int, int] = {uid: eid for uid, eid, _, _ in rows}
        self.flags: dict[int, tuple[frozenset, int]] = {}
        self.keywords: set[str] = set()
        for uid, _, keywords, modseq in rows:
            self._cache(uid, {"kw": keywords, "modseq": modseq})
        self.pending_expunge: set[int] = set()
        self.saved: set[int] = set()

    def _cache(self, uid: int, email: dict) -> bool:
        """Record a message's flags; True if they differ from what was cached."""
        kw = frozenset(email["kw"])
        old = self.flags.get(uid)
        self.flags[uid] = (kw, email["modseq"])
        self.keywords |= kw - _SYSTEM_KEYWORDS
        return old is None or old[0] != kw or old[1] != email["modseq"]

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
        elif record["hms"] == self.known_modseq and not (allow_expunge and self.pending_expunge):
            return out
        else:
            current = dict(self.store.mailbox_uids(self.account, self.id))
        gone = {u for u in self.uids if u not in current}
        self.pending_expunge |= gone
        changed_eids: set[int] = set()
        if record is not None:
            try:
                changes = self.store.changes_since(self.account, "Email", self.known_modseq)
                changed_eids = set(changes["updated"]) | set(changes["created"])
            except StoreError:
                changed_eids = set(current.values())
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
        for uid in flag_updates:
            out.append(self.flags_response(uid, condstore, uid_in_fetch or qresync))
        if record is not None:
            self.uidnext = record["uidnext"]
            self.known_modseq = max(self.known_modseq, record["hms"])
        return out

    def expunge_responses(self, uids: list[int], qresync: bool) -> list[bytes]:
        """Remove ``uids`` from the view and say so (highest sequence number first, so
        every EXPUNGE names the number the client has at that moment)."""
        present = [u for u in uids if self.seq_of(u) is not None]
        out: list[bytes] = []
        if qresync and present:
            out.append(f"* VANISHED {encode.number_set(present)}\r\n".encode())
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
        items.append(b"FLAGS " + encode.flag_list(to_flags(kw)))
        if condstore:
            items.append(b"MODSEQ (%d)" % modseq)
        return b"* %d FETCH (%s)\r\n" % (self.seq_of(uid), b" ".join(items))
