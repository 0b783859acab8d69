"""REPLACE / UID REPLACE (RFC 8508) literals are streamed to the blob store as they arrive,
like APPEND's (commands/replace.py, commands/append.py "Streamed literals").

Sans-IO, over a store whose blobs are real files (``BlobStore`` in a temp directory) so
that what is left on disk can be checked:

- a 20 MB REPLACE fed in 64 KiB chunks keeps the session's Python allocations (tracemalloc
  peak) and the native reader's buffers under 2 MiB, stores the exact octets and expunges
  the old message;
- a spool file exists while the literal arrives, and a client that goes away in the middle
  of it, or a REPLACE refused after its literal was read, leaves no spool behind and the
  old message in place;
- APPENDLIMIT refuses an over-long REPLACE literal with NO [TOOBIG] before anything is
  spooled;
- REPLACE and UID REPLACE with synchronizing, non-synchronizing and binary literals, cut
  in every way, give the same responses and messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc

import pytest

from stalwart.protocols.imap.grammar import Limits
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

DRAFT = (b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: draft v1\r\n"
         b"Message-ID: <v1@example.org>\r\n\r\nFirst version.\r\n")


def run(coro):
    return asyncio.run(coro)


def file_store(root) -> Store:
    kv, blobs = MemoryKV(), BlobStore(root)
    store = Store(None, kv, blobs)
    store._writer = _LocalWriter(kv, blobs, store._on_event)
    return store


async def drafts_client(root, **kw) -> Client:
    """Logged in, one draft (UID 1) in Drafts, Drafts selected."""
    store = file_store(root)
    await store.create_domain("example.org")
    c = await Client.create(store, **kw)
    await c.deliver(DRAFT, mailbox="Drafts")
    assert (await c.raw("s SELECT Drafts"))[-1].startswith(b"s OK [READ-WRITE]")
    return c


def files(root) -> list[str]:
    """Every file under the blob root (spools in tmp/ and blobs)."""
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, names in os.walk(root) for f in names)


def spools(root) -> list[str]:
    return [f for f in files(root) if f.startswith("tmp")]


def drafts_uids(c: Client) -> list[int]:
    from stalwart.protocols.imap.mailboxes import MailboxTree
    record = MailboxTree(c.store.list_mailboxes(c.account)).find("Drafts")
    return [uid for uid, _ in c.store.mailbox_uids(c.account, record["id"])]


def streamed_literals(c: Client) -> list[int]:
    """Sizes of the literals the session received as streamed chunks (appended to the
    returned list as each one ends)."""
    sizes, current = [], [0]
    chunk = c.s._literal_chunk

    def counting(event):
        current[0] += len(event.data)
        if event.last:
            sizes.append(current[0])
            current[0] = 0
        chunk(event)

    c.s._literal_chunk = counting
    return sizes


def message(size: int, tag: bytes = b"") -> bytes:
    head = (b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: draft " + tag +
            b"\r\nMessage-ID: <draft" + tag + b"@example.org>\r\n\r\n")
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789\r\n"
    body = (line * (size // len(line) + 1))[:size - len(head) - 2] + b"\r\n"
    return head + body


async def fetch_body(c: Client, uid: int) -> bytes:
    lines = await c.raw(f"f{uid} UID FETCH {uid} BODY.PEEK[]")
    first = lines[0]
    start = first.index(b"}\r\n") + 3
    return first[start:first.rindex(b")")]


def test_20mb_replace_keeps_session_memory_bounded(tmp_path):
    async def t():
        c = await drafts_client(tmp_path)
        data = message(20 * MiB, b"v2")
        assert await c.raw(f"r1 REPLACE 1 Drafts (\\Draft) {{{len(data)}}}") == \
            [b"+ Ready for literal data"]
        native_peak = 0
        saw_spool = False
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            for i in range(0, len(data), CHUNK):
                assert await c.send(data[i:i + CHUNK]) == b""
                native_peak = max(native_peak, c.s.parser.memory())
                if i == 10 * MiB:
                    saw_spool = len(spools(tmp_path)) == 1
            out = split_lines(await c.send(b"\r\n"))
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert out[0].startswith(b"* OK [APPENDUID ") and \
            out[0].endswith(b" 2] Replacement stored"), out
        assert out[1] == b"* 1 EXPUNGE" and out[-1] == b"r1 OK REPLACE completed", out
        assert peak < BOUND, f"Python allocations peaked at {peak} octets"
        assert native_peak < BOUND, f"the reader's buffers peaked at {native_peak} octets"
        assert saw_spool, "the literal was not being spooled to a file as it arrived"
        assert drafts_uids(c) == [2]
        stored = await fetch_body(c, 2)
        assert len(stored) == len(data)
        assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
        assert spools(tmp_path) == []
        # The flags and the thread keys (from the streamed header) went with it.
        assert await c.raw("g UID FETCH 2 FLAGS") == [b"* 1 FETCH (UID 2 FLAGS (\\Draft \\Recent))",
                                                      b"g OK FETCH completed"]
        lines = await c.raw("t1 UID SEARCH HEADER Message-ID <draftv2@example.org>")
        assert lines == [b"* SEARCH 2", b"t1 OK SEARCH completed"]
    run(t())


@pytest.mark.parametrize("command", ["REPLACE 1", "UID REPLACE 1"])
def test_client_gone_mid_literal_leaves_nothing(tmp_path, command):
    async def t():
        c = await drafts_client(tmp_path)
        before = files(tmp_path)
        data = message(5 * MiB)
        assert await c.raw(f"r1 {command} Drafts {{{len(data)}}}") == \
            [b"+ Ready for literal data"]
        await c.send(data[:3 * MiB])
        [spool] = spools(tmp_path)                  # being written
        assert os.path.getsize(os.path.join(tmp_path, spool)) > 0
        c.s.close()                                  # the adapter: connection_lost
        assert files(tmp_path) == before
        assert drafts_uids(c) == [1]                 # the old message stays
    run(t())


def test_refused_replace_deletes_its_spool(tmp_path):
    async def t():
        c = await drafts_client(tmp_path)
        before = files(tmp_path)
        one = message(300_000, b"x")
        lit = f"{{{len(one)}+}}\r\n".encode()
        half = len(one) // 2

        async def refused(head: str, tail: bytes, *expected: str) -> None:
            # The literal is spooled while it arrives; the refusal deletes the spool.
            assert await c.send(head.encode() + lit + one[:half]) == b""
            assert len(spools(tmp_path)) == 1, head
            await c.cmd(one[half:] + tail, *expected)
            assert files(tmp_path) == before, head
            assert drafts_uids(c) == [1], head

        await refused("a1 REPLACE 1 Nowhere ", b"\r\n", "a1 NO [TRYCREATE] Mailbox does not exist")
        await refused("a2 UID REPLACE 9 Drafts ", b"\r\n",
                      "a2 NO [NONEXISTENT] No message with that UID")
        await refused("a3 REPLACE 5 Drafts ", b"\r\n",
                      "a3 BAD Invalid message sequence number 5 (the mailbox has 1 messages)")
        await refused("a4 REPLACE 1 Drafts ", b" junk\r\n", "a4 BAD *")
        assert (await c.raw("e EXAMINE Drafts"))[-1].startswith(b"e OK [READ-ONLY]")
        await refused("a5 REPLACE 1 Drafts ", b"\r\n", "a5 NO Mailbox is read-only")
        await c.cmd("u UNSELECT", "u OK *")
        await refused("a6 REPLACE 1 Drafts ", b"\r\n",
                      "a6 BAD REPLACE is not allowed in the authenticated state")
        await c.cmd("a7 NOOP", "a7 OK NOOP completed")
    run(t())


def test_appendlimit_refuses_before_spooling(tmp_path):
    async def t():
        c = await drafts_client(tmp_path, limits=Limits(max_append=100_000))
        before = files(tmp_path)
        big = message(150_000)
        # Synchronizing: refused at once, the client does not send it.
        await c.cmd(f"r1 REPLACE 1 Drafts {{{len(big)}}}",
                    f"r1 NO [TOOBIG] Message of {len(big)} octets is over the limit of "
                    "100000 octets")
        # Non-synchronizing: read and dropped, never spooled.
        assert await c.send(f"r2 UID REPLACE 1 Drafts {{{len(big)}+}}\r\n".encode() +
                            big[:100_000]) == \
            f"r2 NO [TOOBIG] Message of {len(big)} octets is over the limit of " \
            "100000 octets\r\n".encode()
        assert spools(tmp_path) == []
        await c.cmd(big[100_000:] + b"\r\nr3 NOOP", "r3 OK NOOP completed")
        assert files(tmp_path) == before and drafts_uids(c) == [1]
        # Within the limit: streamed and stored.
        small = message(90_000, b"ok")
        streamed = streamed_literals(c)
        await c.cmd(f"r4 REPLACE 1 Drafts {{{len(small)}+}}\r\n".encode() + small + b"\r\n",
                    "* OK [APPENDUID *", "* 1 EXPUNGE", "* 1 EXISTS",
                    "* 1 RECENT", "r4 OK REPLACE completed")
        assert streamed == [len(small)]
        assert await fetch_body(c, 2) == small and spools(tmp_path) == []
    run(t())


@pytest.mark.parametrize("kind", ["sync", "nonsync", "binary"])
def test_replace_streamed_every_split(tmp_path, feed_ways, kind):
    v2 = message(70_000, b"v2")
    v3 = message(3_000, b"v3") + b"\x00\x01" * (kind == "binary")

    def literal(data: bytes) -> bytes:
        if kind == "nonsync":
            return f"{{{len(data)}+}}\r\n".encode() + data
        prefix = "~" if kind == "binary" else ""
        return f"{prefix}{{{len(data)}}}\r\n".encode() + data

    wire = (b"a1 REPLACE 1 Drafts (\\Flagged) " + literal(v2) +
            b"\r\na2 UID REPLACE 2 Drafts " + literal(v3) + b"\r\na3 NOOP\r\n")

    async def t():
        for n, (label, chunks) in enumerate(feed_ways(wire, seed=8508)):
            root = tmp_path / str(n)
            c = await drafts_client(root)
            streamed = streamed_literals(c)
            out = b"".join([await c.send(chunk) for chunk in chunks])
            lines = [ln for ln in split_lines(out) if not ln.startswith(b"+ ")]
            assert lines[0].endswith(b" 2] Replacement stored"), (label, lines)
            assert lines[1] == b"* 1 EXPUNGE", (label, lines)
            assert b"a1 OK REPLACE completed" in lines, (label, lines)
            i = lines.index(b"a1 OK REPLACE completed")
            assert lines[i + 1].endswith(b" 3] Replacement stored"), (label, lines)
            assert lines[i + 2] == b"* 1 EXPUNGE", (label, lines)
            assert lines[-2:] == [b"a2 OK REPLACE completed", b"a3 OK NOOP completed"], label
            assert drafts_uids(c) == [3], label
            assert streamed == [len(v2), len(v3)], label
            if kind == "binary":
                got = await c.raw("b UID FETCH 3 BINARY.PEEK[]")
                assert got[0].endswith(v3 + b")"), label
            else:
                assert await fetch_body(c, 3) == v3, label
            assert spools(root) == [], label
    run(t())


def test_memory_store_spools_in_memory():
    """``Store.memory()`` has no blob files: the same streamed path, kept in memory."""
    async def t():
        c = await Client.create()
        await c.deliver(DRAFT, mailbox="Drafts")
        assert (await c.raw("s SELECT Drafts"))[-1].startswith(b"s OK [READ-WRITE]")
        data = message(200_000)
        assert await c.send(f"r1 REPLACE 1 Drafts {{{len(data)}+}}\r\n".encode() +
                            data[:150_000]) == b""
        assert c.s._spool is not None and c.s._spool.size == 150_000
        assert c.s.parser.memory() < 100_000, "the reader is collecting the literal"
        await c.cmd(data[150_000:] + b"\r\n",
                    "* OK [APPENDUID *", "* 1 EXPUNGE", "* 1 EXISTS",
                    "* 1 RECENT", "r1 OK REPLACE completed")
        assert await fetch_body(c, 2) == data
    run(t())
