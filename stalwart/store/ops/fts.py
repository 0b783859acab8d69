"""Full-text index operations: posting lists kept in the store, filled after delivery.

The indexer (``stalwart.fts.run_indexer``, in the scheduler process) reads new messages,
tokenizes them and sends the terms here; the store only merges them into posting lists, so
the single writer never parses mail. Keys (declared in ``keys.py``; deleting an account
removes them with its other subspaces):

    FTS_TERM  0x60  account u32, "field:term" utf-8, 0x00, block u32   posting list (fts.py)
    FTS_DOC   0x61  account u32, email u32                              {"lang", "terms"}
    FTS_STATE 0x62  account u32                                         {"next"}

- A posting list holds the documents (email ids) of one block of 256 ids
  (``email >> BLOCK_BITS``), so adding a message rewrites lists of bounded size however big
  the account grows; a query reads every block of a term with one prefix scan.
- ``next`` is the watermark: every email id below it was handled by the indexer (indexed,
  or gone before its turn). Email ids are never reused and a message never changes, so an
  indexed document is never stale; readers answer emails at or above the watermark by
  scanning them (``stalwart/protocols/imap/commands/search.py``).
- ``FTS_DOC`` lists the term keys of a document, so ``fts_purge`` removes a destroyed
  message from exactly the lists that hold it. A live email is never purged.

Operations: ``fts_apply(account, docs, next)``, ``fts_purge(account, emails)``. They change
no JMAP state and publish no event. Reads: ``postings``, ``state``, ``indexed_ids``.
"""

from __future__ import annotations

from typing import Any

from ... import _native
from .. import keys
from ..engine import OpCtx, _int, _require, operation
from ..errors import StoreError

FTS_TERM = keys.FTS_TERM
FTS_DOC = keys.FTS_DOC
FTS_STATE = keys.FTS_STATE
BLOCK_BITS = 8
MAX_TERM_KEY = 200
FIELDS = frozenset({"subject", "from", "to", "cc", "bcc", "body", "attachment"})


def term_prefix(acc: int, term_key: str) -> bytes:
    return FTS_TERM + keys.u32(acc) + term_key.encode("utf-8") + b"\x00"


def term_block(acc: int, term_key: str, block: int) -> bytes:
    return term_prefix(acc, term_key) + keys.u32(block)


def doc_key(acc: int, eid: int) -> bytes:
    return FTS_DOC + keys.u32(acc) + keys.u32(eid)


def state_key(acc: int) -> bytes:
    return FTS_STATE + keys.u32(acc)


def _term_key(value: Any) -> str:
    _require(isinstance(value, str) and 0 < len(value) <= MAX_TERM_KEY and "\x00" not in value,
             "term key must be a short string without NUL")
    field, sep, term = value.partition(":")
    _require(bool(sep) and bool(term) and field in FIELDS, f"invalid term key {value[:40]!r}")
    return value


def _positions(value: Any) -> list[int]:
    _require(isinstance(value, (list, tuple)) and 0 < len(value) <= 1_000_000,
             "positions must be a non-empty list")
    return [_int(p, "position", maximum=2**32 - 1) for p in value]


@operation
def fts_apply(c: OpCtx, account: int, docs: list, next: int) -> dict:
    """Add documents to the index and move the watermark up to ``next``.

    ``docs``: [{"email": id, "lang": code, "terms": {"field:term": [positions]}}]. An email
    destroyed since it was read is skipped; one already indexed is left as it is."""
    acc = _int(account, "account", maximum=2**32 - 1)
    state = c.load(keys.account(acc))
    if state is None:
        raise StoreError("not_found", f"account {acc} does not exist")
    _require(isinstance(docs, list), "docs must be a list")
    nxt = _int(next, "next", maximum=state["next_email"])
    indexed = 0
    for doc in docs:
        _require(isinstance(doc, dict), "each doc must be a map")
        eid = _int(doc.get("email"), "email id", maximum=2**32 - 1)
        terms = doc.get("terms")
        _require(isinstance(terms, dict), "terms must be a map")
        if c.txn.get(keys.email(acc, eid)) is None or c.txn.get(doc_key(acc, eid)) is not None:
            continue
        block = eid >> BLOCK_BITS
        for key, positions in terms.items():
            k = term_block(acc, _term_key(key), block)
            try:
                c.txn.put(k, _native.fts_upsert(c.txn.get(k), eid, _positions(positions)))
            except ValueError as exc:
                raise StoreError("invalid", f"posting list of {key[:40]!r}: {exc}") from None
        lang = doc.get("lang", "none")
        _require(isinstance(lang, str) and len(lang) <= 8, "lang must be a short string")
        c.store(doc_key(acc, eid), {"lang": lang, "terms": sorted(terms)})
        indexed += 1
    current = c.load(state_key(acc)) or {"next": 1}
    current["next"] = max(current["next"], nxt)
    c.store(state_key(acc), current)
    return {"indexed": indexed, "next": current["next"]}


@operation
def fts_purge(c: OpCtx, account: int, emails: list) -> dict:
    """Remove destroyed emails from the index (live ones are kept)."""
    acc = _int(account, "account", maximum=2**32 - 1)
    _require(isinstance(emails, list), "emails must be a list")
    purged = []
    for value in emails:
        eid = _int(value, "email id", maximum=2**32 - 1)
        record = c.load(doc_key(acc, eid))
        if record is None or c.txn.get(keys.email(acc, eid)) is not None:
            continue
        block = eid >> BLOCK_BITS
        for key in record["terms"]:
            k = term_block(acc, key, block)
            blob = c.txn.get(k)
            if blob is None:
                continue
            try:
                rest = _native.fts_remove(blob, [eid])
            except ValueError as exc:
                raise StoreError("invalid", f"posting list of {key[:40]!r}: {exc}") from None
            if rest is None:
                c.txn.delete(k)
            else:
                c.txn.put(k, rest)
        c.txn.delete(doc_key(acc, eid))
        purged.append(eid)
    return {"purged": purged}


# --------------------------------------------------------------------------- reads

def postings(kv, acc: int, term_key: str) -> dict[int, bytes]:
    """{block: posting list} of one term key (empty when no document holds it)."""
    prefix = term_prefix(acc, term_key)
    return {keys.read_u32(k, len(prefix)): v for k, v in kv.scan(prefix, keys.prefix_end(prefix))}


def state(kv, acc: int) -> dict:
    """{"next": watermark}: email ids below it are in the index (or were gone)."""
    raw = kv.get(state_key(acc))
    if raw is None:
        return {"next": 1}
    from ..engine import unpack

    return unpack(raw)


def indexed_ids(kv, acc: int) -> list[int]:
    """Email ids that have a document in the index, ascending."""
    prefix = FTS_DOC + keys.u32(acc)
    return [keys.read_u32(k, 5) for k, _ in kv.scan(prefix, keys.prefix_end(prefix))]
