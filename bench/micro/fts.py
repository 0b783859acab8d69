"""Full-text indexing: the native tokenizer (stalwart.fts, Rust) against a pure-Python one.

    python -m bench.micro.fts [--messages 1500] [--rounds 3] [--corpus PATH] [--json]

Both sides turn the same documents into the index entries of one message,
``{"field:term": [positions]}``: the ``(field, text)`` parts of the first ``--messages``
messages of the SpamAssassin corpus (subject, addresses, text and HTML bodies as text,
extracted once with ``stalwart.fts.message_parts``, not timed). The Python side splits
words with a regular expression for the UAX #29 rules that matter in mail (letters,
digits and "_" join; "." "'" ":" inside a word, "." "," inside a number), lower-cases and drops diacritics with ``unicodedata`` (NFKD
without combining marks); the native side does the same with UAX #29 segmentation and,
in a second measurement, also stems (English Snowball), which the Python side does not.
The report gives MB/s of text (median over rounds), the ratios, how many documents got
identical entries from both sides without stemming, and the environment. A second
measurement times posting-list upserts (the write path: one new message's terms merged
into lists that already hold 1,000 documents) natively. A third answers IMAP SEARCH BODY
queries (``stalwart.fts.TextSearch``; words and two-word phrases picked from the messages)
over ``--search-messages`` messages in a memory store, from the index and by the scan
of messages not indexed yet (the same tokenizer run on every message), and reports
queries/s of both, the ratio, and whether both gave the same answer for every query.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import sys
import tarfile
import time
import unicodedata
from pathlib import Path

from stalwart import fts, mime

CORPUS = Path(os.environ.get("STALWART_CORPUS", "/work/shared/corpora/spamassassin-dev.tar.gz"))

# UAX #29 word rules as a regular expression: letters, digits and connectors ("_") join;
# "." "'" "’" ":" join two letters, "." "'" "’" "," ";" join two digits; ideographs and
# hiragana are one word per character (they are not ALetter).
_IDEO = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_UNIT = rf"(?:[^\W{_IDEO}]|[\u0300-\u036f])"
_WORD = re.compile(
    rf"[{_IDEO}]|{_UNIT}+(?:(?:(?<=[^\W\d_])['’.:·](?=[^\W\d_{_IDEO}])"
    rf"|(?<=\d)['’.,;](?=\d)){_UNIT}+)*")
_SPECIAL = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "þ": "th", "ı": "i",
            "ς": "σ"}


def py_fold(word: str) -> str:
    word = word.lower()
    if word.isascii():
        return word
    word = "".join(_SPECIAL.get(ch, ch) for ch in word)
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


def py_index(parts: list[tuple[str, str]]) -> dict[str, list[int]]:
    """The pure-Python tokenizer: same output shape and position rules as the native one."""
    out: dict[str, list[int]] = {}
    following: dict[str, int] = {}
    for field, text in parts:
        base = following.get(field, 0)
        position = -1
        words = [m.group() for m in _WORD.finditer(text)]
        for position, word in enumerate(w for w in words if w.strip("_")):
            term = py_fold(word)
            if term and len(term.encode()) <= fts.MAX_WORD_BYTES:
                out.setdefault(f"{field}:{term}", []).append(base + position)
        following[field] = base + position + 2
    return out


def load_documents(path: Path, count: int) -> list[list[tuple[str, str]]]:
    docs = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".eml")):
                continue
            raw = tar.extractfile(member).read()
            if raw.startswith(b"From "):
                raw = raw.split(b"\n", 1)[-1]
            docs.append(fts.message_parts(mime.parse(raw)))
            if len(docs) == count:
                break
    return docs


def _time(fn) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def _upserts(lists: dict[str, bytes], entries: dict[str, list[int]], doc: int) -> None:
    for key, positions in entries.items():
        fts.upsert(lists.get(key), doc, positions)


def load_raw(path: Path, count: int) -> list[bytes]:
    out = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".eml"):
                raw = tar.extractfile(member).read()
                out.append(raw.split(b"\n", 1)[-1] if raw.startswith(b"From ") else raw)
                if len(out) == count:
                    break
    return out


def run_search(path: Path, count: int, queries: int) -> dict:
    """Index vs scan for IMAP SEARCH BODY over ``count`` messages."""
    import asyncio
    import random

    from stalwart.store import Store

    async def build():
        store = Store.memory()
        await store.create_domain("example.org")
        acc = (await store.create_account("bench", emails=["bench@example.org"]))["id"]
        inbox = store.find_mailbox(acc, "Inbox")["id"]
        for raw in load_raw(path, count):
            await store.append(acc, inbox, raw)
        start = time.perf_counter()
        await fts.index_account(store, acc)
        return store, acc, time.perf_counter() - start

    store, acc, index_s = asyncio.run(build())
    eids = [eid for _, eid in store.mailbox_uids(acc, store.find_mailbox(acc, "Inbox")["id"])]
    rnd = random.Random(7)
    words = []
    for eid in rnd.sample(eids, min(len(eids), queries)):
        body = [w for f, t in fts.message_parts(mime.parse(store.read_message(acc, eid)))
                if f == "body" for w in t.split() if w.isalpha()]
        if len(body) >= 2:
            i = rnd.randrange(len(body) - 1)
            words.append(body[i] if rnd.random() < 0.5 else f"{body[i]} {body[i + 1]}")
    fields = fts.IMAP_KEY_FIELDS["BODY"]

    def answer(indexed: bool) -> list[list[int]]:
        out = []
        for text in words:
            ts = fts.TextSearch(store, acc, lambda eid: store.read_message(acc, eid))
            if not indexed:
                ts.watermark = 0  # as if nothing were indexed yet: every message scanned
            out.append([eid for eid in eids if ts.matches(eid, text, fields)])
        return out

    t0 = time.perf_counter()
    from_index = answer(True)
    index_q = time.perf_counter() - t0
    t0 = time.perf_counter()
    from_scan = answer(False)
    scan_q = time.perf_counter() - t0
    return {
        "messages": len(eids),
        "queries": len(words),
        "indexing_messages_per_s": round(len(eids) / index_s, 1),
        "index_queries_per_s": round(len(words) / index_q, 2),
        "scan_queries_per_s": round(len(words) / scan_q, 2),
        "ratio": round(scan_q / index_q, 1),
        "agreed": from_index == from_scan,
        "matches": sum(len(r) for r in from_index),
    }


def run(path: Path, count: int, rounds: int) -> dict:
    docs = load_documents(path, count)
    megabytes = sum(len(text.encode()) for parts in docs for _, text in parts) / 1e6
    words = sum(len(v) for parts in docs for v in py_index(parts).values())
    native_s, stem_s, python_s = [], [], []
    for _ in range(rounds):
        native_s.append(_time(lambda: [fts.index_document(p, "none") for p in docs]))
        stem_s.append(_time(lambda: [fts.index_document(p, "en") for p in docs]))
        python_s.append(_time(lambda: [py_index(p) for p in docs]))
    agreed = sum(1 for p in docs if fts.index_document(p, "none") == py_index(p))
    # Write path: a message's entries merged into lists already holding 1,000 documents.
    sample = [fts.index_document(p, "en") for p in docs[:200]]
    lists = {key: fts.encode([(d, [1, 5]) for d in range(1000)])
             for entries in sample for key in entries}
    upsert_s = _time(lambda: [_upserts(lists, entries, 5000) for entries in sample])
    upserts = sum(len(entries) for entries in sample)
    return {
        "benchmark": "fts",
        "documents": len(docs),
        "megabytes": round(megabytes, 2),
        "indexed_words": words,
        "rounds": rounds,
        "native_mb_per_s": round(megabytes / statistics.median(native_s), 2),
        "native_stemmed_mb_per_s": round(megabytes / statistics.median(stem_s), 2),
        "python_mb_per_s": round(megabytes / statistics.median(python_s), 2),
        "ratio": round(statistics.median(p / n for n, p in zip(native_s, python_s)), 2),
        "ratio_stemmed": round(statistics.median(p / n for n, p in zip(stem_s, python_s)), 2),
        "agreement": round(agreed / len(docs), 4),
        "upserts_per_s": round(upserts / upsert_s),
        "env": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "system": platform.system(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro.fts",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--search-messages", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    r = run(args.corpus, max(args.messages, 1), max(args.rounds, 1))
    r["search"] = run_search(args.corpus, max(args.search_messages, 1), max(args.queries, 1))
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    env = r["env"]
    print(f"corpus: {r['documents']} messages, {r['megabytes']} MB of text, "
          f"{r['indexed_words']} words; {r['rounds']} rounds")
    print(f"env: Python {env['python']} ({env['implementation']}), {env['cpu_count']} CPUs, "
          f"{env['system']} {env['machine']}")
    print(f"native, folded:           {r['native_mb_per_s']:>7} MB/s  ({r['ratio']}x Python)")
    print(f"native, folded + stemmed: {r['native_stemmed_mb_per_s']:>7} MB/s  "
          f"({r['ratio_stemmed']}x Python without stemming)")
    print(f"pure Python, folded:      {r['python_mb_per_s']:>7} MB/s")
    print(f"results agreed (unstemmed) on {r['agreement']:.2%} of messages")
    print(f"posting-list upserts (lists of 1,000 documents): {r['upserts_per_s']} /s")
    q = r["search"]
    print(f"SEARCH BODY over {q['messages']} messages ({q['queries']} queries, "
          f"{q['matches']} matches): index {q['index_queries_per_s']} queries/s, "
          f"scan {q['scan_queries_per_s']} queries/s, {q['ratio']}x; "
          f"indexing {q['indexing_messages_per_s']} messages/s")
    print(f"index and scan answers agreed: {'yes' if q['agreed'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
