"""The grammar of COMPRESS (RFC 4978), GETMETADATA/SETMETADATA (RFC 5464) and NOTIFY
(RFC 5465) in the reference parser (grammar_ref), every case fed whole, line by line,
byte by byte and at random splits.

``CASES`` and ``ERRORS`` are data (input, expected events) so that the native parser's
differential test can take them over as they are once it speaks these commands.

``ext_client`` is the session harness the other ``test_imap_ext_*`` files use: a
``Client`` over ``Store.memory()`` whose session parses with the native parser when that
parser knows these commands, and with the reference parser until it does (the session
logic under test is the same either way).
"""

from __future__ import annotations

import pytest

from stalwart.protocols.base import NEED_DATA
from stalwart.protocols.imap import grammar, grammar_ref
from stalwart.protocols.imap.grammar_ref import Parser
from stalwart.protocols.imap.testing import Client
from stalwart.protocols.imap.types import (
    Command, Compress, Continuation, FetchItem, GetMetadata, ImapError, Notify, NotifyGroup,
    SetMetadata,
)

EXT_PROBES = (b"a COMPRESS DEFLATE", b'a GETMETADATA "" /private/x',
              b'a SETMETADATA "" (/private/x NIL)', b"a NOTIFY NONE")


def native_speaks_extensions() -> bool:
    for line in EXT_PROBES:
        try:
            grammar.parse_command([line], [])
        except ImapError as exc:
            if exc.message.startswith("Unknown command"):
                return False
    return True


async def ext_client(store=None, **kw) -> Client:
    c = await Client.create(store, **kw)
    if not native_speaks_extensions():
        c.s.parser = grammar_ref.Parser(c.s.limits, literal_limit=c.s._literal_limit,
                                        utf8=c.s.utf8)
    return c


def drain(parser: Parser) -> list:
    out = []
    while True:
        try:
            event = parser.next_event()
        except ImapError as exc:
            out.append(exc)
            continue
        if event is NEED_DATA:
            return out
        out.append(event)


CASES = [
    (b"a1 COMPRESS DEFLATE\r\n", [Command("a1", "COMPRESS", Compress("DEFLATE"))]),
    (b"a1 compress deflate\r\n", [Command("a1", "COMPRESS", Compress("DEFLATE"))]),
    (b"a1 COMPRESS LZW\r\n", [Command("a1", "COMPRESS", Compress("LZW"))]),
    (b'g1 GETMETADATA "" /private/comment\r\n',
     [Command("g1", "GETMETADATA", GetMetadata("", ("/private/comment",)))]),
    (b"g2 GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/shared/a /private/b)\r\n",
     [Command("g2", "GETMETADATA",
              GetMetadata("INBOX", ("/shared/a", "/private/b"), 1024, None))]),
    (b"g3 GETMETADATA (DEPTH 1) inbox/sub {10}\r\n/shared/xy\r\n",
     [Continuation("g3", "GETMETADATA", 10),
      Command("g3", "GETMETADATA", GetMetadata("inbox/sub", ("/shared/xy",), None, 1))]),
    (b'g4 GETMETADATA (depth 0 maxsize 5) "Work" "/shared/comment"\r\n',
     [Command("g4", "GETMETADATA", GetMetadata("Work", ("/shared/comment",), 5, 0))]),
    (b'm1 SETMETADATA INBOX (/private/comment "My comment" /shared/x NIL)\r\n',
     [Command("m1", "SETMETADATA",
              SetMetadata("INBOX", (("/private/comment", b"My comment"),
                                    ("/shared/x", None))))]),
    (b'm2 SETMETADATA "" (/private/vendor/a {5+}\r\nhello /private/vendor/b ~{3+}\r\na\x00b)\r\n',
     [Command("m2", "SETMETADATA",
              SetMetadata("", (("/private/vendor/a", b"hello"),
                               ("/private/vendor/b", b"a\x00b"))))]),
    (b"n1 NOTIFY NONE\r\n", [Command("n1", "NOTIFY", Notify(None))]),
    (b"n2 NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge)) "
     b"(SUBTREE (INBOX Work) (MailboxName SubscriptionChange)) (personal NONE)\r\n",
     [Command("n2", "NOTIFY", Notify((
         NotifyGroup("SELECTED", (), ("MESSAGENEW", "MESSAGEEXPUNGE"),
                     (FetchItem("UID"), FetchItem("FLAGS"))),
         NotifyGroup("SUBTREE", ("INBOX", "Work"), ("MAILBOXNAME", "SUBSCRIPTIONCHANGE")),
         NotifyGroup("PERSONAL", (), ("NONE",))), False))]),
    (b"n3 NOTIFY SET STATUS (mailboxes Drafts (MessageNew MessageExpunge FlagChange))\r\n",
     [Command("n3", "NOTIFY", Notify((
         NotifyGroup("MAILBOXES", ("Drafts",), ("MESSAGENEW", "MESSAGEEXPUNGE",
                                                "FLAGCHANGE")),), True))]),
    (b"n4 NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (inboxes (MessageNew "
     b"MessageExpunge)) (subscribed (SubscriptionChange))\r\n",
     [Command("n4", "NOTIFY", Notify((
         NotifyGroup("SELECTED-DELAYED", (), ("MESSAGENEW", "MESSAGEEXPUNGE")),
         NotifyGroup("INBOXES", (), ("MESSAGENEW", "MESSAGEEXPUNGE")),
         NotifyGroup("SUBSCRIBED", (), ("SUBSCRIPTIONCHANGE",))), False))]),
]

