"""The Rust DKIM canonicalization (``ext/src/dkim.rs``) against the Python reference in
``stalwart/mailauth/canon.py``: every result must be byte-identical.

Inputs: every message of the SpamAssassin corpus (as stored, with bare LF line ends,
and made CRLF as on the wire), hand-made edge cases, and seeded random messages over a
small alphabet of the bytes that matter (WSP, CR, LF, colon, semicolon, ``b``, ``=``,
8-bit). Bodies also go through the streaming hasher at random splits and byte by byte.
Finally sign and verify give the same signatures on either path.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re

import pytest

from bench.micro import mime as mime_bench
from stalwart.mailauth import canon, dkim, keys

METHODS = ("simple", "relaxed")

#: Bodies of the hand-made cases (and of every random message).
EDGE_BODIES = [
    b"",                                          # empty body
    b"no final line end",                         # body without final CRLF
    b"last line  \t",                             # ... ending in WSP
    b"\r\n", b"\r\n\r\n\r\n", b"\r\n \r\n\t\r\n",  # only CRLFs (and blank WSP lines)
    b"trailing wsp \t \r\n\tleading\r\n",        # trailing / leading WSP
    b" C \r\nD \t E\r\n\r\n\r\n",                 # RFC 6376 3.4.5
    b"bare\nLF\n\nlines\n",                       # bare LF (ordinary bytes in a body)
    b"bare\rCR \r \r\n\r",                        # bare CR, SP before it
    b"x\r\r\n\r\n", b"\r", b"\n", b" ", b"\t\r\n",
    b"a\n\r\n", b"a \r\n \r",
    "8-bit caf\u00e9 \u00a0\t\xff".encode() + b"\xff\xfe\x80  \r\n",
    b"x" * 100_000 + b"  \r\n" + b"y " * 50_000,   # very long lines
    b"a\r\n" + b"\r\n" * 5000 + b"b",             # blank lines kept inside
    b"\r\n" * 5000,                               # ... and dropped at the end
]

#: Headers of the hand-made cases.
EDGE_HEADERS = [
    b"From: a@example.org\r\nSubject: folded\r\n\twith tabs\t\r\n \tand spaces  \r\n",
    b"FrOm: odd case\r\nSUBJECT : spaced name\r\nsubject:\tdup 1\r\nSubject: dup 2\r\n",
    b"X-Empty:\r\nX-Colons: a:b:c\r\nX-8bit: caf\xc3\xa9 \xff\r\n",
    b"Not a field\r\n continuation of nothing\r\nBad Name: x\r\n: no name\r\nOk: 1\r\n",
    b"From: bare\nLF: headers\n\tfolded\n",
    b"Bare-CR: a\rb\r\nTrailing-CR: x\r\r\n",
    b"X-Long: " + b"w " * 5000 + b"\r\n",
]

SIGNATURES = [
    b"DKIM-Signature: v=1; a=rsa-sha256; b=abc\r\n\tdef; bh=xyz\r\n",
    b"DKIM-Signature: v=1; bh=xyz;\r\n\tb=abc\r\n\tdef\r\n",
    b"DKIM-Signature:b=first;b=second\r\n",
    b"ARC-Seal: i=1; cv=none; b = spaced ; d=x\r\n",
    b"X: no b tag; bh=1; xb=2; B=3\r\n",
    b"X: b=\r\n",
    b"X:",
]


def random_message(rng: random.Random) -> bytes:
    alphabet = b"  \t\t\r\r\n\n\n::;;bb==aZ\xff"
    def chunk(n):
        return bytes(rng.choice(alphabet) for _ in range(rng.randrange(n)))
    parts = []
    for _ in range(rng.randrange(6)):
        parts.append(rng.choice([b"From", b"b", b"X-Y", b" f", b""]) + chunk(4)
                     + rng.choice([b":", b""]) + chunk(30))
        parts.append(rng.choice([b"\r\n", b"\n", b"\r\n\t", b"\r\n "]))
    parts.append(rng.choice([b"\r\n", b"\n", b""]))
    parts.append(chunk(60))
    return b"".join(parts)


def reference(fn):
    """Run ``fn`` with the public functions on the Python path."""
    canon.use_native(False)
    try:
        return fn()
    finally:
        canon.use_native(True)


@pytest.fixture(scope="module")
def corpus():
    if not mime_bench.CORPUS.exists():
        pytest.fail(f"corpus missing: {mime_bench.CORPUS}")
    raw = [m for _, m in mime_bench.load_corpus()]
    assert len(raw) == 4218
    return raw


def test_native_is_built_and_used():
    # Without the Rust functions every comparison below would compare Python with itself.
    assert canon.NATIVE
    assert canon.use_native(True)
    assert canon._native is not None


def check_split(message: bytes) -> tuple[list, bytes]:
    fields, body = canon.split_message(message)
    ref_fields, ref_body = canon.split_message_py(message)
    assert fields == ref_fields
    assert all(type(f) is canon.Field for f in fields)
    assert body == ref_body
    return fields, body


def check_body(body: bytes, lengths=(None,)) -> None:
    for method in METHODS:
        relaxed = method == "relaxed"
        expected = canon.canonical_body_py(body, method)
        assert canon.canonical_body(body, method) == expected, method
        for length in lengths:
            digest, size = canon.body_hash(body, method, length)
            assert (digest, size) == canon.body_hash_py(body, method, length), (method, length)
            assert size == len(expected)
            assert digest == hashlib.sha256(
                expected if length is None else expected[:length]).digest()
        assert canon._native.dkim_body_hash(body, relaxed) == canon.body_hash_py(body, method)


def check_headers(fields: list) -> None:
    raws = [f.raw for f in fields]
    for raw in raws:
        assert canon.relaxed_header(raw) == canon.relaxed_header_py(raw)
        # the field without its CRLF (as a signature field may be hashed)
        assert canon.relaxed_header(raw[:-2]) == canon.relaxed_header_py(raw[:-2])
    for method in METHODS:
        for sig in SIGNATURES[:3]:
            assert canon.header_data(raws, method, sig) == canon.header_data_py(raws, method, sig)


def test_corpus_as_stored_and_as_on_the_wire(corpus):
    fields_seen = 0
    for message in corpus:
        for variant in (message, re.sub(rb"\r?\n", b"\r\n", message)):
            fields, body = check_split(variant)
            fields_seen += len(fields)
            check_headers(fields)
            canonical = canon.canonical_body_py(body, "relaxed")
            check_body(body, lengths=(None, 0, len(canonical) // 2, len(canonical) + 1))
    assert fields_seen > 100_000


def test_corpus_bodies_at_random_splits(corpus):
    rng = random.Random(6376)
    for message in corpus[::7]:
        _, body = canon.split_message(message)
        for method in METHODS:
            expected = canon.body_hash_py(body, method)
            hasher = canon.BodyHasher(method)
            cuts = sorted(rng.randrange(len(body) + 1) for _ in range(rng.randrange(1, 8)))
            for start, end in zip([0] + cuts, cuts + [len(body)]):
                hasher.update(body[start:end])
            assert hasher.finish() == expected


@pytest.mark.parametrize("body", EDGE_BODIES, ids=range(len(EDGE_BODIES)))
def test_edge_bodies(body):
    canonical = canon.canonical_body_py(body, "simple")
    # l=0, l= inside, l= exactly the body, l= beyond it, and an l= of 76 digits
    check_body(body, lengths=(None, 0, 1, len(canonical) // 2, len(canonical),
                              len(canonical) + 5, 10**75))


@pytest.mark.parametrize("body", EDGE_BODIES[:-3], ids=range(len(EDGE_BODIES) - 3))
def test_edge_bodies_byte_by_byte_and_every_split(body):
    for method in METHODS:
        expected = canon.body_hash_py(body, method)
        hasher = canon.BodyHasher(method)
        for i in range(len(body)):
            hasher.update(body[i:i + 1])
        assert hasher.finish() == expected
        if len(body) <= 40:
            for cut in range(len(body) + 1):
                hasher = canon.BodyHasher(method)
                hasher.update(body[:cut])
                hasher.update(b"")
                hasher.update(body[cut:])
                assert hasher.finish() == expected, cut


@pytest.mark.parametrize("header", EDGE_HEADERS, ids=range(len(EDGE_HEADERS)))
def test_edge_headers(header):
    for body in (b"", b"body\r\n"):
        for sep in (b"\r\n", b"\n", b""):
            fields, _ = check_split(header + sep + body)
            check_headers(fields)
    assert check_split(header)[0]


def test_edge_header_results():
    # Not only equal to the reference: what the reference says is right (RFC 6376 3.4.2).
    fields, _ = check_split(EDGE_HEADERS[0] + EDGE_HEADERS[1] + b"\r\n")
    assert [f.lname for f in fields] == [b"from", b"subject", b"from", b"subject",
                                         b"subject", b"subject"]
    assert canon.relaxed_header(fields[1].raw) == b"subject:folded with tabs and spaces\r\n"
    assert canon.relaxed_header(fields[3].raw) == b"subject:spaced name\r\n"
    fields, _ = check_split(EDGE_HEADERS[3] + b"\r\n")
    assert [f.lname for f in fields] == [b"ok"]


@pytest.mark.parametrize("sig", SIGNATURES, ids=range(len(SIGNATURES)))
def test_strip_b_value(sig):
    assert canon.strip_b_value(sig) == canon.strip_b_value_py(sig)
    for method in METHODS:
        assert (canon.header_data([b"A: 1\r\n"], method, sig)
                == canon.header_data_py([b"A: 1\r\n"], method, sig))


def test_strip_b_value_results():
    assert canon.strip_b_value(SIGNATURES[0]) == b"DKIM-Signature: v=1; a=rsa-sha256; b=; bh=xyz\r\n"
    assert canon.strip_b_value(SIGNATURES[1]) == b"DKIM-Signature: v=1; bh=xyz;\r\n\tb="
    assert canon.strip_b_value(SIGNATURES[2]) == b"DKIM-Signature:b=;b=second\r\n"
    assert canon.strip_b_value(SIGNATURES[4]) == SIGNATURES[4]


def test_random_messages():
    rng = random.Random(8617)
    for _ in range(3000):
        message = random_message(rng)
        fields, body = check_split(message)
        check_headers(fields)
        check_body(body, lengths=(None, 0, rng.randrange(40)))
        for f in fields:
            if b":" in f.raw:
                assert canon.strip_b_value(f.raw) == canon.strip_b_value_py(f.raw)
        for method in METHODS:
            hasher = canon.BodyHasher(method, 7)
            cut = rng.randrange(len(body) + 1)
            hasher.update(body[:cut])
            hasher.update(body[cut:])
            assert hasher.finish() == canon.body_hash_py(body, method, 7)


def test_bad_input_gives_clear_errors():
    for use in (True, False):
        canon.use_native(use)
        try:
            with pytest.raises(ValueError):
                canon.strip_b_value(b"no colon")
            with pytest.raises(ValueError):
                canon.header_data([b"A: 1\r\n"], "relaxed", b"no colon")
            with pytest.raises(TypeError):
                canon.split_message("From: text, not bytes\r\n\r\n")  # type: ignore[arg-type]
            hasher = canon.BodyHasher("relaxed")
            hasher.finish()
            with pytest.raises(ValueError):
                hasher.update(b"x")
            with pytest.raises(ValueError):
                hasher.finish()
        finally:
            canon.use_native(True)
    with pytest.raises(ValueError):
        canon.body_hash(b"x", "relaxed", -1)
    with pytest.raises(TypeError):
        canon.header_data([b"A: 1\r\n", "text"], "relaxed", b"S: b=1")  # type: ignore[list-item]
    with pytest.raises(TypeError):
        canon.relaxed_header(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        canon._native.dkim_split(b"A: 1\r\n", dict)          # not a tuple type
    with pytest.raises(TypeError):
        canon._native.dkim_split(b"A: 1\r\n", type("T", (tuple,), {}))  # has a __dict__
    assert canon._native.dkim_split(b"A: 1\r\n\r\nx") == ([(b"a", b"A: 1\r\n")], b"x")
    # bytearray and memoryview are accepted like bytes
    raw = b"From: a\r\n\r\nbody \r\n"
    assert canon.split_message(bytearray(raw)) == canon.split_message_py(raw)
    assert canon.split_message(memoryview(raw)) == canon.split_message_py(raw)
    assert canon.body_hash(bytearray(b"a  \r\n"), "relaxed") == canon.body_hash_py(b"a  \r\n", "relaxed")
    assert canon.relaxed_header(bytearray(b"A:  b\r\n")) == b"a:b\r\n"
    assert canon.canonical_body(memoryview(b"x\r\n\r\n"), "simple") == b"x\r\n"


def test_sign_and_verify_agree_on_both_paths(corpus):
    from stalwart.dns import FakeBackend, Resolver

    now = 1_700_000_000
    messages = [re.sub(rb"\r?\n", b"\r\n", m) for m in corpus[:400:8]]
    messages = [m for m in messages
                if any(f.lname == b"from" for f in canon.split_message_py(m)[0])]
    assert len(messages) > 40
    for algorithm in ("rsa-sha256", "ed25519-sha256"):
        key = keys.generate(algorithm, 2048)
        record = keys.dns_record("example.org", "sel", key)
        resolver = Resolver(FakeBackend({record.name: {"TXT": record.strings}}))
        for body_canon in METHODS:
            signer = dkim.DkimSigner("example.org", "sel", key,
                                     canonicalization=("relaxed", body_canon))
            native = [dkim.sign(m, [signer], now=now) for m in messages]
            python = reference(lambda: [dkim.sign(m, [signer], now=now) for m in messages])
            assert native == python             # both algorithms sign deterministically
            signed = [s + m for s, m in zip(python, messages)]

            async def verify_all():
                return [[r.result for r in await dkim.verify(m, resolver, now=now)]
                        for m in signed]
            assert asyncio.run(verify_all()) == [["pass"]] * len(signed)
            assert reference(lambda: asyncio.run(verify_all())) == [["pass"]] * len(signed)


# -- tag lists: the fast paths of parse_tags/strip_fws against the plain rules -------------

def parse_tags_plain(text: str) -> dict[str, str]:
    """RFC 6376 3.2 as canon.parse_tags states it, one regular expression per check."""
    tags: dict[str, str] = {}
    parts = text.split(";")
    for index, part in enumerate(parts):
        if not part.strip(" \t\r\n"):
            if index == len(parts) - 1:
                continue
            raise canon.TagListError("empty tag in tag list")
        name, eq, value = part.partition("=")
        name = name.strip(" \t\r\n")
        if not eq:
            raise canon.TagListError(f"tag {name[:20]!r} has no '='")
        if not re.match(r"[A-Za-z][A-Za-z0-9_]*\Z", name):
            raise canon.TagListError(f"bad tag name {name[:20]!r}")
        if name in tags:
            raise canon.TagListError(f"duplicate tag {name}")
        value = value.strip(" \t\r\n")
        if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f;]", value):
            raise canon.TagListError(f"control character in the value of tag {name}")
        tags[name] = value
    return tags


def outcome(fn, text):
    try:
        return fn(text)
    except canon.TagListError as exc:
        return f"error: {exc}"


def test_parse_tags_and_strip_fws_follow_the_plain_rules():
    rng = random.Random(3)
    pieces = ["v", "b", "bh", "x_1", "1x", "", " ", "\t", "\r\n ", "=", "=", ";", ";", "a",
              "\x00", "\x7f", "\x0b", "caf\u00e9", "b=", "h=from:to", "B"]
    texts = ["v=1; a=rsa-sha256; b=abc\r\n def;", "v=1;;a=1", "a=1; a=2", " ; ", "", ";",
             "k=rsa; p=MII\x01", "x=\x00; bad name=1"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randrange(12))) for _ in range(5000)]
    for text in texts:
        assert outcome(canon.parse_tags, text) == outcome(parse_tags_plain, text), repr(text)
        assert canon.strip_fws(text) == re.sub(r"[ \t\r\n]+", "", text)
