"""SEARCH and UID SEARCH (RFC 9051 6.4.4) with ESEARCH (RFC 4731), SEARCHRES (RFC 5182),
CONDSTORE's MODSEQ key (RFC 7162 3.1.5) and WITHIN (RFC 5032).

Evaluation walks the messages of the selected mailbox. Flag, date, size, UID, sequence
and modseq keys read the store records. BODY, TEXT, FROM, TO, CC, BCC and SUBJECT are
answered by the full-text index (``stalwart.fts.TextSearch``): the string's words must
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

import time
from datetime import date, datetime, timezone
from email.utils import parsedate_tz

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


def evaluate(s, key: tuple) -> list[tuple[int, int, dict]]:
    """(sequence number, UID, email record) of every message of the selected mailbox
    that matches ``key``, in mailbox order (shared by SEARCH, SORT and THREAD)."""
    view = s.selected
    acc = view.account   # the owner: another account for a shared mailbox (ACL)
    now = int(time.time())
    found: list[tuple[int, int, dict]] = []
    largest = view.uids[-1] if view.uids else 0
    text = TextSearch(s.store, acc, lambda eid: s.store.read_message(acc, eid)) \
        if _uses_text(key) else None
    for seq, uid in enumerate(view.uids, 1):
        email = s.store.get_email(acc, view.eids[uid])
        if email is None:
            continue  # expunged meanwhile: it can match nothing
        ctx = _Ctx(s, view, seq, uid, email, now)
        ctx.largest = largest
        ctx.text = text
        if matches(key, ctx):
            found.append((seq, uid, email))
    return found


async def run(s, cmd):
    view = s.selected
    args = cmd.args
    uid_cmd = cmd.name.startswith("UID ")
    found = [(seq, uid, email["modseq"]) for seq, uid, email in evaluate(s, args.key)]
    modseq = max((m for _, _, m in found), default=0) if _uses_modseq(args.key) else None
    if modseq is not None:
        s.condstore = True
    numbers = [u if uid_cmd else q for q, u, _ in found]
    returns = args.returns
    if returns is not None and "SAVE" in returns:
        keep = found
        if ("MIN" in returns or "MAX" in returns) and not ({"ALL", "COUNT"} & set(returns)):
            keep = ([found[0]] if "MIN" in returns and found else []) + \
                   ([found[-1]] if "MAX" in returns and found else [])
        view.saved = {u for _, u, _ in keep}
        if returns == ("SAVE",):
            return "SEARCH completed, result saved"
    if returns is None and not s.rev2:
        line = "SEARCH" + "".join(f" {n}" for n in numbers)
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
