"""SEARCH and UID SEARCH (RFC 9051 6.4.4) with ESEARCH (RFC 4731), SEARCHRES (RFC 5182),
CONDSTORE's MODSEQ key (RFC 7162 3.1.5) and WITHIN (RFC 5032).

Evaluation works on sets of UIDs (``_Search``): a key narrows the candidates it is given,
AND applies its keys cheapest first to what the previous ones left, OR evaluates its
second key only on what the first did not match, NOT subtracts. Flag, keyword, UID,
sequence, MODSEQ and \\Recent keys are answered from the selected view and the mailbox's
process-wide snapshot (``SelectedMailbox.current``: the present flags and modseqs, caught
up from the change log); received date, size, OLDER and YOUNGER from the snapshot's
(received, size) of each email, read once per process since they never change. No email
record is read for those: a SEARCH used to read and decode every record of the mailbox
whatever its key (85% of an IMAP worker's time in bench/macro/imap_mixed.py at 10,000
messages). A message removed from the mailbox but not yet reported to this session is
judged on its record as it is, when it still exists (``matches``, the per-message
evaluator). BODY, TEXT, FROM, TO, CC, BCC and SUBJECT are answered by the full-text
index (``stalwart.fts.TextSearch``) for the candidates left: the string's words must
appear in that order in the field (folded: case and accents ignored; stemmed: "reports"
finds "report"), as Stalwart and Dovecot's FTS answer; messages delivered after the
indexer's last pass are tokenized on the spot, never missed. BODY searches the text parts
(and attachment names), TEXT every indexed field. A string without any word ("",
"☺", "...") and HEADER <name> are a case-insensitive substring scan of the decoded
values (an empty HEADER string matches any message that has the field).

Results: IMAP4rev1 without RETURN gets ``* SEARCH``; RETURN (...) or IMAP4rev2 gets
``* ESEARCH (TAG "t") [UID] MIN/MAX/COUNT/ALL``. When a MODSEQ key was used, the highest
modseq of the matches is appended (``(MODSEQ n)`` / ``MODSEQ n``). SAVE stores the result
for "$"; with MIN and/or MAX only those are saved (RFC 5182 2.4).
"""

from __future__ import annotations

import calendar
import time
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timezone
from email.utils import parsedate_tz
from typing import Callable

from ....fts import IMAP_HEADER_KEYS, IMAP_KEY_FIELDS, TextSearch
from .. import encode
from ..flags import to_keyword
from ..session import Bad

_ADDRESS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc"}


class _Ctx:
    """One message while the key tree is evaluated; the parse happens at most once."""

    __slots__ = ("s", "seq", "uid", "eid", "email", "_msg", "now", "largest", "view", "text")

    def __init__(self, s, view, seq, uid, email, now):
        self.s, self.view, self.seq, self.uid, self.email, self.now = s, view, seq, uid, email, now
        self.eid = view.eids[uid]
        self._msg = None
        self.text: TextSearch | None = None

    @property
    def msg(self):
        if self._msg is None:
            self._msg = self.s.message(self.eid)
        return self._msg


def _day(ts: int) -> date:
    return datetime.fromtimestamp(ts, timezone.utc).date()


def _sent_day(ctx: _Ctx) -> date | None:
    raw = ctx.msg.msg.date_raw
    parsed = parsedate_tz(raw) if raw else None
    if parsed is None:
        ts = ctx.msg.sent_date
        return _day(ts) if ts is not None else None
    try:
        return date(parsed[0], parsed[1], parsed[2])
    except ValueError:
        return None


