"""APPEND literals are streamed to the blob store as they arrive, never held whole
(issue 4, deliver point 2; commands/append.py "Streamed literals").

Sans-IO, over a store whose blobs are real files (``BlobStore`` in a temp directory) so
that what is left on disk can be checked:

- a 20 MB APPEND fed in 64 KiB chunks keeps the session's Python allocations
  (tracemalloc peak) and the native reader's buffers under a fixed bound, and stores the
  exact octets;
- a client that goes away in the middle of the literal, or whose APPEND fails, leaves no
  file behind (neither a spool in ``tmp/`` nor a blob);
- MULTIAPPEND with synchronizing and non-synchronizing literals, literal8, and every way of
  cutting the input (whole, line by line, byte by byte, random) stores the same messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc

import pytest

from stalwart.protocols.imap.testing import Client, split_lines
from stalwart.store import Store
from stalwart.store.api import _LocalWriter
from stalwart.store.blobs import BlobStore
from stalwart.store.kv import MemoryKV

MiB = 1024 * 1024
CHUNK = 64 * 1024
#: What the session may allocate while a 20 MB message goes through it (Python heap and
#: the reader's buffers each): a few chunks, whatever the message size.
BOUND = 2 * MiB


def run(coro):
    return asyncio.run(coro)


def file_store(root) -> Store:
    kv, blobs = MemoryKV(), BlobStore(root)
    store = Store(None, kv, blobs)
    store._writer = _LocalWriter(kv, blobs, store._on_event)
    return store


async def file_client(root) -> Client:
    store = file_store(root)
    await store.create_domain("example.org")
    return await Client.create(store)


def files(root) -> list[str]:
    """Every file under the blob root (spools in tmp/ and blobs)."""
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, names in os.walk(root) for f in names)


def message(size: int, tag: bytes = b"") -> bytes:
    head = (b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: big " + tag +
            b"\r\nMessage-ID: <big" + tag + b"@example.org>\r\n\r\n")
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789\r\n"
    body = (line * (size // len(line) + 1))[:size - len(head) - 2] + b"\r\n"
    return head + body


async def fetch_body(c: Client, uid: int) -> bytes:
    lines = await c.raw(f"f{uid} UID FETCH {uid} BODY.PEEK[]")
    first = lines[0]
    start = first.index(b"}\r\n") + 3
    return first[start:first.rindex(b")")]


def test_20mb_append_keeps_session_memory_bounded(tmp_path):
    async def t():
        c = await file_client(tmp_path)
        assert (await c.raw("s SELECT INBOX"))[-1].startswith(b"s OK [READ-WRITE]")
        data = message(20 * MiB)
        assert await c.raw(f"a1 APPEND INBOX (\\Seen) {{{len(data)}}}") == \
            [b"+ Ready for literal data"]
        native_peak = 0
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            for i in range(0, len(data), CHUNK):
                assert await c.send(data[i:i + CHUNK]) == b""
                native_peak = max(native_peak, c.s.parser.memory())
            out = split_lines(await c.send(b"\r\n"))
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert out[-1].startswith(b"a1 OK [APPENDUID ") and \
            out[-1].endswith(b" 1] APPEND completed"), out
        assert peak < BOUND, f"Python allocations peaked at {peak} octets"
        assert native_peak < BOUND, f"the reader's buffers peaked at {native_peak} octets"
        stored = await fetch_body(c, 1)
        assert len(stored) == len(data)
        assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
        # One blob file, no spool left in tmp/.
        assert [f for f in files(tmp_path) if f.startswith("tmp")] == []
        assert len(files(tmp_path)) == 1
        # The thread keys came from the streamed header.
        lines = await c.raw("t1 UID SEARCH HEADER Message-ID <big@example.org>")
        assert lines == [b"* SEARCH 1", b"t1 OK SEARCH completed"]
    run(t())


def test_client_gone_mid_literal_leaves_nothing(tmp_path):
    async def t():
        c = await file_client(tmp_path)
        data = message(5 * MiB)
        assert await c.raw(f"a1 APPEND INBOX {{{len(data)}}}") == [b"+ Ready for literal data"]
        await c.send(data[:3 * MiB])
        assert len(files(tmp_path)) == 1            # the spool, being written
        assert os.path.getsize(os.path.join(tmp_path, files(tmp_path)[0])) > 0
        c.s.close()                                  # the adapter: connection_lost
        assert files(tmp_path) == []
        assert c.store.mailbox_uids(c.account, c.store.list_mailboxes(c.account)[0]["id"]) == []
    run(t())


def test_failed_append_deletes_its_spools(tmp_path):
    async def t():
        c = await file_client(tmp_path)
        one, two = message(300_000, b"1"), message(200_000, b"2")
        # Missing mailbox: NO [TRYCREATE] after both literals were read.
        await c.cmd(f"a1 APPEND Nowhere {{{len(one)}+}}\r\n".encode() + one +
                    f" {{{len(two)}+}}\r\n".encode() + two + b"\r\n",
                    "a1 NO [TRYCREATE] Mailbox does not exist")
        assert files(tmp_path) == []
        # A syntax error after a streamed literal: BAD, nothing kept.
        await c.cmd(f"a2 APPEND INBOX {{{len(one)}+}}\r\n".encode() + one + b" junk",
                    "a2 BAD *")
        assert files(tmp_path) == []
        # An empty message among streamed ones: the whole MULTIAPPEND is refused.
        await c.cmd(f"a3 APPEND INBOX {{{len(one)}+}}\r\n".encode() + one + b" {0+}\r\n\r\n",
                    "a3 NO Empty messages cannot be appended")
        assert files(tmp_path) == []
        await c.cmd("a4 APPEND INBOX {0+}\r\n\r\n", "a4 NO Empty messages cannot be appended")
        await c.cmd("a5 NOOP", "a5 OK *")
    run(t())


@pytest.mark.parametrize("kind", ["sync", "nonsync", "binary"])
def test_multiappend_streamed_every_split(tmp_path, feed_ways, kind):
    one, two = message(70_000, b"1"), message(3_000, b"2") + b"\x00\x01" * (kind == "binary")

    def literal(data: bytes) -> bytes:
        if kind == "nonsync":
            return f"{{{len(data)}+}}\r\n".encode() + data
        prefix = "~" if kind == "binary" else ""
        return f"{prefix}{{{len(data)}}}\r\n".encode() + data

    wire = (b"a1 APPEND INBOX (\\Flagged) " + literal(one) + b" " + literal(two) +
            b"\r\na2 NOOP\r\n")

    async def t():
        for n, (label, chunks) in enumerate(feed_ways(wire, seed=3502)):
            root = tmp_path / str(n)
            c = await file_client(root)
            out = b"".join([await c.send(chunk) for chunk in chunks])
            lines = [ln for ln in split_lines(out) if not ln.startswith(b"+ ")]
            assert lines[0].startswith(b"a1 OK [APPENDUID ") and \
                lines[0].endswith(b" 1:2] APPEND completed"), (label, lines)
            assert lines[1] == b"a2 OK NOOP completed", label
            assert (await c.raw("s SELECT INBOX"))[-1].startswith(b"s OK [READ-WRITE]")
            if kind == "binary":
                lines = await c.raw("b UID FETCH 2 BINARY.PEEK[]")
                assert lines[0].endswith(two + b")"), label
            else:
                assert await fetch_body(c, 1) == one, label
                assert await fetch_body(c, 2) == two, label
            assert [f for f in files(root) if f.startswith("tmp")] == [], label
    run(t())


def test_memory_store_spools_in_memory():
    """``Store.memory()`` has no blob files: the same streamed path, kept in memory."""
    async def t():
        c = await Client.create()
        data = message(200_000)
        await c.cmd(f"a1 APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n",
                    "a1 OK [APPENDUID *")
        assert (await c.raw("s SELECT INBOX"))[-1].startswith(b"s OK [READ-WRITE]")
        assert await fetch_body(c, 1) == data
    run(t())
