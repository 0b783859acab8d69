"""APPENDLIMIT (RFC 7889) with the literal rules of RFC 7888: the limit is advertised in
CAPABILITY, STATUS and LIST-STATUS; a message over it is refused with [TOOBIG] before its
literal is read (synchronizing: no "+" is ever sent) or, for a non-synchronizing literal
that is already on its way, read and dropped so the connection stays in step. Inputs are
fed whole, line by line, byte by byte and at random splits."""

from __future__ import annotations

import asyncio

from stalwart.protocols.imap.grammar_ref import Limits
from stalwart.protocols.imap.testing import MSG, split_lines

from .test_imap_ext_grammar import ext_client

LIMIT = 200
LIMITS = Limits(max_append=LIMIT, max_append_total=3 * LIMIT, max_discard=4 * LIMIT)


def run(coro):
    return asyncio.run(coro)


def test_limit_is_advertised_in_capability_status_and_list_status():
    async def t():
        c = await ext_client(limits=LIMITS)
        caps = b" ".join(await c.raw("a1 CAPABILITY"))
        assert b" APPENDLIMIT=200 " in caps + b" "
        await c.cmd("a2 STATUS INBOX (MESSAGES APPENDLIMIT)",
                    "* STATUS INBOX (MESSAGES 0 APPENDLIMIT 200)", "a2 OK STATUS completed")
        lines = await c.raw('a3 LIST "" "Dr*" RETURN (STATUS (APPENDLIMIT))')
        assert lines == [b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
                         b"* STATUS Drafts (APPENDLIMIT 200)", b"a3 OK LIST completed"]
    run(t())


def test_synchronizing_literal_over_the_limit_gets_no_continuation(feed_ways):
    async def t():
        data = b"a1 APPEND INBOX {201}\r\na2 NOOP\r\n"
        for label, chunks in feed_ways(data, seed=7889):
            c = await ext_client(limits=LIMITS)
            out = b""
            for chunk in chunks:
                out += await c.send(chunk)
            assert split_lines(out) == [
                b"a1 NO [TOOBIG] Message of 201 octets is over the limit of 200 octets",
                b"a2 OK NOOP completed"], label
            assert b"+ " not in out, label
    run(t())


def test_non_synchronizing_literal_over_the_limit_is_dropped_in_step(feed_ways):
    async def t():
        body = b"X" * 250
        data = b"a1 APPEND INBOX {250+}\r\n" + body + b"\r\na2 STATUS INBOX (MESSAGES)\r\n"
        for label, chunks in feed_ways(data, seed=7888):
            c = await ext_client(limits=LIMITS)
            out = b""
            for chunk in chunks:
                out += await c.send(chunk)
            assert split_lines(out) == [
                b"a1 NO [TOOBIG] Message of 250 octets is over the limit of 200 octets",
                b"* STATUS INBOX (MESSAGES 0)", b"a2 OK STATUS completed"], label
    run(t())


def test_message_at_the_limit_is_accepted_and_multiappend_is_all_or_nothing():
    async def t():
        c = await ext_client(limits=LIMITS)
        message = (MSG + b"x" * LIMIT)[:LIMIT]
        lines = await c.raw(b"a1 APPEND INBOX {%d+}\r\n" % LIMIT + message)
        assert lines[-1].startswith(b"a1 OK [APPENDUID ")
        big = MSG + b"y" * LIMIT
        lines = await c.raw(b"a2 APPEND INBOX {%d+}\r\n" % len(MSG) + MSG +
                            b" {%d+}\r\n" % len(big) + big)
        assert lines == [b"a2 NO [TOOBIG] Message of %d octets is over the limit of 200 "
                         b"octets" % len(big)]
        await c.cmd("a3 STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 1)",
                    "a3 OK STATUS completed")
    run(t())


def test_a_non_synchronizing_literal_too_big_to_drop_closes_the_connection():
    async def t():
        c = await ext_client(limits=LIMITS)
        lines = await c.raw(b"a1 APPEND INBOX {100000+}")
        assert lines == [b"* BYE [TOOBIG] Message of 100000 octets is over the limit of 200 "
                         b"octets"]
        assert c.s.closed
    run(t())