def _contains(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def matches(key: tuple, ctx: _Ctx) -> bool:
    op = key[0]
    if op == "and":
        return all(matches(k, ctx) for k in key[1])
    if op == "or":
        return matches(key[1], ctx) or matches(key[2], ctx)
    if op == "not":
        return not matches(key[1], ctx)
    if op == "all":
        return True
    if op == "recent":
        return ctx.view.is_recent(ctx.uid)   # \Recent: claimed by this session
    if op == "keyword":
        return to_keyword(key[1]) in ctx.email["kw"]
    if op == "seq":
        return (key[1].saved and ctx.uid in ctx.view.saved) or \
            any(lo <= ctx.seq <= hi for lo, hi in key[1].resolve(len(ctx.view)))
    if op == "uid":
        return (key[1].saved and ctx.uid in ctx.view.saved) or \
            any(lo <= ctx.uid <= hi for lo, hi in key[1].resolve(ctx.largest))
    if op in ("before", "on", "since"):
        day = _day(ctx.email["received"])
        return day < key[1] if op == "before" else day == key[1] if op == "on" else day >= key[1]
    if op in ("sentbefore", "senton", "sentsince"):
        day = _sent_day(ctx)
        if day is None:
            return False
        return day < key[1] if op == "sentbefore" else day == key[1] if op == "senton" \
            else day >= key[1]
    if op == "larger":
        return ctx.email["size"] > key[1]
    if op == "smaller":
        return ctx.email["size"] < key[1]
    if op == "modseq":
        return ctx.email["modseq"] >= key[1]
    if op == "older":
        return ctx.email["received"] <= ctx.now - key[1]
    if op == "younger":
        return ctx.email["received"] >= ctx.now - key[1]
    if op in ("body", "text") or (op == "header" and key[1] in IMAP_HEADER_KEYS):
        value = key[-1]
        if ctx.text is not None and ctx.text.variants(value):
            fields = IMAP_KEY_FIELDS[key[1] if op == "header" else op.upper()]
            return ctx.text.matches(ctx.eid, value, fields)
    if op == "header":
        field, value = key[1], key[2]
        if field in _ADDRESS and value:
            return _contains(ctx.msg.address_text(_ADDRESS[field]), value)
        values = ctx.msg.header_values(field)
        return bool(values) and (not value or any(_contains(v, value) for v in values))
    if op == "body":
        return _contains(ctx.msg.body_text(), key[1])
    if op == "text":
        return _contains(ctx.msg.header_text(), key[1]) or _contains(ctx.msg.body_text(), key[1])
    raise Bad(f"Unsupported search key {op}")


def _uses_modseq(key: tuple) -> bool:
    if key[0] == "modseq":
        return True
    if key[0] == "and":
        return any(_uses_modseq(k) for k in key[1])
    if key[0] in ("or", "not"):
        return any(_uses_modseq(k) for k in key[1:])
    return False


def _uses_text(key: tuple) -> bool:
    if key[0] in ("body", "text") or (key[0] == "header" and key[1] in IMAP_HEADER_KEYS):
        return True
    if key[0] == "and":
        return any(_uses_text(k) for k in key[1])
    if key[0] in ("or", "not"):
        return any(_uses_text(k) for k in key[1:])
    return False


#: Evaluation cost of a key, to order the keys of an AND: answered from memory, from the
#: snapshot's received dates and sizes, from the full-text index, from every message.
_MEMORY, _INFO, _INDEX, _MESSAGE = range(4)
_INFO_KEYS = frozenset({"before", "on", "since", "larger", "smaller", "older", "younger"})
_MESSAGE_KEYS = frozenset({"sentbefore", "senton", "sentsince", "header"})
_DAY = 86400


def _cost(key: tuple) -> int:
    op = key[0]
    if op == "and":
        return max((_cost(k) for k in key[1]), default=_MEMORY)
    if op in ("or", "not"):
        return max(_cost(k) for k in key[1:])
    if op in _INFO_KEYS:
        return _INFO
    if op in ("body", "text") or (op == "header" and key[1] in IMAP_HEADER_KEYS):
        return _INDEX
    if op in _MESSAGE_KEYS:
        return _MESSAGE
    return _MEMORY


def _midnight(day: date) -> int:
    return calendar.timegm(day.timetuple())


class _Search:
    """Evaluates a key tree on sets of UIDs of the selected view that ``snap`` (its
    present state) holds: ``run(key, candidates)`` returns the candidates that match."""

    def __init__(self, s, view, snap) -> None:
        self.s, self.view, self.snap = s, view, snap
        self.flags = snap.flags
        self.now = int(time.time())
        self.text: TextSearch | None = None

    def run(self, key: tuple, cands: set[int]) -> set[int]:
        if not cands:
            return cands
        op = key[0]
        if op == "and":
            for k in sorted(key[1], key=_cost):
                cands = self.run(k, cands)
                if not cands:
                    break
            return cands
        if op == "or":
            first = self.run(key[1], cands)
            return first | self.run(key[2], cands - first)
        if op == "not":
            return cands - self.run(key[1], cands)
        if op == "all":
            return cands
        if op == "keyword":
            return cands & self.snap.with_keyword(to_keyword(key[1]))
        if op == "modseq":
            least, flags = key[1], self.flags
            return {u for u in cands if flags[u][1] >= least}
        if op == "recent":
            view = self.view
            return {u for u in cands if view.is_recent(u)} if view.report_recent else set()
        if op == "seq":
            return cands & self._numbers(key[1], uid=False)
        if op == "uid":
            return cands & self._numbers(key[1], uid=True)
        if op in _INFO_KEYS:
            return self._info_key(op, key[1], cands)
        return self._per_message(key, cands)

    def _numbers(self, seqset, uid: bool) -> set[int]:
        """The UIDs of this view a sequence set names (as SEQUENCE or UID key)."""
        view = self.view
        uids = view.uids
        out = set(view.saved) if seqset.saved else set()
        if uid:
            for lo, hi in seqset.resolve(uids[-1] if uids else 0):
                out.update(uids[bisect_left(uids, lo):bisect_right(uids, hi)])
        else:
            for lo, hi in seqset.resolve(len(uids)):
                out.update(uids[max(lo, 1) - 1:max(hi, 0)])
        return out

    def _info_key(self, op: str, arg, cands: set[int]) -> set[int]:
        if not self.snap.info_full:   # once per snapshot: later keys need no check
            self.view.fill_info(self.snap, self.snap.uids)
            self.snap.info_full = True
        info, eids = self.snap.info, self.view.eids
        if op in ("larger", "smaller"):
            if any(eids[u] not in info for u in cands):   # records gone meanwhile: no match
                cands = {u for u in cands if eids[u] in info}
            if op == "larger":
                return {u for u in cands if info[eids[u]][1] > arg}
            return {u for u in cands if info[eids[u]][1] < arg}
        if op == "older":
            lo, hi = None, self.now - arg + 1        # received <= now - n
        elif op == "younger":
            lo, hi = self.now - arg, None            # received >= now - n
        elif op == "since":
            lo, hi = _midnight(arg), None
        elif op == "before":
            lo, hi = None, _midnight(arg)
        else:   # on
            lo = _midnight(arg)
            hi = lo + _DAY
        return cands.intersection(self.snap.received_between(lo, hi))

    def _per_message(self, key: tuple, cands: set[int]) -> set[int]:
        """Keys that need the message itself (headers, sent date, substring scans) or the
        full-text index, judged one candidate at a time."""
        s, view = self.s, self.view
        if self.text is None and _uses_text(key):
            acc = view.account
            self.text = TextSearch(s.store, acc, lambda eid: s.store.read_message(acc, eid))
        out = set()
        for uid in sorted(cands):
            ctx = _Ctx(s, view, 0, uid, None, self.now)
            ctx.text = self.text
            if matches(key, ctx):
                out.add(uid)
        return out


def _matching(s, key: tuple) -> tuple[list[int], Callable[[int], int]]:
    """The UIDs of the selected mailbox's messages that match ``key``, ascending, and a
    function giving the modseq of each."""
    view = s.selected
    snap = view.current()
    if snap is None:   # the mailbox is gone or was recreated: the records as they are
        rows = {uid: email["modseq"] for _, uid, email in _scan(s, key, view.uids)}
        return list(rows), rows.__getitem__
    flags = snap.flags
    if view.uids is snap.uids:   # the view shares the snapshot's UIDs: nothing is gone
        present, gone = snap.uid_set(), frozenset()
    else:
        present = set(view.uids)
        gone = present - flags.keys()
        present -= gone
    matched = _Search(s, view, snap).run(key, present)
    if not gone:
        return sorted(matched), lambda uid: flags[uid][1]
    old = {uid: email["modseq"] for _, uid, email in _scan(s, key, sorted(gone))}
    return sorted(matched | old.keys()), \
        lambda uid: old[uid] if uid in old else flags[uid][1]


def _seqs(view, uids: list[int]) -> list[int]:
    """The sequence numbers of ``uids`` (ascending UIDs of the view)."""
    if len(uids) * 16 < len(view.uids):
        return [view.seq_of(uid) for uid in uids]
    wanted = set(uids)
    return [seq for seq, uid in enumerate(view.uids, 1) if uid in wanted]


def _search(s, key: tuple) -> list[tuple[int, int, int]]:
    """(sequence number, UID, modseq) of every message of the selected mailbox that
    matches ``key``, in mailbox order."""
    uids, modseq = _matching(s, key)
    return [(seq, uid, modseq(uid)) for seq, uid in zip(_seqs(s.selected, uids), uids)]


def _scan(s, key: tuple, uids) -> list[tuple[int, int, dict]]:
    """The per-message evaluation of ``uids`` on their email records (what is left of a
    message removed from the mailbox but not reported yet)."""
    view = s.selected
    acc = view.account   # the owner: another account for a shared mailbox (ACL)
    now = int(time.time())
    found: list[tuple[int, int, dict]] = []
    largest = view.uids[-1] if view.uids else 0
    text = TextSearch(s.store, acc, lambda eid: s.store.read_message(acc, eid)) \
        if _uses_text(key) else None
    for uid in uids:
        email = s.store.get_email(acc, view.eids[uid])
        if email is None:
            continue  # expunged meanwhile: it can match nothing
        ctx = _Ctx(s, view, view.seq_of(uid), uid, email, now)
        ctx.largest = largest
        ctx.text = text
        if matches(key, ctx):
            found.append((ctx.seq, uid, email))
    return found


def evaluate(s, key: tuple) -> list[tuple[int, int, dict]]:
    """(sequence number, UID, record) of every message of the selected mailbox that
    matches ``key``, in mailbox order (SORT and THREAD); the record has at least "kw",
    "modseq", "received" and "size"."""
    found = _search(s, key)
    records = s.selected.records([uid for _, uid, _ in found])
    return [(seq, uid, records[uid]) for seq, uid, _ in found if uid in records]


async def run(s, cmd):
    view = s.selected
    args = cmd.args
    uid_cmd = cmd.name.startswith("UID ")
    found, modseq_of = _matching(s, args.key)   # UIDs, ascending as sequence numbers
    modseq = max(map(modseq_of, found), default=0) if _uses_modseq(args.key) else None
    if modseq is not None:
        s.condstore = True
    numbers = found if uid_cmd else _seqs(view, found)
    returns = args.returns
    if returns is not None and "SAVE" in returns:
        keep = found
        if ("MIN" in returns or "MAX" in returns) and not ({"ALL", "COUNT"} & set(returns)):
            keep = ([found[0]] if "MIN" in returns and found else []) + \
                   ([found[-1]] if "MAX" in returns and found else [])
        view.saved = set(keep)
        if returns == ("SAVE",):
            return "SEARCH completed, result saved"
    if returns is None and not s.rev2:
        line = " ".join(["SEARCH", *map(str, numbers)])
        if modseq is not None and found:
            line += f" (MODSEQ {modseq})"
        s.untagged(line)
        return "SEARCH completed"
    opts = [r for r in (returns or ("ALL",)) if r != "SAVE"] or (["ALL"] if not returns else [])
    if returns == ():
        opts = ["ALL"]
    parts = [f'ESEARCH (TAG "{cmd.tag}")'] + (["UID"] if uid_cmd else [])
    if found:
        if "MIN" in opts:
            parts.append(f"MIN {min(numbers)}")
        if "MAX" in opts:
            parts.append(f"MAX {max(numbers)}")
        if "ALL" in opts:
            parts.append(f"ALL {encode.number_set(numbers)}")
    if "COUNT" in opts:
        parts.append(f"COUNT {len(numbers)}")
    if modseq is not None and found:
        parts.append(f"MODSEQ {modseq}")
    s.untagged(" ".join(parts))
    return "SEARCH completed"
