"""\\Recent for IMAP4rev1 clients (RFC 3501 2.3.2, 6.3.1, 6.3.2, 7.3.2): a new message is
recent in exactly one session, the first to select its mailbox read-write (or to have it
selected when the message arrives and run a command); EXAMINE and STATUS only look."""

from __future__ import annotations

import asyncio

from stalwart.protocols.imap.testing import Client

from .test_imap_ext_grammar import ext_client


def run(coro):
    return asyncio.run(coro)


async def select(c: Client, tag: str, command: str = "SELECT") -> list[bytes]:
    lines = await c.raw(f"{tag} {command} INBOX")
    assert lines[-1].startswith(f"{tag} OK".encode()), lines
    return lines


def recent_of(lines: list[bytes]) -> int | None:
    for line in lines:
        if line.endswith(b" RECENT") and line.startswith(b"* "):
            return int(line.split()[1])
    return None


def test_a_new_message_is_recent_in_exactly_one_session():
    async def t():
        a = await ext_client()
        b = await ext_client(a.store)
        await a.deliver()
        assert recent_of(await select(a, "a1")) == 1
        assert recent_of(await select(b, "b1")) == 0
        await a.cmd("a2 FETCH 1 FLAGS", "* 1 FETCH (FLAGS (\\Recent))", "a2 OK FETCH completed")
        await b.cmd("b2 FETCH 1 FLAGS", "* 1 FETCH (FLAGS ())", "b2 OK FETCH completed")
        await a.cmd("a3 SEARCH RECENT", "* SEARCH 1", "a3 OK SEARCH completed")
        await a.cmd("a4 SEARCH NEW", "* SEARCH 1", "a4 OK SEARCH completed")
        await b.cmd("b3 SEARCH RECENT", "* SEARCH", "b3 OK SEARCH completed")
        await b.cmd("b4 SEARCH OLD", "* SEARCH 1", "b4 OK SEARCH completed")
        # A message arriving while both have INBOX selected goes to the first to look.
        await a.deliver()
        await b.cmd("b5 NOOP", "* 2 EXISTS", "* 1 RECENT", "b5 OK NOOP completed")
        await a.cmd("a5 NOOP", "* 2 EXISTS", "* 1 RECENT", "a5 OK NOOP completed")
        await a.cmd("a6 FETCH 1:2 FLAGS", "* 1 FETCH (FLAGS (\\Recent))",
                    "* 2 FETCH (FLAGS ())", "a6 OK FETCH completed")
        await b.cmd("b6 FETCH 1:2 FLAGS", "* 1 FETCH (FLAGS ())",
                    "* 2 FETCH (FLAGS (\\Recent))", "b6 OK FETCH completed")
        # STORE answers keep \Recent; the client cannot set or clear it.
        await b.cmd("b7 STORE 2 +FLAGS (\\Seen)", "* 2 FETCH (FLAGS (\\Seen \\Recent))",
                    "b7 OK STORE completed")
        await b.cmd("b8 STORE 2 FLAGS (\\Recent)", "b8 BAD \\Recent cannot be set by the client")
        # A later SELECT in a third session finds nothing recent.
        c = await ext_client(a.store)
        assert recent_of(await select(c, "c1")) == 0
    run(t())


def test_examine_and_status_do_not_take_recent():
    async def t():
        a = await ext_client()
        await a.deliver()
        await a.deliver()
        await a.cmd("a1 STATUS INBOX (RECENT MESSAGES)", "* STATUS INBOX (RECENT 2 MESSAGES 2)",
                    "a1 OK STATUS completed")
        b = await ext_client(a.store)
        assert recent_of(await select(b, "b1", "EXAMINE")) == 2
        await b.cmd("b2 FETCH 2 FLAGS", "* 2 FETCH (FLAGS (\\Recent))", "b2 OK FETCH completed")
        await b.cmd("b3 STATUS INBOX (RECENT)", "* STATUS INBOX (RECENT 2)",
                    "b3 OK STATUS completed")
        assert recent_of(await select(a, "a2")) == 2
        await a.cmd("a3 STATUS INBOX (RECENT)", "* STATUS INBOX (RECENT 2)",
                    "a3 OK STATUS completed")
        await b.cmd("b4 STATUS INBOX (RECENT)", "* STATUS INBOX (RECENT 0)",
                    "b4 OK STATUS completed")
        assert recent_of(await select(b, "b5", "EXAMINE")) == 0
    run(t())


def test_imap4rev2_sessions_neither_see_nor_take_recent():
    async def t():
        a = await ext_client()
        await a.deliver()
        await a.cmd("e1 ENABLE IMAP4rev2", "* ENABLED IMAP4rev2", "e1 OK ENABLE completed")
        lines = await select(a, "a1")
        assert recent_of(lines) is None
        await a.cmd("a2 FETCH 1 FLAGS", "* 1 FETCH (FLAGS ())", "a2 OK FETCH completed")
        b = await ext_client(a.store)
        assert recent_of(await select(b, "b1")) == 1
    run(t())


def test_concurrent_selects_split_the_recent_messages():
    async def t():
        first = await ext_client()
        clients = [first] + [await ext_client(first.store) for _ in range(5)]
        for _ in range(7):
            await first.deliver()
        results = await asyncio.gather(*(select(c, f"s{i}") for i, c in enumerate(clients)))
        counts = [recent_of(lines) for lines in results]
        assert sum(counts) == 7 and sorted(counts)[-1] == 7, counts
        # Deliveries while all of them have INBOX selected: each message to one session.
        for _ in range(4):
            await first.deliver()
        answers = await asyncio.gather(*(c.raw(f"n{i} NOOP") for i, c in enumerate(clients)))
        total = 0
        for c in clients:
            total += c.s.selected.recent_count()
        assert total == 11, answers
    run(t())
