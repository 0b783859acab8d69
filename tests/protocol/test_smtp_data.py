"""The SMTP DATA and BDAT receivers (``stalwart.protocols.smtp._data``) and their reference.

What is checked:

- A table of DATA cases (input and expected result side by side): empty message,
  dot-stuffing, pipelined bytes after the end, size limit, every SMTP smuggling variant
  under both policies, NUL and 8-bit octets, header/body sizes. Each case runs against the
  Cython receiver and the pure-Python reference, fed whole, line by line, byte by byte and
  at seeded random splits.
- The end of data split at every pair of byte positions.
- Properties over seeded random inputs: a dot-stuffed message comes back unchanged; the
  message ends exactly at the first ``<CRLF>.<CRLF>`` and nowhere else; with
  ``normalize`` the stored message has no bare CR or LF; the Cython receiver and the
  reference agree on output, rest and every reported fact.
- BDAT: sizes 0, 1 and large, LAST, a CRLF split across chunks, no dot-unstuffing, the
  policies, pipelined commands after a chunk, and the same differential test.
- Misuse and bad input: clear exceptions, never a crash.
- ``base.LineReader`` (the command reader the session hands the stream to and back from):
  the line limit, bounded memory, and a pipelined session through DATA and after it,
  including the SEC Consult smuggling payload.
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass, field

import pytest

from stalwart.protocols.base import (NEED_DATA, LineReader, LineTooLong, LocalProtocolError,
                                     RemoteProtocolError)
from stalwart.protocols.smtp import _data as cy
from stalwart.protocols.smtp import data_ref as ref

IMPLS = {"cython": cy, "reference": ref}
FACTS = ("done", "size", "size_exceeded", "header_size", "body_size", "bare_lf_count",
         "bare_cr_count", "nul_count", "eight_bit_count")
BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@pytest.fixture(params=sorted(IMPLS))
def impl(request):
    return IMPLS[request.param]


@dataclass
class Outcome:
    stored: bytes
    rest: bytes | None          # None: the receiver still wants data
    facts: dict
    error: RemoteProtocolError | None


def facts_of(r) -> dict:
    return {name: getattr(r, name) for name in FACTS}


def run_data(mod, chunks, **kw) -> Outcome:
    sink = bytearray()
    r = mod.DataReceiver(sink, **kw)
    rest = None
    for k, chunk in enumerate(chunks):
        got = r.feed(chunk)
        if got is not NEED_DATA:
            rest = got + b"".join(chunks[k + 1:])
            break
    return Outcome(bytes(sink), rest, facts_of(r), r.error)


def run_bdat(mod, plan, **kw) -> tuple[Outcome, list[bytes]]:
    """``plan``: [(size, last, chunks)]; returns the outcome and the rest after each chunk."""
    sink = bytearray()
    r = mod.BdatReceiver(sink, **kw)
    rests = []
    for size, last, chunks in plan:
        r.start_chunk(size, last)
        got = NEED_DATA
        for k, chunk in enumerate(chunks):
            got = r.feed(chunk)
            if got is not NEED_DATA:
                got = got + b"".join(chunks[k + 1:])
                break
        if got is NEED_DATA:   # every chunk list must complete its chunk (even size 0)
            got = r.feed(b"")
        assert got is not NEED_DATA, "chunk never completed"
        rests.append(got)
    return Outcome(bytes(sink), None, facts_of(r), r.error), rests


# ---------------------------------------------------------------------- DATA: the table
@dataclass
class Case:
    name: str
    wire: bytes                          # what the client sends after 354
    stored: bytes                        # the message we keep
    rest: bytes | None = b""             # after the end; None: never ends
    kw: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    error: str | None = None             # reply code of the error, if any


SMUGGLED = b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<v@x.example>\r\nDATA\r\nforged\r\n"

CASES = [
    Case("empty message", b".\r\n", b"", facts={"size": 0, "header_size": 0, "body_size": 0}),
    Case("empty then pipelined QUIT", b".\r\nQUIT\r\n", b"", rest=b"QUIT\r\n"),
    Case("empty line only", b"\r\n.\r\n", b"\r\n", facts={"header_size": 2, "body_size": 0}),
    Case("header and body", b"Subject: a\r\n\r\nbody\r\n.\r\n", b"Subject: a\r\n\r\nbody\r\n",
         facts={"size": 20, "header_size": 14, "body_size": 6}),
    Case("header only, no empty line", b"Subject: a\r\nX: y\r\n.\r\n", b"Subject: a\r\nX: y\r\n",
         facts={"header_size": 18, "body_size": 0}),
    Case("dot-stuffing", b"..\r\n...x\r\n..y.\r\n.\r\n", b".\r\n..x\r\n.y.\r\n"),
    Case("leading dot removed from any line (RFC 5321 4.5.2)", b".x\r\n. \r\n.\r\n", b"x\r\n \r\n"),
    Case("dots not at a line start stay", b"a.\r\nb..\r\n.\r\n", b"a.\r\nb..\r\n"),
    Case("pipelined commands after the end", b"hi\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
         b"hi\r\n", rest=b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"),
    Case("only the first end counts", b"a\r\n.\r\n.\r\n", b"a\r\n", rest=b".\r\n"),
    Case("no end yet", b"a\r\n..\r\n.", b"a\r\n.\r\n", rest=None, facts={"done": False}),
    Case("no end: CRLF . CR only", b"a\r\n.\r", b"a\r\n", rest=None),
    Case("CRLF CRLF . CRLF", b"a\r\n\r\n.\r\n", b"a\r\n\r\n",
         facts={"header_size": 5, "body_size": 0}),
    # SMTP smuggling (SEC Consult 2023): none of these ends the message.
    Case("smuggling LF.LF rejected", b"x\n.\n" + SMUGGLED + b".\r\n", b"x\n.\n" + SMUGGLED,
         facts={"bare_lf_count": 2, "bare_cr_count": 0}, error="550 5.6.0"),
    Case("smuggling CR.CR rejected", b"x\r.\r" + SMUGGLED + b".\r\n", b"x\r.\r" + SMUGGLED,
         facts={"bare_cr_count": 2, "bare_lf_count": 0}, error="550 5.6.0"),
    Case("smuggling LF.CRLF rejected", b"x\n.\r\n" + SMUGGLED + b".\r\n", b"x\n.\r\n" + SMUGGLED,
         facts={"bare_lf_count": 1}, error="550 5.6.0"),
    Case("smuggling CRLF.LF rejected (leading dot removed)", b"x\r\n.\n" + SMUGGLED + b".\r\n",
         b"x\r\n\n" + SMUGGLED, facts={"bare_lf_count": 1}, error="550 5.6.0"),
    Case("smuggling CR.CRLF rejected", b"x\r.\r\n" + SMUGGLED + b".\r\n", b"x\r.\r\n" + SMUGGLED,
         facts={"bare_cr_count": 1}, error="550 5.6.0"),
    Case("smuggling CRLF.CR rejected", b"x\r\n.\r" + SMUGGLED + b".\r\n", b"x\r\n\r" + SMUGGLED,
         facts={"bare_cr_count": 1}, error="550 5.6.0"),
    Case("smuggling LF.LF normalized", b"x\n.\n" + SMUGGLED + b".\r\n",
         b"x\r\n.\r\n" + SMUGGLED, kw={"bare_newline": "normalize"},
         facts={"bare_lf_count": 2}),
    Case("smuggling CR.CR normalized", b"x\r.\r" + SMUGGLED + b".\r\n",
         b"x\r\n.\r\n" + SMUGGLED, kw={"bare_newline": "normalize"},
         facts={"bare_cr_count": 2}),
    Case("smuggling CRLF.LF normalized", b"x\r\n.\n" + SMUGGLED + b".\r\n",
         b"x\r\n\r\n" + SMUGGLED, kw={"bare_newline": "normalize"}),
    Case("CR CR LF: one bare CR, one CRLF", b"a\r\r\n.\r\n", b"a\r\r\n",
         facts={"bare_cr_count": 1}, error="550 5.6.0"),
    Case("CR CR LF normalized", b"a\r\r\n.\r\n", b"a\r\n\r\n", kw={"bare_newline": "normalize"},
         facts={"header_size": 5}),
    Case("dot CR CR LF at a line start", b"a\r\n.\r\r\n.\r\n", b"a\r\n\r\r\n",
         facts={"bare_cr_count": 1}, error="550 5.6.0"),
    Case("bare LF then . CRLF is not the end", b"\n.\r\n.\r\n", b"\n.\r\n",
         facts={"bare_lf_count": 1}, error="550 5.6.0"),
    Case("size exactly the limit", b"12345678\r\n.\r\n", b"12345678\r\n", kw={"max_size": 10},
         facts={"size": 10, "size_exceeded": False}),
    Case("size exceeded: stored up to the limit, read to the end", b"123456789\r\n.\r\nQUIT\r\n",
         b"123456789\r", rest=b"QUIT\r\n", kw={"max_size": 10},
         facts={"size": 11, "size_exceeded": True}, error="552 5.3.4"),
    Case("size limit 0 and an empty message", b".\r\n", b"", kw={"max_size": 0},
         facts={"size_exceeded": False}),
    Case("size limit counts unstuffed octets", b"..\r\n.\r\n", b".\r\n", kw={"max_size": 3},
         facts={"size_exceeded": False}),
    Case("size beats bare newline in the error", b"a\nbcdef\r\n.\r\n", b"a\nb", kw={"max_size": 3},
         facts={"bare_lf_count": 1}, error="552 5.3.4"),
    Case("NUL octets counted", b"a\x00b\x00\r\n.\r\n", b"a\x00b\x00\r\n", facts={"nul_count": 2}),
    Case("8-bit octets counted", "Subject: café\r\n\r\nñ\r\n.\r\n".encode(),
         "Subject: café\r\n\r\nñ\r\n".encode(), facts={"eight_bit_count": 4, "nul_count": 0}),
    Case("8-bit right after a dot", b".\xff\r\n.\r\n", b"\xff\r\n", facts={"eight_bit_count": 1}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_data_cases(impl, case, feed_ways):
    for way, chunks in feed_ways(case.wire, seed=case.name):
        got = run_data(impl, chunks, **case.kw)
        where = f"{case.name} fed {way}"
        assert got.stored == case.stored, where
        assert got.rest == case.rest, where
        assert got.facts["done"] is (case.rest is not None), where
        for name, value in case.facts.items():
            assert got.facts[name] == value, f"{where}: {name}"
        if case.rest is not None:
            if case.error is None:
                assert got.error is None, where
            else:
                assert got.error is not None and got.error.reply_code == case.error, where
        if case.kw.get("bare_newline") == "normalize":
            assert not BARE_NEWLINE.search(got.stored), where


def test_terminator_split_at_every_position(impl):
    wire = b"Subject: t\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n"
    want = run_data(impl, [wire])
    assert want.stored == b"Subject: t\r\n\r\nhello\r\n.dot\r\n"
    assert want.rest == b"QUIT\r\n"
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            got = run_data(impl, [wire[:i], wire[i:j], wire[j:]])
            assert (got.stored, got.rest, got.facts) == (want.stored, want.rest, want.facts), (i, j)


def test_error_messages(impl):
    r = impl.DataReceiver(bytearray(), max_size=3)
    assert r.feed(b"abcd\r\n.\r\n") == b""
    assert r.error == RemoteProtocolError("message exceeds the maximum size of 3 octets",
                                          "552 5.3.4")
    r = impl.DataReceiver(bytearray())
    r.feed(b"a\nb\r\n.\r\n")
    assert r.error == RemoteProtocolError(
        "message contains a bare CR or LF; lines must end with CRLF", "550 5.6.0")
    assert impl.REPLY_SIZE_EXCEEDED == "552 5.3.4" and impl.REPLY_BARE_NEWLINE == "550 5.6.0"


def test_bare_newline_counts_are_live(impl):
    """A server that wants to hang up at the first bare LF can see it before the end."""
    r = impl.DataReceiver(bytearray())
    assert r.feed(b"hello\nworld") is NEED_DATA
    assert r.bare_lf_count == 1 and not r.done


# ---------------------------------------------------------------------- DATA: properties
def stuff(message: bytes) -> bytes:
    """What an RFC 5321 client sends for ``message`` (CRLF lines): dot-stuffed, then the end."""
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", message) + b".\r\n"


LINE_PIECES = [b".", b"..", b".x", b"x.", b" ", b"Subject: ", b"a" * 30, "é".encode(), b"\x00",
               b"\t", b"\xff", b"From ", b""]


def random_clean_message(rng: random.Random) -> bytes:
    lines = [b"".join(rng.choice(LINE_PIECES) for _ in range(rng.randint(0, 5)))
             for _ in range(rng.randint(0, 12))]
    return b"".join(line + b"\r\n" for line in lines)


def test_stuffed_message_round_trips(impl):
    rng = random.Random(5321)
    for n in range(400):
        message = random_clean_message(rng)
        wire = stuff(message) + b"NOOP\r\n"
        for way, chunks in [("whole", [wire]), ("random", _random_split(wire, rng))]:
            got = run_data(impl, chunks)
            assert got.stored == message, (n, way, wire)
            assert got.rest == b"NOOP\r\n", (n, way)
            assert got.error is None
            assert got.facts["nul_count"] == message.count(b"\x00")
            assert got.facts["eight_bit_count"] == sum(b >= 0x80 for b in message)
            header_end = (b"\r\n" + message).find(b"\r\n\r\n")
            assert got.facts["header_size"] == (len(message) if header_end < 0 else header_end + 2)


# Octet soup that makes every state transition likely, including the smuggling shapes.
SOUP = [b"\r", b"\n", b".", b"\r\n", b"\r\n.", b"\n.", b"\r.", b".\r", b".\n", b"x", b"ab",
        b"\x00", b"\xe9", b"\r\n.\r\n", b"\r\r\n", b" ", b"plain words, no specials "]


def random_soup(rng: random.Random, pieces: int = 40, end_weight: int = 1) -> bytes:
    weights = [8] * len(SOUP)
    weights[SOUP.index(b"\r\n.\r\n")] = end_weight
    return b"".join(rng.choices(SOUP, weights, k=rng.randint(0, pieces)))


def _random_split(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        k = rng.choice((0, 1, 1, 2, 3, 5, 8, 64))
        out.append(data[i:i + k])
        i += k
    return out


def test_ends_exactly_at_first_crlf_dot_crlf(impl):
    """The only end is the first ``<CRLF>.<CRLF>`` (the DATA line's CRLF counts as the first)."""
    rng = random.Random(2023_12_18)
    for n in range(1500):
        wire = random_soup(rng, end_weight=rng.choice((0, 1)))
        end = (b"\r\n" + wire).find(b"\r\n.\r\n")
        got = run_data(impl, _random_split(wire, rng), bare_newline=rng.choice(
            ("reject", "normalize")))
        if end < 0:
            assert got.rest is None, wire
        else:
            assert got.rest == wire[end + 3:], wire


def test_differential_data_random():
    """Cython and reference agree on everything, for random input, policy, limit and splits."""
    rng = random.Random(1870)
    for n in range(2500):
        if n % 4:
            wire = random_soup(rng, pieces=rng.choice((5, 40, 200)))
        else:   # every octet value, with an end somewhere or not at all
            wire = rng.randbytes(rng.randint(0, 300)) + rng.choice((b"", b"\r\n.\r\n"))
        kw = {"bare_newline": rng.choice(("reject", "normalize")),
              "max_size": rng.choice((None, None, 0, 1, 7, 50, 300))}
        chunks = _random_split(wire, rng)
        a, b = run_data(cy, chunks, **kw), run_data(ref, chunks, **kw)
        assert a == b, (n, wire, kw)
        if kw["bare_newline"] == "normalize" and not a.facts["size_exceeded"]:
            assert not BARE_NEWLINE.search(a.stored), wire


def test_differential_data_every_way(feed_ways):
    rng = random.Random(3030)
    for n in range(60):
        wire = random_soup(rng, pieces=60) + b"\r\n.\r\nRSET\r\n"
        for kw in ({}, {"bare_newline": "normalize", "max_size": 40}):
            want = run_data(ref, [wire], **kw)
            for way, chunks in feed_ways(wire, seed=n):
                assert run_data(cy, chunks, **kw) == want, (n, way, kw)
                assert run_data(ref, chunks, **kw) == want, (n, way, kw)


# ---------------------------------------------------------------------- DATA: sinks and misuse
def test_file_sink_gets_the_same_message(impl):
    wire = b"A: b\r\n\r\n..body\r\n" * 50 + b".\r\nQUIT\r\n"
    want = run_data(impl, [wire])
    rng = random.Random(7)
    sink = io.BytesIO()
    r = impl.DataReceiver(sink)
    rest = NEED_DATA
    for chunk in _random_split(wire, rng):
        rest = r.feed(chunk) if rest is NEED_DATA else rest + chunk
    assert sink.getvalue() == want.stored and rest == b"QUIT\r\n"


def test_sink_writes_are_bytes_it_may_keep(impl):
    kept = []

    class Keeper:
        def write(self, data):
            kept.append(data)
            return len(data)

    r = impl.DataReceiver(Keeper())
    r.feed(b"first\r\n")
    r.feed(b"second\r\n.\r\n")
    assert all(type(x) is bytes for x in kept)
    assert b"".join(kept) == b"first\r\nsecond\r\n"


def test_bytearray_sink_is_appended_to(impl):
    sink = bytearray(b"Received: by us\r\n")
    r = impl.DataReceiver(sink)
    assert r.feed(memoryview(b"X: y\r\n.\r\n")) == b""
    assert sink == b"Received: by us\r\nX: y\r\n"
    assert r.size == 6


def test_buffer_types_accepted(impl):
    for kind in (bytes, bytearray, memoryview):
        sink = bytearray()
        r = impl.DataReceiver(sink)
        assert r.feed(kind(b"..a\r\n.\r\nZ")) == b"Z"
        assert sink == b".a\r\n"


def test_failing_sink_stops_the_receiver(impl):
    class Full:
        def write(self, data):
            raise OSError(28, "No space left on device")

    r = impl.DataReceiver(Full())
    with pytest.raises(OSError):
        r.feed(b"data\r\n")
    with pytest.raises(LocalProtocolError):
        r.feed(b".\r\n")


def test_data_misuse(impl):
    r = impl.DataReceiver(bytearray())
    with pytest.raises(TypeError):
        r.feed("a str is not bytes")
    assert r.feed(b".\r\n") == b""
    with pytest.raises(LocalProtocolError):
        r.feed(b"more")
    with pytest.raises(ValueError):
        impl.DataReceiver(bytearray(), bare_newline="allow")     # never for DATA
    with pytest.raises(ValueError):
        impl.DataReceiver(bytearray(), bare_newline="ignore")
    with pytest.raises(ValueError):
        impl.DataReceiver(bytearray(), max_size=-1)
    with pytest.raises(ValueError):
        impl.DataReceiver(bytearray(), max_size=True)
    with pytest.raises(TypeError):
        impl.DataReceiver(b"immutable")
    with pytest.raises(TypeError):
        impl.DataReceiver(None)


# ---------------------------------------------------------------------- BDAT
def test_bdat_last_zero_is_an_empty_message(impl):
    got, rests = run_bdat(impl, [(0, True, [b"QUIT\r\n"])])
    assert got.stored == b"" and rests == [b"QUIT\r\n"]
    assert got.facts["done"] and got.facts["size"] == 0 and got.error is None


def test_bdat_sizes_zero_one_and_last(impl):
    got, rests = run_bdat(impl, [(1, False, [b"AB"]), (0, False, [b""]), (1, True, [b"B"])])
    assert got.stored == b"AB" and rests == [b"B", b"", b""]
    assert got.facts["done"]


def test_bdat_takes_exactly_the_chunk(impl, feed_ways):
    message = b"Subject: x\r\n\r\n.\r\n..\r\nbody\r\n"          # no dot-unstuffing in BDAT
    wire = message + b"BDAT 0 LAST\r\n"
    for way, chunks in feed_ways(wire, seed="bdat"):
        got, rests = run_bdat(impl, [(len(message), False, chunks)])
        assert got.stored == message, way
        assert rests == [b"BDAT 0 LAST\r\n"], way
        assert not got.facts["done"], way
        assert got.facts["header_size"] == 14 and got.facts["body_size"] == len(message) - 14


def test_bdat_crlf_across_chunks_is_not_bare(impl):
    got, _ = run_bdat(impl, [(3, False, [b"ab\r"]), (3, True, [b"\ncd"])])
    assert got.stored == b"ab\r\ncd" and got.facts["bare_cr_count"] == 0 and got.error is None


def test_bdat_cr_at_the_end_of_last_is_bare(impl):
    got, _ = run_bdat(impl, [(3, True, [b"ab\r"])])
    assert got.facts["bare_cr_count"] == 1 and got.error.reply_code == "550 5.6.0"
    got, _ = run_bdat(impl, [(3, True, [b"ab\r"])], bare_newline="normalize")
    assert got.stored == b"ab\r\n" and got.error is None


@pytest.mark.parametrize("policy, stored, error", [
    ("reject", b"a\nb\r.\r\n", "550 5.6.0"),
    ("normalize", b"a\r\nb\r\n.\r\n", None),
    ("allow", b"a\nb\r.\r\n", None),
])
def test_bdat_policies(impl, policy, stored, error):
    got, _ = run_bdat(impl, [(7, True, [b"a\nb\r.\r\n"])], bare_newline=policy)
    assert got.stored == stored
    assert got.facts["bare_lf_count"] == 1 and got.facts["bare_cr_count"] == 1
    assert (got.error.reply_code if got.error else None) == error


def test_bdat_large_chunk_with_limit(impl):
    rng = random.Random(3030)
    body = bytes(rng.getrandbits(8) for _ in range(1 << 20))
    pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    got, rests = run_bdat(impl, [(len(body), True, pieces + [b"QUIT\r\n"])],
                          bare_newline="allow", max_size=100_000)
    assert got.stored == body[:100_000] and rests == [b"QUIT\r\n"]
    assert got.facts["size"] == len(body) and got.facts["size_exceeded"]
    assert got.error.reply_code == "552 5.3.4"
    assert got.facts["nul_count"] == body.count(0)
    assert got.facts["eight_bit_count"] == sum(b >= 0x80 for b in body)


def test_bdat_huge_announced_chunk_is_counted_not_stored(impl):
    r = impl.BdatReceiver(bytearray(), max_size=10)
    r.start_chunk(10**12, last=True)
    assert r.feed(b"x" * 4096) is NEED_DATA
    assert r.chunk_remaining == 10**12 - 4096 and r.size == 4096 and r.size_exceeded


def test_bdat_misuse(impl):
    r = impl.BdatReceiver(bytearray())
    with pytest.raises(LocalProtocolError):
        r.feed(b"no chunk open")
    for bad in (-1, 1.5, "3", True, None):
        with pytest.raises(ValueError):
            r.start_chunk(bad)
    with pytest.raises(ValueError):
        r.start_chunk(2**70)
    r.start_chunk(2)
    with pytest.raises(LocalProtocolError):
        r.start_chunk(1)
    with pytest.raises(TypeError):
        r.feed(12)
    assert r.feed(b"ab") == b""
    r.start_chunk(0, last=True)
    assert r.feed(b"") == b"" and r.done and r.chunks == 2
    with pytest.raises(LocalProtocolError):
        r.start_chunk(1)
    with pytest.raises(LocalProtocolError):
        r.feed(b"x")


def test_differential_bdat_random():
    rng = random.Random(6152)
    for n in range(1500):
        plan, stream = [], []
        for k in range(rng.randint(1, 4)):
            data = random_soup(rng, pieces=rng.choice((0, 3, 30)))
            pipelined = rng.choice((b"", b"BDAT 5\r\n", b"\r\n.\r\n"))
            plan.append((len(data), False, _random_split(data + pipelined, rng)))
        plan[-1] = (plan[-1][0], True, plan[-1][2])
        kw = {"bare_newline": rng.choice(("reject", "normalize", "allow")),
              "max_size": rng.choice((None, 0, 5, 60))}
        a, b = run_bdat(cy, plan, **kw), run_bdat(ref, plan, **kw)
        assert a == b, (n, plan, kw)
        if kw["bare_newline"] == "normalize" and not a[0].facts["size_exceeded"]:
            assert not BARE_NEWLINE.search(a[0].stored)


# ---------------------------------------------------------------------- command lines and hand-off
# The SMTP core reads commands with ``base.LineReader`` and hands the stream to the DATA
# receiver after 354 and back after the end; these tests hold the two to that contract.
def read_lines(reader: LineReader) -> list:
    out = []
    while True:
        try:
            line = reader.next_line()
        except LineTooLong as e:
            out.append(e)
            continue
        if line is NEED_DATA:
            return out
        out.append(line)


def test_line_reader_splits_lines(feed_ways):
    wire = b"EHLO a\r\nMAIL FROM:<a@b>\r\nbare\nRSET\r\n" + b"x" * 20
    for way, chunks in feed_ways(wire, seed="lines"):
        reader = LineReader(512, reply_code="500 5.5.2")
        got = []
        for chunk in chunks:
            reader.feed(chunk)
            got += read_lines(reader)
        assert got == [b"EHLO a\r\n", b"MAIL FROM:<a@b>\r\n", b"bare\n", b"RSET\r\n"], way
        assert len(reader) == 20, way


def test_line_reader_limit(feed_ways):
    """512 octets with the CRLF pass (RFC 5321 4.5.3.1.4); 513 are refused, once, in step."""
    ok = b"A" * 510 + b"\r\n"
    long = b"B" * 511 + b"\r\n"
    wire = ok + long + b"NOOP\r\n"
    for way, chunks in feed_ways(wire, seed="limit", random_rounds=2):
        reader = LineReader(512, reply_code="500 5.5.2")
        got = []
        for chunk in chunks:
            reader.feed(chunk)
            got += read_lines(reader)
            assert len(reader) <= 512 + len(chunk), way
        assert got[0] == ok and got[2] == b"NOOP\r\n" and len(got) == 3, way
        assert isinstance(got[1], LineTooLong) and got[1].reply_code == "500 5.5.2", way
        assert str(got[1]) == "line too long (limit 512 octets)"


def test_line_reader_never_buffers_an_endless_line():
    reader = LineReader(100, reply_code="BAD")
    for _ in range(1000):
        reader.feed(b"z" * 1000)
        assert reader.next_line() is NEED_DATA
        assert len(reader) == 0 and reader.discarding
    reader.feed(b"zz\nNEXT\n")
    with pytest.raises(LineTooLong):
        reader.next_line()
    assert not reader.discarding
    assert reader.next_line() == b"NEXT\n"


def test_line_reader_take_and_drain():
    reader = LineReader(64, reply_code="BAD")
    reader.feed(b"a1 APPEND x {5}\r\nhelloa2 NOOP\r\n")
    assert reader.next_line() == b"a1 APPEND x {5}\r\n"
    assert reader.take(3) == b"hel" and reader.take(2) == b"lo"
    assert reader.next_line() == b"a2 NOOP\r\n"
    reader.feed(b"tail")
    assert reader.drain() == b"tail" and len(reader) == 0 and reader.drain() == b""
    with pytest.raises(ValueError):
        reader.take(-1)
    with pytest.raises(ValueError):
        LineReader(1, reply_code="BAD")
    with pytest.raises(ValueError):
        RemoteProtocolError("no code", "")


def smtp_transcript(mod, chunks) -> tuple[list[bytes], list[bytes]]:
    """A minimal driver: commands until DATA, the message, then commands again."""
    reader = LineReader(512, reply_code="500 5.5.2")
    commands, messages = [], []
    receiver = None
    for chunk in chunks:
        if receiver is not None:
            rest = receiver.feed(chunk)
            if rest is NEED_DATA:
                continue
            messages.append(bytes(sink))
            receiver = None
            chunk = rest
        reader.feed(chunk)
        while receiver is None:
            line = reader.next_line()
            if line is NEED_DATA:
                break
            commands.append(line)
            if line == b"DATA\r\n":
                sink = bytearray()
                receiver = mod.DataReceiver(sink)
                rest = receiver.feed(reader.drain())
                if rest is not NEED_DATA:
                    messages.append(bytes(sink))
                    receiver = None
                    reader.feed(rest)
    return commands, messages


def test_pipelined_session_hand_off(impl, feed_ways):
    """RFC 2920: commands, DATA, the message and the next transaction in any packets."""
    wire = (b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nS: 1\r\n\r\n..one\r\n.\r\n"
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nQUIT\r\n")
    for way, chunks in feed_ways(wire, seed="session"):
        commands, messages = smtp_transcript(impl, chunks)
        assert commands == [b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"DATA\r\n"] * 2 + [
            b"QUIT\r\n"], way
        assert messages == [b"S: 1\r\n\r\n.one\r\n", b""], way


def test_smuggled_commands_stay_in_the_message(impl, feed_ways):
    """The SEC Consult payload: the forged transaction is message content, never commands."""
    wire = (b"DATA\r\nFrom: a@b\r\n\r\nhi\n.\n" + SMUGGLED + b"\n.\n"
            b"\r\n.\r\nQUIT\r\n")
    for way, chunks in feed_ways(wire, seed="smuggle"):
        commands, messages = smtp_transcript(impl, chunks)
        assert commands == [b"DATA\r\n", b"QUIT\r\n"], way
        assert SMUGGLED in messages[0], way
