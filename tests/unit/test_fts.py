"""stalwart.fts: tokenizing and stemming, posting lists, queries, on hand-made documents
and on a slice of the SpamAssassin corpus (every search answer checked against a brute
force scan of the same documents)."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

import pytest

from stalwart import _native, fts, mime

CORPUS = Path("/work/shared/corpora/spamassassin-dev.tar.gz")


# -- tokenizing

@pytest.mark.parametrize("text, language, expected", [
    ("The quick brown foxes JUMPED", "en", ["the", "quick", "brown", "fox", "jump"]),
    ("Crème BRÛLÉE, naïve café", "en", ["creme", "brule", "naiv", "cafe"]),
    ("Straße ÆRØ ﬁsh", "none", ["strasse", "aero", "fish"]),
    ("e-mail don't 3.14 user@example.com", "none",
     ["e", "mail", "don't", "3.14", "user", "example.com"]),
    ("Die Häuser und das Haus", "de", ["die", "haus", "und", "das", "haus"]),
    ("les chevaux mangeaient", "fr", ["le", "cheval", "mang"]),
    ("Οδυσσευς ΟΔΥΣΣΕΥΣ", "none", ["οδυσσευσ", "οδυσσευσ"]),
    ("日本語のテキスト", "none", ["日", "本", "語", "の", "テキスト"]),
    ("", "en", []),
    ("... --- !!!", "en", []),
])
def test_terms(text, language, expected):
    assert fts.terms(text, language) == expected


def test_overlong_words_are_skipped_but_keep_their_position():
    long_word = "x" * (fts.MAX_WORD_BYTES + 1)
    index = fts.index_document([("body", f"alpha {long_word} beta")], "none")
    assert index == {"body:alpha": [0], "body:beta": [2]}


def test_unknown_language_and_field_are_refused():
    with pytest.raises(ValueError, match="no stemmer"):
        fts.terms("x", "xx")
    with pytest.raises(ValueError, match="unknown full-text field"):
        fts.index_document([("nowhere", "x")])
    assert "en" in fts.LANGUAGES and "none" in fts.LANGUAGES


def test_index_document_positions_per_field_with_part_gaps():
    index = fts.index_document([
        ("subject", "Meeting notes"),
        ("body", "the meeting starts"),
        ("body", "notes follow"),
    ])
    assert index["subject:meet"] == [0]
    assert index["subject:note"] == [1]
    assert index["body:meet"] == [1]
    assert index["body:start"] == [2]
    assert index["body:note"] == [4]  # part 2 starts after a one-position gap
    assert index["body:follow"] == [5]


# -- posting lists

def test_posting_list_round_trip_and_compactness():
    entries = [(1, [0]), (2, [3, 9]), (130, [1, 2, 3]), (2**32 - 1, [2**32 - 1])]
    blob = fts.encode(entries)
    assert fts.decode(blob) == entries
    assert fts.docs(blob) == [1, 2, 130, 2**32 - 1]
    assert blob[0] == 1  # the version octet
    dense = fts.encode([(doc, [5]) for doc in range(1000)])
    assert len(dense) == 1 + 3 * 1000  # delta 1, one position, position 5: 3 octets each


def test_posting_list_errors():
    with pytest.raises(ValueError, match="ascending"):
        fts.encode([(2, [1]), (1, [1])])
    with pytest.raises(ValueError, match="ascending"):
        fts.encode([(1, [4, 4])])
    with pytest.raises(ValueError, match="without positions"):
        fts.upsert(None, 1, [])
    blob = fts.encode([(7, [1, 2])])
    with pytest.raises(ValueError, match="truncated"):
        fts.decode(blob[:-1])
    with pytest.raises(ValueError, match="version"):
        fts.docs(b"\x09" + blob[1:])


def test_upsert_and_remove_match_a_dict_model():
    rnd = random.Random(3)
    model: dict[int, list[int]] = {}
    blob = None
    for _ in range(400):
        if model and rnd.random() < 0.25:
            gone = rnd.sample(sorted(model), rnd.randint(1, min(3, len(model))))
            blob = fts.remove(blob, gone)
            for doc in gone:
                del model[doc]
        else:
            doc = rnd.choice([rnd.randint(0, 50), max(model, default=0) + rnd.randint(1, 300)])
            positions = sorted(rnd.sample(range(500), rnd.randint(1, 4)))
            blob = fts.upsert(blob, doc, positions)
            model[doc] = positions
        assert (fts.decode(blob) if blob is not None else []) == sorted(model.items())
        assert blob is not None or not model


def test_phrase_and_intersection_primitives():
    quick = fts.encode([(1, [1]), (2, [5]), (3, [0, 8])])
    fox = fts.encode([(1, [2]), (2, [9]), (3, [9]), (4, [1])])
    assert _native.fts_intersect([quick, fox]) == [1, 2, 3]
    assert _native.fts_phrase([quick, fox]) == [1, 3]
    assert _native.fts_phrase([fox, quick]) == []


# -- queries over a small mailbox

DOCS = {
    1: [("subject", "Quarterly report"), ("from", "Alice Smith alice@example.com"),
        ("body", "Please find the quarterly reports attached. Revenue grew.")],
    2: [("subject", "Lunch?"), ("from", "Bob bob@example.org"),
        ("body", "Are we still meeting for lunch? The report can wait.")],
    3: [("subject", "Re: Quarterly report"), ("from", "Carol carol@example.net"),
        ("body", "Report quarterly numbers, not the quarterly report itself."),
        ("attachment", "q3-report.pdf")],
}


def build(docs: dict[int, list[tuple[str, str]]], language: str = "en") -> dict[str, bytes]:
    store: dict[str, bytes] = {}
    for doc, parts in docs.items():
        for key, positions in fts.index_document(parts, language).items():
            store[key] = fts.upsert(store.get(key), doc, positions)
    return store


def test_queries_over_hand_made_documents():
    store = build(DOCS)
    body = fts.IMAP_KEY_FIELDS["BODY"]
    assert fts.search(fts.imap_query("reports"), body, store.get) == [1, 2, 3]
    assert fts.search(fts.imap_query("quarterly report"), body, store.get) == [1, 3]
    assert fts.search(fts.imap_query("quarterly report"), ("subject",), store.get) == [1, 3]
    assert fts.search(fts.imap_query("report quarterly"), ("body",), store.get) == [3]
    assert fts.search(fts.imap_query("alice"), fts.IMAP_KEY_FIELDS["FROM"], store.get) == [1]
    assert fts.search(fts.imap_query("alice"), body, store.get) == []
    assert fts.search(fts.parse_query('lunch "the report"'), fts.FIELDS, store.get) == [2]
    assert fts.search(fts.parse_query("revenue alice"), fts.FIELDS, store.get) == [1]
    assert fts.search(fts.parse_query("q3"), body, store.get) == [3]  # "q3-report.pdf"
    assert fts.search(fts.parse_query(""), fts.FIELDS, store.get) == []
    assert fts.search(fts.parse_query("nowhere"), fts.FIELDS, store.get) == []


def test_parse_query():
    q = fts.parse_query('Running "quarterly reports" "x" dogs running')
    assert q == fts.Query(("run", "x", "dog"), (("quarter", "report"),))
    assert fts.parse_query('an "unbalanced quote') == fts.Query(("an", "unbalanc", "quot"))
    assert fts.imap_query("Fox") == fts.Query(("fox",), ())


def test_html_bodies_are_indexed_as_text():
    raw = (b"From: a@b.example\r\nSubject: Hi\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><style>p {color: red}</style><p>Caf&eacute; <b>ouvert</b></p></html>\r\n")
    parts = fts.message_parts(mime.parse(raw))
    assert ("subject", "Hi") in parts
    [body] = [text for field, text in parts if field == "body"]
    assert fts.terms(body, "none") == ["cafe", "ouvert"]


# -- a slice of the corpus, checked against brute force

def corpus_slice(count: int) -> list[bytes]:
    out = []
    with tarfile.open(CORPUS, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".eml"):
                raw = tar.extractfile(member).read()
                if raw.startswith(b"From "):
                    raw = raw.split(b"\n", 1)[-1]
                out.append(raw)
                if len(out) == count:
                    break
    return out


def test_corpus_slice_search_matches_brute_force():
    messages = corpus_slice(300)
    docs = {i: fts.message_parts(mime.parse(raw)) for i, raw in enumerate(messages)}
    store = build(docs)
    # Brute force: each document's term sequence per field, from the same tokenizer, with
    # the part gap made explicit by a None between parts.
    seqs: dict[int, dict[str, list[str | None]]] = {}
    for doc, parts in docs.items():
        fields: dict[str, list[str | None]] = {}
        for field, text in parts:
            seq = fields.setdefault(field, [])
            if seq:
                seq.append(None)
            seq.extend(_positions(text))
        seqs[doc] = fields
    rnd = random.Random(11)
    checked = 0
    for _ in range(150):
        doc = rnd.choice(list(docs))
        body = [t for t in seqs[doc].get("body", []) if t is not None]
        if len(body) < 3:
            continue
        i = rnd.randrange(len(body) - 1)
        phrase = (body[i], body[i + 1])
        word = body[i]
        fields = fts.IMAP_KEY_FIELDS["TEXT"]
        expected_word = [d for d in docs if any(word in seqs[d].get(f, ()) for f in fields)]
        assert fts.search(fts.Query((word,)), fields, store.get) == expected_word
        expected_phrase = [d for d in docs if any(
            _contains(seqs[d].get(f, []), phrase) for f in fields)]
        got = fts.search(fts.Query((), (phrase,)), fields, store.get)
        assert got == expected_phrase, phrase
        assert doc in got
        checked += 1
    assert checked > 100


def _positions(text: str) -> list[str | None]:
    """The term at every position of ``text`` (None where an over-long word sits)."""
    index = fts.index_document([("body", text)], "en")
    length = max((p for ps in index.values() for p in ps), default=-1) + 1
    seq: list[str | None] = [None] * length
    for key, positions in index.items():
        for p in positions:
            seq[p] = key.split(":", 1)[1]
    return seq


def _contains(seq: list[str | None], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(seq[i:i + n]) == phrase for i in range(len(seq) - n + 1))


def test_stub_declares_the_fts_names():
    stub = (Path(__file__).parents[2] / "stalwart" / "_native.pyi").read_text()
    for name in ("fts_index", "fts_terms", "fts_encode", "fts_decode", "fts_docs", "fts_upsert",
                 "fts_remove", "fts_intersect", "fts_phrase", "FTS_LANGUAGES",
                 "FTS_MAX_WORD_BYTES", "FTS_DETECTED", "fts_detect_language", "ImapParser",
                 "imap_parse_command"):
        assert hasattr(_native, name), name
        assert f"{name}" in stub, name


# -- the index in the store, the indexer, and IMAP SEARCH over it

import asyncio  # noqa: E402

from stalwart.protocols.imap.testing import Client  # noqa: E402


def _mail(subject: str, body: str, sender: str = "Alice Smith <alice@example.com>") -> bytes:
    return (f"From: {sender}\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


MAILS = [
    _mail("Quarterly report", "Please find the quarterly reports attached. Revenue grew."),
    _mail("Lunch?", "Are we still meeting for lunch? The report can wait.", "Bob <bob@example.org>"),
    _mail("Crème brûlée", "Die Häuser und die Gärten werden im Frühling verkauft, sagt der Makler."),
]


def test_detect_language():
    assert fts.detect_language("The meeting is moved to Friday and the report will follow.") == "en"
    assert fts.detect_language("Die Häuser und die Gärten werden im Frühling verkauft.") == "de"
    assert fts.detect_language("ok") == "none"
    lang, terms = fts.document_terms(MAILS[2])
    assert lang == "de" and "body:haus" in terms and "subject:crem" in terms


def test_store_index_filled_purged_and_never_stale():
    async def t():
        c = await Client.create()
        acc = c.account
        for raw in MAILS:
            await c.deliver(raw)
        store = c.store
        assert store.fts_state(acc) == {"next": 1}
        assert await fts.index_account(store, acc) == 3
        assert store.fts_state(acc)["next"] == 4
        assert store.fts_indexed_ids(acc) == [1, 2, 3]
        assert fts.decode(store.fts_postings(acc, "body:report")[0]) == [(1, [4]), (2, [7])]
        assert await fts.index_account(store, acc) == 0  # nothing new

        # A message delivered after the indexer ran is answered by scanning it.
        await c.deliver(_mail("Late", "The report arrived late."))
        text = fts.TextSearch(store, acc, lambda eid: store.read_message(acc, eid))
        body = fts.IMAP_KEY_FIELDS["BODY"]
        assert [e for e in (1, 2, 3, 4) if text.matches(e, "reports", body)] == [1, 2, 4]
        assert text.scanned == 1
        assert [e for e in (1, 2, 3, 4) if text.matches(e, "häuser", body)] == [3]
        assert [e for e in (1, 2, 3, 4) if text.matches(e, "alice", ("from",))] == [1, 3, 4]

        # Destroyed mail leaves the posting lists; live mail stays.
        await store.destroy(acc, [1])
        assert await fts.purge_account(store, acc) == 1
        assert store.fts_indexed_ids(acc) == [2, 3]
        assert fts.decode(store.fts_postings(acc, "body:report")[0]) == [(2, [7])]
        assert (await store.fts_purge(acc, [2]))["purged"] == []
    asyncio.run(t())


def test_store_refuses_bad_index_input():
    from stalwart.store import StoreError

    async def t():
        c = await Client.create()
        await c.deliver(MAILS[0])
        for docs, nxt in (([{"email": 1, "terms": {"nofield:x": [1]}}], 2),
                          ([{"email": 1, "terms": {"body:x": []}}], 2),
                          ([{"email": 1, "terms": {"body:x": [3, 2]}}], 2),
                          ([], 99)):
            with pytest.raises(StoreError) as info:
                await c.store.fts_apply(c.account, docs, nxt)
            assert info.value.code == "invalid"
        assert c.store.fts_state(c.account) == {"next": 1}  # nothing was written
    asyncio.run(t())


def test_imap_search_uses_the_index_and_scans_what_is_not_indexed():
    async def t():
        c = await Client.create()
        for raw in MAILS:
            await c.deliver(raw)
        await fts.index_account(c.store, c.account)
        await c.deliver(_mail("Grèves", "Les grèves continuent, the reports say."))  # not indexed
        await c.cmd("a1 SELECT INBOX", *(["*"] * 7), "a1 OK [READ-WRITE] SELECT completed")
        # Words, folded and stemmed: "reports" finds "report" (no substring scan does).
        await c.cmd("a2 SEARCH BODY reports", "* SEARCH 1 2 4", "a2 OK SEARCH completed")
        await c.cmd('a3 SEARCH TEXT "creme BRULEE"', "* SEARCH 3", "a3 OK SEARCH completed")
        await c.cmd("a4 SEARCH SUBJECT greve", "* SEARCH 4", "a4 OK SEARCH completed")
        await c.cmd('a5 SEARCH BODY "report can wait"', "* SEARCH 2", "a5 OK SEARCH completed")
        await c.cmd('a6 SEARCH BODY "wait can"', "* SEARCH", "a6 OK SEARCH completed")
        await c.cmd("a7 SEARCH FROM alice NOT BODY lunch", "* SEARCH 1 3 4", "a7 OK SEARCH completed")
        await c.cmd("a8 SEARCH CHARSET UTF-8 BODY \"H\u00c4USER\"".encode(), "* SEARCH 3",
                    "a8 OK SEARCH completed")
        # No word in the string: a substring scan, as before.
        await c.cmd('a9 SEARCH SUBJECT "?"', "* SEARCH 2", "a9 OK SEARCH completed")
    asyncio.run(t())


def test_indexer_follows_deliveries():
    async def t():
        c = await Client.create()
        await c.deliver(MAILS[0])
        stop = asyncio.Event()
        task = asyncio.create_task(fts.run_indexer(c.store, stop, settle=0.01))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if c.store.fts_state(c.account)["next"] == 2:
                break
        assert c.store.fts_state(c.account)["next"] == 2
        await c.deliver(MAILS[1])
        for _ in range(300):
            await asyncio.sleep(0.01)
            if c.store.fts_state(c.account)["next"] == 3:
                break
        assert c.store.fts_indexed_ids(c.account) == [1, 2]
        stop.set()
        await asyncio.wait_for(task, 5)
    asyncio.run(t())


def test_posting_lists_span_blocks_of_email_ids():
    """Lists are kept per block of 256 email ids; a query reads every block."""
    from stalwart.store.ops.fts import BLOCK_BITS

    async def t():
        c = await Client.create()
        count = (1 << BLOCK_BITS) + 40
        for i in range(count):
            await c.deliver(_mail(f"n{i}", f"common words here{' rare phrase' if i % 100 == 7 else ''}"))
        await fts.index_account(c.store, c.account)
        assert sorted(c.store.fts_postings(c.account, "body:common")) == [0, 1]
        text = fts.TextSearch(c.store, c.account, lambda eid: b"")
        body = ("body",)
        eids = range(1, count + 1)
        assert [e for e in eids if text.matches(e, "common", body)] == list(eids)
        assert [e for e in eids if text.matches(e, "rare phrase", body)] == [8, 108, 208]
        assert text.scanned == 0
    asyncio.run(t())


def test_fts_subspaces_are_their_own_and_go_with_the_account():
    from stalwart.store import keys

    subspaces = [v for k, v in vars(keys).items()
                 if k.isupper() and isinstance(v, bytes) and len(v) == 1]
    assert len(subspaces) == len(set(subspaces))  # no two key families share a byte
    assert {keys.FTS_TERM, keys.FTS_DOC, keys.FTS_STATE} <= set(keys.ACCOUNT_SUBSPACES)

    async def t():
        c = await Client.create()
        await c.deliver(MAILS[0])
        await fts.index_account(c.store, c.account)
        assert c.store.fts_postings(c.account, "body:report")
        await c.store.delete_account("alice")
        assert c.store.fts_postings(c.account, "body:report") == {}
        assert c.store.fts_indexed_ids(c.account) == []
        assert c.store.fts_state(c.account) == {"next": 1}
    asyncio.run(t())