ERRORS = [
    (b"a1 COMPRESS\r\n", "Expected a space at end of line"),
    (b"g1 GETMETADATA (DEPTH 2) INBOX /private/a\r\n", "Invalid DEPTH 2 (0, 1 or infinity)"),
    (b"g2 GETMETADATA (COLOR 2) INBOX /private/a\r\n", "Unknown GETMETADATA option COLOR"),
    (b"g3 GETMETADATA INBOX ()\r\n", "Expected at least one entry name"),
    (b"g4 GETMETADATA INBOX\r\n", "Expected a space at end of line"),
    (b"m1 SETMETADATA INBOX ()\r\n", "Expected at least one entry and value"),
    (b"m2 SETMETADATA INBOX (/private/a)\r\n", "Expected a space but found b')'"),
    (b"n1 NOTIFY\r\n", "Expected a space at end of line"),
    (b"n2 NOTIFY GET\r\n", "Expected NOTIFY SET or NOTIFY NONE"),
    (b"n3 NOTIFY SET (EVERYWHERE (MessageNew))\r\n", "Unknown NOTIFY mailbox filter EVERYWHERE"),
    (b"n4 NOTIFY SET (SELECTED NOTHING)\r\n", "Expected a list of events or NONE"),
    (b"n5 NOTIFY SET (MAILBOXES () (MessageNew))\r\n", "Expected at least one mailbox"),
    (b"n6 NOTIFY SET STATUS\r\n", "Expected a space at end of line"),
    (b"n7 NOTIFY SET LATER (SELECTED NONE)\r\n", "Expected STATUS or an event group"),
]


def _ways(data: bytes, feed_ways):
    return feed_ways(data, seed=len(data))


@pytest.mark.parametrize("data,expected", CASES, ids=[c[0][:24].decode("latin-1")
                                                       for c in CASES])
def test_extension_commands_parse_however_they_arrive(data, expected, feed_ways):
    for label, chunks in _ways(data, feed_ways):
        parser = Parser()
        events = []
        for chunk in chunks:
            parser.receive_data(chunk)
            events += drain(parser)
        assert events == expected, label


@pytest.mark.parametrize("data,message", ERRORS, ids=[e[0][:24].decode() for e in ERRORS])
def test_extension_syntax_errors_are_bad_and_the_parser_stays_in_step(data, message,
                                                                      feed_ways):
    tag = data.split(b" ", 1)[0].decode()
    for label, chunks in _ways(data + b"z9 NOOP\r\n", feed_ways):
        parser = Parser()
        events = []
        for chunk in chunks:
            parser.receive_data(chunk)
            events += drain(parser)
        assert len(events) == 2, (label, events)
        err, nxt = events
        assert isinstance(err, ImapError) and err.tag == tag and err.reply_code == "BAD", label
        assert err.message == message, label
        assert nxt == Command("z9", "NOOP"), label


SEEDS = [
    b'GETMETADATA (MAXSIZE 10 DEPTH infinity) INBOX (/shared/a /private/b)',
    b'SETMETADATA INBOX (/private/comment "x" /shared/y NIL)',
    b'SETMETADATA "" (/private/vendor/a "1")',
    b"NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
    b"(SUBTREE (INBOX Junk) (MailboxName SubscriptionChange)) (PERSONAL NONE)",
    b"NOTIFY NONE",
    b"COMPRESS DEFLATE",
]
_TOKENS = [b" ", b"(", b")", b'"', b"NIL", b"{3}", b"~{2+}", b"*", b"%", b"/", b"//",
           b"/private", b"/shared/", b"INBOX", b"\xff", b"\x00", b"DEPTH", b"MAXSIZE",
           b"4294967296", b"-1", b"infinity", b"SELECTED", b"MessageNew", b"NONE"]


def _mutate(rng, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 4)):
        what = rng.randrange(3)
        pos = rng.randrange(len(data) + 1)
        if what == 0 and data:
            del data[pos:pos + rng.randint(1, 6)]
        elif what == 1:
            data[pos:pos] = rng.choice(_TOKENS)
        else:
            data[pos:pos] = bytes([rng.randrange(256)])
    return bytes(data).replace(b"\r", b"").replace(b"\n", b"")


def test_mangled_extension_commands_get_an_answer_never_a_crash():
    """Thousands of mangled GETMETADATA/SETMETADATA/NOTIFY/COMPRESS lines: each gets a
    tagged OK, NO or BAD (never SERVERBUG), and the session answers the next command."""
    import asyncio
    import random

    async def t():
        c = await ext_client()
        await c.raw("s0 SELECT INBOX")
        rng = random.Random(5465)
        for i in range(1500):
            line = _mutate(rng, rng.choice(SEEDS))
            if b"{" in line:
                line = line.replace(b"{", b"(")   # no literal waits in this test
            if line.upper().startswith(b"COMPRESS"):
                continue                         # a real COMPRESS would switch the stream
            out = await c.send(b"t%d " % i + line + b"\r\nz%d NOOP\r\n" % i)
            assert b"SERVERBUG" not in out, (line, out)
            assert out.endswith(b"z%d OK NOOP completed\r\n" % i), (line, out)
            assert (b"\r\nt%d " % i in b"\r\n" + out) or out.startswith(b"* BAD"), (line, out)
            if c.s.notify is not None and i % 50 == 0:
                await c.raw("n NOTIFY NONE")
        assert not c.s.closed
    asyncio.run(t())
