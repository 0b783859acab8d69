"""COMPRESS=DEFLATE (RFC 4978) in the sans-IO session: after the tagged OK both directions
are one raw DEFLATE stream; the client's compressed bytes are fed whole, line by line,
byte by byte and at random splits (compressed data has no lines: "lines" cuts at 0x0A
octets of the compressed stream)."""

from __future__ import annotations

import asyncio
import zlib

from stalwart.protocols.imap.commands.compress import INFLATE_CHUNK

from .test_imap_ext_grammar import ext_client


def run(coro):
    return asyncio.run(coro)


class Peer:
    """The client's side of the DEFLATE stream."""

    def __init__(self) -> None:
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inp = zlib.decompressobj(wbits=-15)

    def pack(self, text: bytes) -> bytes:
        return self.out.compress(text) + self.out.flush(zlib.Z_SYNC_FLUSH)

    def unpack(self, data: bytes) -> bytes:
        return self.inp.decompress(data)


async def _feed(c, chunks: list[bytes]) -> bytes:
    out = b""
    for chunk in chunks:
        c.s.receive_data(chunk)
        await c.s.process()
        out += c.s.data_to_send()
    return out


def test_compress_pipelined_commands_arrive_however_they_are_cut(feed_ways):
    async def t():
        peer = Peer()
        stream = b"a1 COMPRESS DEFLATE\r\n" + peer.pack(
            b"a2 NOOP\r\na3 SELECT INBOX\r\na4 FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
            b"\r\na5 CAPABILITY\r\n")
        for label, chunks in feed_ways(stream, seed=4978):
            c = await ext_client()
            await c.deliver()
            assert b"COMPRESS=DEFLATE" in b"".join(await c.raw("c0 CAPABILITY"))
            peer.inp = zlib.decompressobj(wbits=-15)
            out = await _feed(c, chunks)
            head = b"a1 OK DEFLATE active\r\n"
            assert out.startswith(head), label
            text = peer.unpack(out[len(head):])
            assert b"a2 OK NOOP completed\r\n" in text, label
            assert b"a3 OK [READ-WRITE] SELECT completed\r\n" in text, label
            assert b"Subject: Hello" in text and b"a4 OK FETCH completed\r\n" in text, label
            caps = text[text.index(b"* CAPABILITY"):].split(b"\r\n", 1)[0]
            assert b"COMPRESS=DEFLATE" not in caps and b"METADATA" in caps, label
            assert text.endswith(b"a5 OK CAPABILITY completed\r\n"), label
            # Without the feature the first thing after the OK would be clear text.
            assert b"a2 OK" not in out, label
    run(t())


def test_second_compress_is_refused_inside_the_stream():
    async def t():
        c = await ext_client()
        peer = Peer()
        out = await c.send(b"a1 COMPRESS DEFLATE\r\n")
        assert out == b"a1 OK DEFLATE active\r\n"
        text = peer.unpack(await c.send(peer.pack(b"a2 COMPRESS DEFLATE\r\na3 NOOP\r\n")))
        assert text == (b"a2 NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n"
                        b"a3 OK NOOP completed\r\n")
    run(t())


def test_unknown_mechanism_and_wrong_state():
    async def t():
        c = await ext_client(login=False)
        assert b"COMPRESS" not in c.greeting
        await c.cmd("a0 COMPRESS DEFLATE",
                    "a0 BAD COMPRESS is not allowed in the not authenticated state")
        await c.cmd("L1 LOGIN alice secret", "L1 OK [CAPABILITY *")
        await c.cmd("a1 COMPRESS LZW",
                    "a1 BAD Unsupported compression mechanism LZW (only DEFLATE, RFC 4978)")
        await c.cmd("a2 NOOP", "a2 OK NOOP completed")   # still clear text
        assert c.s.compression is None
    run(t())


def test_corrupt_stream_ends_the_session_with_bye():
    async def t():
        c = await ext_client()
        peer = Peer()
        await c.send(b"a1 COMPRESS DEFLATE\r\n")
        assert peer.unpack(await c.send(peer.pack(b"a2 NOOP\r\n"))) == \
            b"a2 OK NOOP completed\r\n"
        text = peer.unpack(await c.send(b"\xff\xff\xff\xff garbage"))
        assert text == b"* BYE Invalid or ended DEFLATE stream\r\n"
        assert c.s.closed
    run(t())


def test_inflation_is_bounded_per_step():
    async def t():
        c = await ext_client()
        peer = Peer()
        await c.send(b"a1 COMPRESS DEFLATE\r\n")
        # 4 MiB of one endless line packs into about 4 KiB.
        bomb = peer.pack(b"a2 NOOP " + b"x" * (4 << 20))
        assert len(bomb) < 16 * 1024
        c.s.receive_data(bomb)
        assert c.s.parser.buffered() <= INFLATE_CHUNK
        assert c.s.buffered() <= INFLATE_CHUNK + len(bomb)
        biggest = 0
        while await c.s.step():
            biggest = max(biggest, c.s.parser.buffered())
        assert biggest <= c.s.limits.max_line + INFLATE_CHUNK
        assert c.s.compression.pending() == 0
        # The over-long line is reported once it ends, and the session goes on.
        text = peer.unpack(await c.send(peer.pack(b"\r\na3 NOOP\r\n")))
        assert text.startswith(b"a2 BAD [TOOBIG] Line too long") or \
            text.startswith(b"* BAD [TOOBIG] Line too long"), text
        assert text.endswith(b"a3 OK NOOP completed\r\n")
    run(t())


def test_compressed_bytes_pipelined_behind_the_command_are_not_lost():
    """A client that does not wait for the OK: more than a line's worth of compressed
    octets right behind COMPRESS. Whatever the parser had buffered is inflated."""
    async def t():
        import os

        peer = Peer()
        noise = os.urandom(3000).hex().encode()          # poorly compressible
        stream = b"a1 COMPRESS DEFLATE\r\n" + peer.pack(
            b'a2 SETMETADATA "" (/private/noise "' + noise + b'")\r\n'
            b'a3 GETMETADATA "" /private/noise\r\n')
        c = await ext_client()
        out = await c.send(stream)
        head = b"a1 OK DEFLATE active\r\n"
        assert out.startswith(head)
        text = Peer().unpack(out[len(head):])
        assert text == (b"a2 OK SETMETADATA completed\r\n"
                        b'* METADATA "" (/private/noise {6000}\r\n' + noise + b")\r\n"
                        b"a3 OK GETMETADATA completed\r\n")
    run(t())


def test_line_limit_applies_to_the_inflated_stream():
    """Limits hold on the clear text: an over-long line that arrives compressed (and
    pipelined behind COMPRESS) is refused like any other, and the session goes on."""
    async def t():
        import random

        from stalwart.protocols.imap.grammar_ref import Limits

        rng = random.Random(1)
        peer = Peer()
        packed = peer.pack(bytes(rng.randrange(32, 127) for _ in range(400)) + b"\r\n")
        c = await ext_client(limits=Limits(max_line=128))
        out = await c.send(b"a1 COMPRESS DEFLATE\r\n" + packed)
        head = b"a1 OK DEFLATE active\r\n"
        assert out.startswith(head), out
        inflate = Peer()
        assert inflate.unpack(out[len(head):]) == \
            b"* BAD [TOOBIG] Line too long (limit 128 octets)\r\n"
        assert inflate.unpack(await c.send(peer.pack(b"a2 NOOP\r\n"))) == \
            b"a2 OK NOOP completed\r\n"
    run(t())
