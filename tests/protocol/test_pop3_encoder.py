"""The RETR/TOP content encoder (stalwart.protocols.pop3.encoder) against a line-by-line
reference written straight from RFC 1939 3 and 7, fed whole, line by line, byte by byte
and at random splits (STYLE.md habit 2)."""

from __future__ import annotations

import random

import pytest

from stalwart.protocols.pop3.encoder import MessageEncoder, encode_message

from .conftest import split_ways


def reference(raw: bytes, top_lines: int | None = None) -> bytes:
    """RFC 1939 by the book: CRLF lines, header + blank line + n body lines for TOP,
    a leading "." doubled, the content ended by CRLF, then ".\\r\\n"."""
    text = raw.replace(b"\r\n", b"\n")
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if top_lines is not None:
        out, in_header, body = [], True, 0
        for line in lines:
            if in_header:
                out.append(line)
                if line == b"":
                    in_header = False
                continue
            if body >= top_lines:
                break
            out.append(line)
            body += 1
        lines = out
    stuffed = [b"." + ln if ln.startswith(b".") else ln for ln in lines]
    return b"".join(ln + b"\r\n" for ln in stuffed) + b".\r\n"


MESSAGES = {
    "simple": b"Subject: hi\r\n\r\nhello\r\n",
    "dots": b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid.dle\r\n. \r\n",
    "dot first line": b".From: odd\r\n\r\nbody\r\n",
    "no final newline": b"Subject: x\r\n\r\nlast line without end",
    "bare lf": b"Subject: lf\n\nline one\n.dot\nline three\n",
    "mixed endings": b"A: 1\r\nB: 2\n\r\nbody\r\nmore\n.end\r\n",
    "lone cr kept": b"Subject: cr\r\n\r\na\rb\r\n.\rc\r\n",
    "header only": b"Subject: no body\r\nX-Other: y\r\n",
    "empty": b"",
    "blank line first": b"\r\nbody only\r\n.x\r\n",
    "trailing cr": b"Subject: t\r\n\r\nends with cr\r",
    "many lines": b"H: v\r\n\r\n" + b"".join(b"line %d\r\n" % i for i in range(40)),
}


def encode_chunks(chunks: list[bytes], top: int | None) -> bytes:
    enc = MessageEncoder(top)
    out = b""
    for chunk in chunks:
        out += enc.feed(chunk)
    return out + enc.finish()


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("top", [None, 0, 1, 3, 1000])
def test_every_way_of_cutting_gives_the_reference(name, top):
    raw = MESSAGES[name]
    expected = reference(raw, top)      # a lone CR stays inside its line in both
    for label, chunks in split_ways(raw, seed=sum(name.encode())):
        assert encode_chunks(chunks, top) == expected, (name, top, label)


def test_lone_cr_is_not_a_line_end():
    assert encode_message(b"a\rb\r\n.c\r\n") == b"a\rb\r\n..c\r\n.\r\n"


def test_trailing_cr_is_kept_and_line_ended():
    assert encode_message(b"x\r") == b"x\r\r\n.\r\n"


def test_top_stops_reading_once_done():
    enc = MessageEncoder(1)
    out = enc.feed(b"H: 1\r\n\r\nfirst\r\nsecond\r\n")
    assert enc.done
    assert enc.feed(b"third\r\n") == b""
    assert out + enc.finish() == b"H: 1\r\n\r\nfirst\r\n.\r\n"


def test_top_blank_line_split_across_chunks():
    for cut in range(1, 12):
        raw = b"H: 1\r\n\r\nbody\r\nmore\r\n"
        assert encode_chunks([raw[:cut], raw[cut:]], 0) == b"H: 1\r\n\r\n.\r\n", cut


def test_random_messages_match_the_reference():
    rng = random.Random(1939)
    alphabet = [b".", b"a", b"\r\n", b"\n", b" ", b"..", b"\r\n.", b"\n\n"]
    for i in range(300):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        raw = raw.replace(b"\r\r", b"\r")
        top = rng.choice([None, 0, 1, 2, 5])
        if b"\r" in raw.replace(b"\r\n", b""):
            continue   # lone CRs are covered above; the reference splits on LF only
        expected = reference(raw, top)
        for label, chunks in split_ways(raw, seed=i, random_rounds=2):
            assert encode_chunks(chunks, top) == expected, (raw, top, label)


def test_negative_top_is_a_programming_error():
    with pytest.raises(ValueError):
        MessageEncoder(-1)
