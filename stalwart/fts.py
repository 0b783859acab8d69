"""Full-text search: what a message contributes to the index, and how a query is answered.

The index (issue 4 item 3: IMAP SEARCH BODY/TEXT/FROM/TO/CC/BCC/SUBJECT, and JMAP text
filters) keeps one posting list per (account, term). A *term key* is ``"field:term"``:
the field a word came from (:data:`FIELDS`) and the word folded and stemmed. A posting
list is the documents holding the term and the term's positions in each, encoded by the
native side (``ext/src/fts/postings.rs``: delta + varint, a version octet first). Stores
keep each list as the value of the key (account, term key); this module never touches the
store itself: writers get ``{term key: positions}`` from :func:`index_document` and fold it
into the stored lists with :func:`upsert`; readers hand :func:`search` a ``lookup`` that
returns a stored list or None.

Tokenizing is native (``ext/src/fts/tokenize.rs``) and runs without the GIL: UAX #29
words, Unicode lower case, diacritics dropped (NFKD without combining marks, ß -> ss, ...),
then the Snowball stemmer of the language (:data:`LANGUAGES`, "none" for no stemming).
The same rules apply to queries, so "Crème brûlée" finds "CREME BRULEES" in English.

Query semantics:

- :func:`parse_query` reads a JMAP-style text: bare words must all be present (AND);
  ``"quoted words"`` must appear one after the other in one field (a phrase).
- :func:`imap_query` reads an IMAP SEARCH string (RFC 9051 6.4.4 asks for a substring):
  its words form one phrase, the closest a word index comes to a substring.
- A term matches in any of the searched fields; a phrase must lie within one field, and
  within one part (positions of consecutive parts of a field are one apart).

Languages: a message is stemmed in the language :func:`detect_language` guesses from its
subject and body (a stop-word vote; English when unclear, :data:`DEFAULT_LANGUAGE`). A query
does not know the language of the messages it will meet, so :func:`query_variants` stems
it in "none" and every detectable language, and a message matches when any variant does.

Store and indexer (``stalwart/store/ops/fts.py`` keeps the lists, in blocks of 256 email
ids; :func:`run_indexer` fills them from the scheduler process, woken by change events, so
a delivered message is indexed about a second later). :func:`document_terms` is the one
function that turns a raw message into terms, used by the indexer and by the scan of
messages not indexed yet, so both answer alike (:class:`TextSearch`).

Invariants: indexing and querying share one tokenizer; a stored list that does not decode
raises ValueError (never a silently wrong answer); :func:`search` returns document ids
ascending.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stalwart import _native

__all__ = [
    "FIELDS", "LANGUAGES", "MAX_WORD_BYTES", "Query", "index_document", "message_parts",
    "terms", "parse_query", "imap_query", "search", "encode", "decode", "docs", "upsert",
    "remove", "DETECTED", "detect_language", "document_terms", "query_variants",
    "TextSearch", "IMAP_KEY_FIELDS", "IMAP_HEADER_KEYS", "index_account", "purge_account", "run_indexer",
]

log = logging.getLogger("stalwart.fts")

#: The fields a term is indexed under. IMAP TEXT searches all of them, BODY "body".
FIELDS = ("subject", "from", "to", "cc", "bcc", "body", "attachment")

#: IMAP SEARCH keys and the fields they search (header keys by name; HEADER <name> for
#: any other field is answered from the message itself, not from the index).
IMAP_HEADER_KEYS = frozenset({"SUBJECT", "FROM", "TO", "CC", "BCC"})
IMAP_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "BODY": ("body", "attachment"),
    "TEXT": FIELDS,
    "SUBJECT": ("subject",),
    "FROM": ("from",),
    "TO": ("to",),
    "CC": ("cc",),
    "BCC": ("bcc",),
}

LANGUAGES: tuple[str, ...] = tuple(_native.FTS_LANGUAGES)
#: The languages :func:`detect_language` can answer (besides "none").
DETECTED: tuple[str, ...] = tuple(_native.FTS_DETECTED)
#: Text of one message indexed at most (characters per field part, and in all).
MAX_PART_TEXT = 1 << 20
#: The stemmer of a message whose language cannot be told (too short, mixed).
DEFAULT_LANGUAGE = "en"
MAX_DOCUMENT_TEXT = 4 << 20
MAX_WORD_BYTES: int = _native.FTS_MAX_WORD_BYTES

encode = _native.fts_encode      # [(doc, [positions])] ascending -> bytes
decode = _native.fts_decode      # bytes -> [(doc, [positions])]
docs = _native.fts_docs          # bytes -> [doc]
upsert = _native.fts_upsert      # (bytes | None, doc, [positions]) -> bytes
remove = _native.fts_remove      # (bytes, [doc]) -> bytes | None (None: list now empty)


def index_document(parts: Iterable[tuple[str, str]], language: str = "en") -> dict[str, list[int]]:
    """``{"field:term": [positions]}`` for a document's ``(field, text)`` parts.

    Parts of one field continue one position sequence with a gap between parts. Raises
    ValueError for a field outside :data:`FIELDS` or an unknown language.
    """
    parts = list(parts)
    for field, _ in parts:
        if field not in FIELDS:
            raise ValueError(f"unknown full-text field {field!r} (known: {', '.join(FIELDS)})")
    return _native.fts_index(parts, language)


def terms(text: str, language: str = "en") -> list[str]:
    """The terms of ``text`` in order, folded and stemmed as at indexing."""
    return _native.fts_terms(text, language)


_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.I | re.S)


def _html_text(markup: str) -> str:
    return html.unescape(_TAG.sub(" ", markup))


def message_parts(message) -> list[tuple[str, str]]:
    """The ``(field, text)`` parts of a parsed message (``stalwart.mime.Message``): the
    subject, each address field (display names and addresses), every text body part
    (HTML reduced to its text; a part that is in both the text and the HTML body is taken
    once), attachment file names, and the same for attached messages."""
    out: list[tuple[str, str]] = []
    _collect(message, out, depth=0)
    return out


def _collect(message, out: list[tuple[str, str]], depth: int) -> None:
    if message.subject:
        out.append(("subject", message.subject))
    for field, mailboxes in (("from", message.from_), ("to", message.to), ("cc", message.cc),
                             ("bcc", message.bcc)):
        text = " ".join(f"{name or ''} {address or ''}" for name, address in mailboxes).strip()
        if text:
            out.append((field, text))
    seen: set[int] = set()
    for index in list(message.text_body) + list(message.html_body):
        if index in seen:
            continue
        seen.add(index)
        part = message.part(index)
        if not part.is_text:
            continue
        body = part.decoded()
        out.append(("body", _html_text(body) if part.is_html else body))
    for index in message.attachments:
        part = message.part(index)
        if part.filename:
            out.append(("attachment", part.filename))
        if part.message is not None and depth < 8:
            _collect(part.message, out, depth + 1)


@dataclass(frozen=True)
class Query:
    """Terms that must all be present, and phrases (term sequences) that must appear."""
    terms: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms or self.phrases)


_QUOTED = re.compile(r'"([^"]*)"')


def parse_query(text: str, language: str = "en") -> Query:
    """A JMAP-style query: bare words (AND) and ``"quoted phrases"``. An unbalanced quote
    is taken as a plain character. A one-word phrase is a plain term."""
    found_terms: list[str] = []
    phrases: list[tuple[str, ...]] = []
    last = 0
    for m in _QUOTED.finditer(text):
        found_terms += terms(text[last:m.start()], language)
        words = tuple(terms(m.group(1), language))
        if len(words) > 1:
            phrases.append(words)
        else:
            found_terms += words
        last = m.end()
    found_terms += terms(text[last:], language)
    return Query(tuple(dict.fromkeys(found_terms)), tuple(dict.fromkeys(phrases)))


def imap_query(text: str, language: str = "en") -> Query:
    """An IMAP SEARCH string: its words as one phrase (or one term)."""
    words = tuple(terms(text, language))
    if len(words) > 1:
        return Query((), (words,))
    return Query(words, ())


def _blocks(value) -> dict[int, bytes]:
    if value is None:
        return {}
    if isinstance(value, (bytes, bytearray)):
        return {0: bytes(value)}
    return value


def search(query: Query, fields: Iterable[str],
           lookup: Callable[[str], bytes | dict[int, bytes] | None]) -> list[int]:
    """Document ids matching ``query`` in any of ``fields``, ascending.

    ``lookup(term_key)`` returns the stored posting list of ``"field:term"``, or its lists
    by block (``{block: list}``, documents of distinct blocks disjoint), or None. An empty
    query matches nothing (the caller decides what an empty search string means).
    """
    fields = tuple(fields)
    if not query:
        return []
    result: set[int] | None = None
    for term in query.terms:
        found: set[int] = set()
        for field in fields:
            for blob in _blocks(lookup(f"{field}:{term}")).values():
                found.update(docs(blob))
        result = found if result is None else result & found
        if not result:
            return []
    for phrase in query.phrases:
        found = set()
        for field in fields:
            lists = [_blocks(lookup(f"{field}:{term}")) for term in phrase]
            for block in set.intersection(*(set(b) for b in lists)):
                found.update(_native.fts_phrase([b[block] for b in lists]))
        result = found if result is None else result & found
        if not result:
            return []
    return sorted(result or ())


# --------------------------------------------------------------------------- documents

def detect_language(text: str) -> str:
    """ISO 639-1 code of the language of ``text`` (one of :data:`DETECTED`) or "none"."""
    return _native.fts_detect_language(text)


def document_terms(raw: bytes) -> tuple[str, dict[str, list[int]]]:
    """(language, {"field:term": [positions]}) of a raw message: what the index holds for
    it. Text beyond :data:`MAX_PART_TEXT` per part and :data:`MAX_DOCUMENT_TEXT` in all is
    not indexed. Never raises for a malformed message (it has fewer terms)."""
    from stalwart import mime

    parts: list[tuple[str, str]] = []
    total = 0
    for field, text in message_parts(mime.parse(raw)):
        text = text[:MAX_PART_TEXT]
        if total + len(text) > MAX_DOCUMENT_TEXT:
            text = text[:max(0, MAX_DOCUMENT_TEXT - total)]
        total += len(text)
        if text:
            parts.append((field, text))
    sample = " ".join(text[:20000] for field, text in parts if field in ("subject", "body"))
    language = detect_language(sample)
    if language == "none":
        language = DEFAULT_LANGUAGE  # short mail: English stemming does the least harm
    return language, index_document(parts, language)


def query_variants(text: str) -> tuple[Query, ...]:
    """The IMAP query of ``text`` stemmed as each document language would stem it (no
    duplicates); empty when ``text`` has no word (the caller scans for the substring)."""
    out: dict[Query, None] = {}
    for language in ("none",) + DETECTED:
        q = imap_query(text, language)
        if q:
            out[q] = None
    return tuple(out)


def _document_lookup(terms: dict[str, list[int]]) -> Callable[[str], bytes | None]:
    cache: dict[str, bytes] = {}

    def lookup(key: str) -> bytes | None:
        positions = terms.get(key)
        if positions is None:
            return None
        blob = cache.get(key)
        if blob is None:
            blob = cache[key] = encode([(0, positions)])
        return blob

    return lookup


class TextSearch:
    """Answers text keys (``text`` in ``fields``) for the messages of one account: from the
    index for emails below the watermark, by running :func:`document_terms` on the others
    (the messages delivered since the indexer last ran), so a committed message is never
    missed and both ways give the same answer.

    ``store``: a ``Store`` (``fts_state``, ``fts_postings``); ``raw(email_id)`` returns a
    message's octets (only called for emails not indexed yet).
    """

    def __init__(self, store, account: int, raw: Callable[[int], bytes]) -> None:
        self.store, self.account, self.raw = store, account, raw
        # The watermark is read before any posting list: lists only grow for ids below it.
        self.watermark = store.fts_state(account)["next"]
        self._hits: dict[tuple, set[int]] = {}
        self._docs: dict[int, dict[str, list[int]]] = {}
        self._variants: dict[str, tuple[Query, ...]] = {}
        self._lists: dict[str, dict[int, bytes]] = {}
        self.scanned = 0

    def _postings(self, term_key: str) -> dict[int, bytes]:
        found = self._lists.get(term_key)
        if found is None:
            found = self._lists[term_key] = self.store.fts_postings(self.account, term_key)
        return found

    def variants(self, text: str) -> tuple[Query, ...]:
        """:func:`query_variants` of ``text``, computed once per search."""
        found = self._variants.get(text)
        if found is None:
            found = self._variants[text] = query_variants(text)
        return found

    def matches(self, email_id: int, text: str, fields: tuple[str, ...]) -> bool:
        variants = self.variants(text)
        if email_id < self.watermark:
            key = (text, fields)
            hits = self._hits.get(key)
            if hits is None:
                hits = set()
                for q in variants:
                    hits.update(search(q, fields, self._postings))
                self._hits[key] = hits
            return email_id in hits
        terms = self._docs.get(email_id)
        if terms is None:
            self._docs.clear()  # messages come one after the other: keep the current one
            try:
                raw = self.raw(email_id)
            except Exception:  # a message that cannot be read has no terms
                raw = b""
            terms = self._docs[email_id] = document_terms(raw)[1]
            self.scanned += 1
        lookup = _document_lookup(terms)
        return any(search(q, fields, lookup) for q in variants)


# --------------------------------------------------------------------------- the indexer

INDEX_BATCH = 32


async def index_account(store, account: int, *, batch: int = INDEX_BATCH) -> int:
    """Index every email of ``account`` at or above the watermark; returns how many."""
    state = store.account_state(account)
    if state is None:
        return 0
    end = state["next_email"]
    start = store.fts_state(account)["next"]
    done = 0
    loop = asyncio.get_running_loop()
    while start < end:
        stop = min(end, start + batch)
        docs_out = []
        for eid in range(start, stop):
            record = store.get_email(account, eid)
            if record is None:
                continue
            try:
                raw = store.blobs.get(record["blob"])
            except Exception as exc:  # a lost blob: index nothing for it, say so
                log.warning("fts: email %s/%s unreadable: %s", account, eid, exc)
                raw = b""
            language, terms = await loop.run_in_executor(None, document_terms, raw)
            docs_out.append({"email": eid, "lang": language, "terms": terms})
        result = await store.fts_apply(account, docs_out, stop)
        done += result["indexed"]
        start = stop
    return done


async def purge_account(store, account: int) -> int:
    """Remove the destroyed emails of ``account`` from the index; returns how many."""
    gone = [eid for eid in store.fts_indexed_ids(account) if store.get_email(account, eid) is None]
    purged = 0
    for i in range(0, len(gone), 256):
        purged += len((await store.fts_purge(account, gone[i:i + 256]))["purged"])
    return purged


async def run_indexer(store, stop: asyncio.Event, *, idle: float = 30.0,
                      purge_every: float = 600.0, settle: float = 0.2) -> None:
    """Keep the index filled: every account at start, then the accounts whose mail changed
    (store change events), a pass over all every ``idle`` seconds, destroyed emails purged
    every ``purge_every`` seconds. Errors are logged and retried; returns when ``stop`` is
    set."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    pending: set[int] = set()

    def on_change(account: int, change: int, types: list) -> None:
        if "Email" in types:
            pending.add(account)
            wake.set()

    unsubscribe = store.subscribe(on_change)
    everyone = True
    last_purge = loop.time()
    try:
        while not stop.is_set():
            if everyone:
                pending.update(a["id"] for a in store.list_accounts())
                everyone = False
            purge = loop.time() - last_purge >= purge_every
            accounts = sorted(pending) if not purge else sorted(a["id"] for a in store.list_accounts())
            pending.clear()
            for account in accounts:
                try:
                    store.refresh()
                    count = await index_account(store, account)
                    if count:
                        log.debug("fts: indexed %d messages of account %d", count, account)
                    if purge:
                        await purge_account(store, account)
                except Exception as exc:
                    if getattr(exc, "code", None) == "not_found":
                        continue  # the account was deleted meanwhile (its index with it)
                    log.exception("fts: indexing account %d failed, will retry", account)
                    pending.add(account)
            if purge:
                last_purge = loop.time()
            wake.clear()
            if pending:
                await asyncio.sleep(1.0)
                continue
            try:
                await asyncio.wait_for(_first(stop, wake), idle)
            except asyncio.TimeoutError:
                everyone = True
            await asyncio.sleep(settle)  # let a burst of deliveries land in one pass
    finally:
        unsubscribe()


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
