"""The native IMAP parser (stalwart.protocols.imap.grammar, Rust) against the reference.

Differential tests: the Rust parser must give exactly the events of the pure-Python
reference (``grammar_ref``), compared with ``==`` and by ``repr`` (so a datetime's zone and
every field count), errors included (message, reply, tag, response code, close):

- every case of ``test_imap_grammar.py``, fed whole, line by line, byte by byte and at
  random splits, must give the expected events;
- the reference's scenario tests (IDLE and SASL modes, refused literals, limits, STARTTLS,
  UTF-8 names) replayed step by step on both parsers;
- a seeded generator of valid commands (every command the grammar knows, with literals of
  the three kinds, nested search keys, sections, dates, modified UTF-7 names) and of
  broken ones (the valid ones mutated), streamed at random splits through both parsers
  with random small limits and with the session's reactions (refusing a continuation,
  entering IDLE or SASL mode) taken at the same points on both.
"""

from __future__ import annotations

import random

import pytest

from stalwart.protocols.base import NEED_DATA, LocalProtocolError
from stalwart.protocols.imap import grammar, grammar_ref
from stalwart.protocols.imap.types import Command, Continuation, ImapError

from .test_imap_grammar import CASES, splits


def drain(parser) -> list:
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


def feed(cls, chunks: list[bytes], **kw) -> list:
    parser = cls(**kw)
    events = []
    for chunk in chunks:
        parser.receive_data(chunk)
        events += drain(parser)
    return events


def same(native: list, reference: list) -> bool:
    return native == reference and [repr(e) for e in native] == [repr(e) for e in reference]


@pytest.mark.parametrize("data, expected", CASES, ids=[c[0][:40].decode("latin-1") for c in CASES])
def test_reference_cases_at_every_split(data, expected):
    for how, chunks in splits(data).items():
        native = feed(grammar.Parser, chunks)
        assert native == expected, how
        assert same(native, feed(grammar_ref.Parser, chunks)), how


# -- scenarios replayed on both parsers: ("feed", data) | ("call", method) | ("set", attr, v)

def replay(steps: list[tuple], **kw) -> tuple[list, list]:
    transcripts = []
    for module in (grammar, grammar_ref):
        parser = module.Parser(**kw)
        out: list = []
        for step in steps:
            if step[0] == "feed":
                parser.receive_data(step[1])
                out.append(drain(parser))
            elif step[0] == "call":
                try:
                    out.append(("returned", getattr(parser, step[1])()))
                except LocalProtocolError as exc:
                    out.append(("raised", str(exc)))
            else:
                setattr(parser, step[1], step[2])
        transcripts.append(out)
    return transcripts[0], transcripts[1]


SCENARIOS = {
    "idle and sasl": ([
        ("feed", b"a1 IDLE\r\n"), ("call", "expect_idle_done"),
        ("feed", b"done\r\na2 AUTHENTICATE PLAIN\r\n"), ("call", "expect_sasl"),
        ("feed", b"AGFsaWNlAHB3\r\n"), ("call", "expect_command"), ("call", "expect_idle_done"),
        ("feed", b"NOOP\r\n"), ("feed", b"a3 NOOP\r\n"),
    ], {}),
    "refused nonsync literal": ([
        ("feed", b"a1 LOGIN {22+}\r\n" + b"a9 LOGOUT\r\n" * 2 + b" x\r\na2 NOOP\r\n"),
    ], {"limits": grammar.Limits(max_literal=10)}),
    "refused sync literal": ([
        ("feed", b"a1 LOGIN {101}\r\n"), ("feed", b"a2 LOGIN {3}\r\n"), ("call", "refuse_literal"),
        ("feed", b"a3 NOOP\r\n"), ("feed", b"a4 APPEND INBOX {200}\r\n"),
    ], {"literal_limit": lambda name: 100}),
    "huge nonsync literal closes": ([
        ("feed", b"a1 APPEND INBOX {4294967295+}\r\n"),
    ], {"limits": grammar.Limits(max_discard=1000)}),
    "line and command limits": ([
        ("feed", b"a1 LOGIN " + b"x" * 200 + b"\r\na2 NOOP\r\n"), ("feed", b"a3 LOGIN {140}\r\n"),
        ("feed", b"a4 LOGIN {20}\r\n" + b"y" * 20 + b" " + b"z" * 130 + b"\r\n"),
    ], {"limits": grammar.Limits(max_line=100, max_command=150)}),
    "nesting and arguments": ([
        ("feed", b"a1 SEARCH " + b"(" * 11 + b"ALL" + b")" * 11 + b"\r\n"),
        ("feed", b"a2 SEARCH " + b"NOT " * 11 + b"ALL\r\n"),
        ("feed", b"a3 FETCH " + b",".join(b"%d" % i for i in range(1, 60)) + b" FLAGS\r\n"),
        ("feed", b"a4 SEARCH " + b"(" * 5 + b"ALL" + b")" * 5 + b"\r\n"),
    ], {"limits": grammar.Limits(max_depth=10, max_args=50)}),
    "default nesting limit": ([
        ("feed", b"a1 SEARCH " + b"(" * 50000 + b"\r\n"),
        ("feed", b"a2 SEARCH " + b"OR ALL " * 9000 + b"ALL\r\n"),
    ], {}),
    "pipelined": ([
        ("feed", b"".join(b"t%d NOOP\r\n" % i for i in range(5000)) + b"t5000 BAD(\r\n"),
    ], {}),
    "utf8 names": ([
        ("feed", "a1 SELECT \"Entw\u00fcrfe\"\r\n".encode()), ("set", "utf8", True),
        ("feed", "a2 SELECT \"Entw\u00fcrfe\"\r\n".encode() + b"a3 SELECT \"\xff\"\r\n"),
        ("feed", "a4 SELECT \u0131nbox\r\n".encode()),
    ], {}),
    "starttls": ([
        ("feed", b"a1 STARTTLS\r\na2 LOGIN evil injected\r\n"), ("call", "buffered"),
        ("call", "discard_buffer"), ("call", "buffered"), ("feed", b"a3 NOOP\r\n"),
    ], {}),
    "discard while dropping a long line": ([
        ("feed", b"a1 LOGIN " + b"x" * 300), ("call", "discard_buffer"),
    ], {"limits": grammar.Limits(max_line=100)}),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_agree(name):
    steps, kw = SCENARIOS[name]
    native, reference = replay(steps, **kw)
    assert native == reference
    assert repr(native) == repr(reference)
    assert any(native), "the scenario produced no event at all"


def test_parse_command_function_agrees():
    parts = [b"a1 APPEND INBOX (\\Seen) {3}", b" ~{2}", b""]
    literals = [(b"abc", False), (b"d\x00", True)]
    assert grammar.parse_command(parts, literals) == grammar_ref.parse_command(parts, literals)
    for bad in ([b"   "], [b"a1 FETCH 1 (BODY[HEADER.FIELDS (\"a\x01\")])"], [b"a1 X {1}", b""]):
        errors = []
        for module in (grammar, grammar_ref):
            with pytest.raises(ImapError) as info:
                module.parse_command(bad, [])
            errors.append(info.value)
        assert errors[0] == errors[1]


def test_bytes_to_bytes_codec_is_an_unsupported_charset():
    """rot13 is a Python codec but no charset: NO [BADCHARSET], never an exception (the
    reference let LookupError escape here until it was fixed)."""
    data = (b"a1 SEARCH CHARSET rot13 TEXT x\r\na2 SEARCH CHARSET latin1 TEXT \"\xe9\"\r\n"
            b"a3 SORT (DATE) base64 ALL\r\n")
    for module in (grammar, grammar_ref):
        p = module.Parser()
        p.receive_data(data)
        events = drain(p)
        assert events[0] == ImapError("Unsupported charset ROT13", "NO", tag="a1",
                                      code="BADCHARSET (UTF-8 US-ASCII)")
        assert events[1].args.key == ("and", (("text", "\u00e9"),))
        assert events[1].args.charset == "LATIN1"
        assert events[2] == ImapError("Unsupported charset BASE64", "NO", tag="a3",
                                      code="BADCHARSET (UTF-8 US-ASCII)")


def test_partial_fetch_takes_64_bit_numbers():
    """RFC 9051 ``partial = "<" number64 "." nz-number64 ">"``: the reference used to stop
    at 2^32-1 (RFC 3501's number), refusing offsets into messages over 4 GiB."""
    line = b"a1 FETCH 1 (BODY.PEEK[]<4294967296.9223372036854775807> BINARY[1]<0.5000000000>)"
    for module in (grammar, grammar_ref):
        items = module.parse_command([line], []).args.items
        assert [i.partial for i in items] == [(2**32, 2**63 - 1), (0, 5 * 10**9)]
        with pytest.raises(ImapError, match="out of range"):
            module.parse_command([b"a1 FETCH 1 BODY[]<0.9223372036854775808>"], [])


def test_literal_limit_callback_errors_propagate():
    def limit(name: str) -> int:
        raise RuntimeError("session bug")

    p = grammar.Parser(literal_limit=limit)
    p.receive_data(b"a1 LOGIN {3}\r\n")
    with pytest.raises(RuntimeError, match="session bug"):
        p.next_event()


# -- the random generator

class Gen:
    """Random IMAP commands: mostly valid, with the quirks the grammar must handle."""

    ATOMS = ["a", "Foo", "$Junk", "x.y", "NIL", "nil", "INBOX", "inbox", "12", "a]b"]
    NAMES = [b"INBOX", b"inbox", b"Sent", b"A/B", b"&AOk-t&AOk-", b"a&-b", b"&Jjo", b"&AOl-",
             b"caf\xc3\xa9", b"~peter/&U,BTFw-", b"x%y", b"*"]

    def __init__(self, rnd: random.Random) -> None:
        self.r = rnd

    def pick(self, *options):
        return self.r.choice(options)

    def number(self) -> bytes:
        return self.pick(b"0", b"1", b"7", b"42", b"4294967295", b"4294967296",
                         b"9223372036854775807", b"9223372036854775808", b"00012",
                         b"123456789012345678901234")

    def seqset(self) -> bytes:
        items = []
        for _ in range(self.r.randint(1, 4)):
            kind = self.r.random()
            if kind < 0.1:
                items.append(b"$")
            elif kind < 0.5:
                items.append(self.pick(b"1", b"5", b"*", b"0", b"17"))
            else:
                items.append(self.pick(b"1", b"3", b"*") + b":" + self.pick(b"*", b"9", b"2"))
        return b",".join(items)

    def string(self, text: bytes | None = None) -> bytes:
        text = text if text is not None else self.pick(
            b"alice", b"a b", b'q"x', b"back\\slash", b"caf\xc3\xa9", b"\xff\xfe", b"", b"nul\x00")
        kind = self.r.random()
        if kind < 0.35 and all(c > 32 and c < 127 and c not in b'(){%*"\\]' for c in text) and text:
            return text
        if kind < 0.7:
            return b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        return self.literal(text)

    def literal(self, data: bytes, eight: bool = False) -> bytes:
        mark = self.pick(b"", b"+")
        head = (b"~" if eight else b"") + b"{%d%s}\r\n" % (len(data), mark)
        return head + data

    def mailbox(self) -> bytes:
        return self.string(self.pick(*self.NAMES))

    def flag(self) -> bytes:
        return self.pick(b"\\Seen", b"\\deleted", b"\\Recent", b"\\Foo", b"$Label", b"Junk",
                         b"\\Answered", b"\\Draft", b"\\Flagged", b"\\")

    def flags(self) -> bytes:
        return b"(" + b" ".join(self.flag() for _ in range(self.r.randint(0, 3))) + b")"

    def date(self) -> bytes:
        d = self.pick(b"1-Feb-2024", b"31-Dec-1999", b"29-Feb-2023", b"5-jan-2020", b"1-Foo-2024",
                      b"001-Feb-2024", b"1-Feb-24", b"0-Jan-0000")
        return b'"' + d + b'"' if self.r.random() < 0.3 else d

    def date_time(self) -> bytes:
        return self.pick(b'"05-Jan-2024 10:00:00 +0100"', b'" 5-Jan-2024 23:59:59 -0930"',
                         b'"31-Feb-2024 10:00:00 +0000"', b'"05-Jan-2024 24:00:00 +0000"',
                         b'"05-Jan-2024 10:00:00 +2399"', b'"05-Jan-2024 10:00:00 +2400"',
                         b'"5-Jan-2024 10:00:00 +0100"', b'"05-Jan-2024 10:00:60 +0000"')

    def search_key(self, depth: int = 0) -> bytes:
        simple = [b"ALL", b"unseen", b"NEW", b"OLD", b"DELETED", b"RECENT", b"draft", b"UNFLAGGED"]
        kind = self.r.randint(0, 14 if depth < 4 else 8)
        if kind <= 2:
            return self.pick(*simple)
        if kind == 3:
            return self.seqset()
        if kind == 4:
            return self.pick(b"SINCE", b"BEFORE", b"ON", b"SENTON", b"SENTSINCE") + b" " + self.date()
        if kind == 5:
            return self.pick(b"FROM", b"TO", b"subject", b"BODY", b"TEXT", b"CC") + b" " + self.string()
        if kind == 6:
            return b"HEADER " + self.string(self.pick(b"X-Spam", b"list-id", b"\xc3\xa9")) + b" " + self.string()
        if kind == 7:
            return self.pick(b"LARGER ", b"SMALLER ", b"MODSEQ ", b"OLDER ", b"YOUNGER ",
                             b'MODSEQ "/flags/\\\\draft" all ', b"UID ") + self.number()
        if kind == 8:
            return self.pick(b"KEYWORD ", b"UNKEYWORD ") + self.flag()
        if kind <= 10:
            return b"NOT " + self.search_key(depth + 1)
        if kind <= 12:
            return b"OR " + self.search_key(depth + 1) + b" " + self.search_key(depth + 1)
        inner = b" ".join(self.search_key(depth + 1) for _ in range(self.r.randint(0, 3)))
        return b"(" + inner + b")"

    def section(self) -> bytes:
        part = self.pick(b"", b"1", b"1.2", b"2.", b"0", b"1.2.3")
        text = self.pick(b"", b"HEADER", b"TEXT", b"MIME", b"header.fields (From Subject)",
                         b"HEADER.FIELDS.NOT (x-a)", b"HEADER.FIELDS ()", b"BOGUS",
                         b"HEADER.FIELDS (\"a b\")")
        inner = part + (b"." if part and text and not part.endswith(b".") else b"") + text
        return b"[" + inner + b"]" + self.pick(b"", b"", b"<0.10>", b"<5.0>", b"<1>",
                                                 b"<4294967296.1>", b"<0.9223372036854775808>")

    def fetch_att(self) -> bytes:
        kind = self.r.random()
        if kind < 0.5:
            return self.pick(b"FLAGS", b"UID", b"ENVELOPE", b"rfc822.size", b"BODYSTRUCTURE",
                             b"INTERNALDATE", b"MODSEQ", b"BODY", b"PREVIEW", b"PREVIEW (LAZY)",
                             b"RFC822.HEADER", b"X-GM-MSGID", b"BODY.PEEK")
        return self.pick(b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE") + self.section()

    def command(self) -> bytes:
        r = self.r
        tag = (self.pick(b"a1", b"A002", b"t.3", b"x+y", b"Z") if r.random() < 0.9
               else self.pick(b"*", b"", b"a{1}"))
        kind = r.randint(0, 27)
        sp = b" "
        if kind == 0:
            body = self.pick(b"NOOP", b"capability", b"LOGOUT", b"IDLE", b"CHECK", b"UNSELECT",
                             b"NAMESPACE", b"EXPUNGE", b"STARTTLS", b"FROB", b"UID", b"UID FROB")
        elif kind == 1:
            body = b"LOGIN " + self.string() + sp + self.string()
        elif kind == 2:
            body = b"AUTHENTICATE " + self.pick(b"PLAIN", b"scram-sha-256") + self.pick(
                b"", b" AGFsaWNlAHB3", b" =", b" !")
        elif kind == 3:
            body = b"ENABLE" + b"".join(sp + self.pick(b"CONDSTORE", b"utf8=accept", b"QRESYNC")
                                        for _ in range(r.randint(0, 2)))
        elif kind == 4:
            pairs = b" ".join(self.string(b"name") + sp + self.pick(b"NIL", b"nil", self.string())
                              for _ in range(r.randint(0, 3)))
            body = b"ID " + self.pick(b"NIL", b"(" + pairs + b")")
        elif kind == 5:
            params = self.pick(b"", b" (CONDSTORE)", b" (QRESYNC (67890007 2 41,43:211))",
                               b" (QRESYNC (1 2 1:* (1:3 4:6)))", b" (QRESYNC (0 2))",
                               b" (QRESYNC (1 2 $))", b" (FOO)")
            body = self.pick(b"SELECT ", b"EXAMINE ") + self.mailbox() + params
        elif kind == 6:
            body = b"CREATE " + self.mailbox() + self.pick(b"", b" (USE (\\Sent))", b" (USE ())",
                                                            b" (FOO)")
        elif kind == 7:
            body = self.pick(b"DELETE ", b"SUBSCRIBE ", b"UNSUBSCRIBE ") + self.mailbox()
        elif kind == 8:
            body = b"RENAME " + self.mailbox() + sp + self.mailbox()
        elif kind == 9:
            sel = self.pick(b"", b"(SUBSCRIBED) ", b"(RECURSIVEMATCH) ", b"(REMOTE RECURSIVEMATCH "
                            b"SUBSCRIBED) ", b"(BOGUS) ", b"() ")
            pat = self.pick(b"*", b"%", b"Sent/*", b'("%" "x")', b"()", self.mailbox())
            ret = self.pick(b"", b" RETURN (CHILDREN)", b" RETURN (STATUS (MESSAGES SIZE))",
                            b" RETURN ()", b" FOO (X)", b" RETURN (STATUS ())")
            body = b"LIST " + sel + self.string(b"") + sp + pat + ret
        elif kind == 10:
            body = b"LSUB " + self.string(b"") + sp + self.pick(b"%", b"*", b"a&")
        elif kind == 11:
            body = b"STATUS " + self.mailbox() + sp + self.pick(
                b"(MESSAGES UIDNEXT)", b"(HIGHESTMODSEQ SIZE UNSEEN)", b"()", b"(FOO)")
        elif kind == 12:
            msgs = b""
            for _ in range(r.randint(1, 2)):
                msgs += sp
                if r.random() < 0.5:
                    msgs += self.flags() + sp
                if r.random() < 0.4:
                    msgs += self.date_time() + sp
                msgs += self.literal(self.pick(b"Hello", b"Sub\x00", b"x" * 40, b""),
                                     eight=r.random() < 0.3)
            body = b"APPEND " + self.mailbox() + msgs
        elif kind <= 14:
            items = self.pick(b"ALL", b"fast", b"FULL", b"ALLX", self.fetch_att(),
                              b"(" + b" ".join(self.fetch_att() for _ in range(r.randint(0, 4))) + b")")
            mods = self.pick(b"", b"", b" (CHANGEDSINCE 12345)", b" (CHANGEDSINCE 1 VANISHED)",
                             b" (VANISHED)", b" (FOO)")
            body = self.pick(b"FETCH ", b"UID FETCH ") + self.seqset() + sp + items + mods
        elif kind == 15:
            mods = self.pick(b"", b"(UNCHANGEDSINCE 9) ", b"(FOO 1) ")
            flags = self.pick(self.flags(), self.flag(), self.flag() + sp + self.flag())
            body = (self.pick(b"STORE ", b"UID STORE ") + self.seqset() + sp + mods
                    + self.pick(b"+", b"-", b"") + self.pick(b"FLAGS", b"flags.silent", b"LABELS")
                    + sp + flags)
        elif kind == 16:
            body = self.pick(b"COPY ", b"MOVE ", b"UID MOVE ", b"UID COPY ") + self.seqset() + sp + self.mailbox()
        elif kind == 17:
            body = b"UID EXPUNGE " + self.seqset()
        elif kind == 18:
            criteria = self.pick(b"(DATE)", b"(REVERSE arrival SUBJECT)", b"(DISPLAYFROM size)",
                                 b"()", b"(REVERSE)", b"(BOGUS)", b"(REVERSE REVERSE DATE)")
            body = (self.pick(b"SORT ", b"UID SORT ") + criteria + sp + self.pick(
                b"UTF-8", b"us-ascii", b"KOI9-X", b'"utf-8"') + b"".join(
                sp + self.search_key() for _ in range(r.randint(0, 2))))
        elif kind == 19:
            body = (self.pick(b"THREAD ", b"UID THREAD ")
                    + self.pick(b"REFERENCES", b"orderedsubject", b"REFS") + sp
                    + self.pick(b"UTF-8", b"US-ASCII", b"X-NONE") + b"".join(
                        sp + self.search_key() for _ in range(r.randint(0, 2))))
        elif kind == 20:
            msg = self.literal(self.pick(b"Hello", b"x" * 40, b""), eight=r.random() < 0.3)
            if r.random() < 0.4:
                msg = self.flags() + sp + msg
            body = (self.pick(b"REPLACE ", b"UID REPLACE ") + self.pick(b"1", b"0", b"99", b"*")
                    + sp + self.mailbox() + sp + msg)
        elif kind == 21:
            body = (self.pick(b"GETQUOTA ", b"GETQUOTAROOT ", b"SETQUOTA ") + self.string(
                self.pick(b"", b"INBOX", b"caf\xc3\xa9")) + self.pick(
                b"", b"", b" (STORAGE 512)", b" (storage 512 MESSAGE 9223372036854775808)",
                b" ()", b" (STORAGE)"))
        elif kind == 22:
            body = self.pick(
                b"SETACL " + self.mailbox() + sp + self.string(b"bob") + sp
                + self.pick(b"lrs", b"+w", b"-x", b'""'),
                b"DELETEACL " + self.mailbox() + sp + self.pick(b"anyone", b"bob"),
                b"LISTRIGHTS " + self.mailbox() + sp + self.string(b"bob"),
                self.pick(b"GETACL ", b"MYRIGHTS ") + self.mailbox(),
                b"SETACL " + self.mailbox() + sp + b"bob")
        elif kind == 23:
            entry = self.pick(b"/private/comment", b'"/shared/x"', b"/shared/vendor/a",
                              b"(/private/comment /shared/y)", b"()")
            opts = self.pick(b"", b"(MAXSIZE 1024) ", b"(DEPTH infinity) ",
                             b"(depth 1 MAXSIZE 4294967296) ", b"(DEPTH 2) ", b"(FOO 1) ")
            value = self.pick(b"NIL", b"nil", self.string(b"v a l"), self.literal(b"bin\x00", True))
            body = self.pick(
                b"GETMETADATA " + opts + self.mailbox() + sp + entry,
                b"SETMETADATA " + self.mailbox() + b" (/private/comment " + value + b")",
                b"SETMETADATA " + self.mailbox() + b" ()")
        elif kind == 24:
            group = self.pick(b"(SELECTED (MessageNew (UID FLAGS) MessageExpunge))",
                              b"(INBOXES NONE)", b"(SUBTREE INBOX (MailboxName))",
                              b"(MAILBOXES (" + self.mailbox() + b") (FlagChange))",
                              b"(PERSONAL ())", b"(BOGUS NONE)", b"(SELECTED-DELAYED (X))")
            body = self.pick(b"NOTIFY NONE", b"NOTIFY SET " + group,
                             b"NOTIFY SET STATUS " + group + sp + group, b"NOTIFY GET",
                             b"COMPRESS DEFLATE", b"COMPRESS", b"compress x-gzip")
        else:
            ret = self.pick(b"", b"RETURN (MIN COUNT) ", b"RETURN () ", b"return (SAVE) ",
                            b"RETURN (FOO) ")
            charset = self.pick(b"", b"", b"CHARSET UTF-8 ", b"CHARSET us-ascii ",
                                b"CHARSET iso-8859-1 ", b"CHARSET KOI9-X ")
            keys = b" ".join(self.search_key() for _ in range(r.randint(1, 3)))
            body = self.pick(b"SEARCH ", b"UID SEARCH ") + ret + charset + keys
        return tag + sp + body + self.pick(b"\r\n", b"\r\n", b"\n")

    def mutate(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.r.randint(1, 3)):
            if not b:
                break
            i = self.r.randrange(len(b))
            op = self.r.random()
            if op < 0.4:
                del b[i]
            elif op < 0.7:
                b.insert(i, self.r.choice(b' ()[]{}<>"\\*%$:,.+~-0123456789\r\n\x00\xffNIL'))
            else:
                b[i] = self.r.choice(b' ()[]{}"\\*0123456789\x00\xffA')
        return bytes(b)

    def stream(self, count: int) -> bytes:
        out = []
        for _ in range(count):
            cmd = self.command()
            if self.r.random() < 0.3:
                cmd = self.mutate(cmd)
            out.append(cmd)
        return b"".join(out)

    def limits(self) -> grammar.Limits:
        if self.r.random() < 0.5:
            return grammar.Limits()
        return grammar.Limits(max_line=self.r.choice([20, 60, 200]),
                              max_command=self.r.choice([100, 400, 4000]),
                              max_literal=self.r.choice([5, 30, 1000]),
                              max_append=self.r.choice([10, 1000]),
                              max_append_total=self.r.choice([30, 4000]),
                              max_discard=self.r.choice([10, 100]),
                              max_depth=self.r.choice([2, 5, 32]),
                              max_args=self.r.choice([5, 20, 10000]))


def run_session(module, chunks: list[bytes], limits, reactions: random.Random) -> list:
    """Feed ``chunks``; react to events as a session would, with choices from ``reactions``
    drawn in event order (both parsers see the same events, so the same choices)."""
    parser = module.Parser(limits=limits)
    out: list = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while True:
            try:
                event = parser.next_event()
            except ImapError as exc:
                out.append(exc)
                continue
            if event is NEED_DATA:
                break
            out.append(event)
            choice = reactions.random()
            if isinstance(event, Continuation) and choice < 0.2:
                parser.refuse_literal()
            elif isinstance(event, Command) and event.name == "IDLE":
                parser.expect_idle_done()
            elif isinstance(event, Command) and event.name == "AUTHENTICATE" and choice < 0.5:
                parser.expect_sasl()
            elif not isinstance(event, Continuation) and choice < 0.1:
                parser.expect_command()
    return out


def random_chunks(data: bytes, rnd: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        k = rnd.choice((0, 1, 2, 3, 7, 16, 64, 500))
        out.append(data[i:i + k])
        i += k
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_agree(seed):
    rnd = random.Random(seed)
    gen = Gen(rnd)
    stream = gen.stream(60)
    limits = gen.limits()
    for cut in range(3):
        chunks = [stream] if cut == 0 else random_chunks(stream, random.Random(f"{seed}/{cut}"))
        native = run_session(grammar, chunks, limits, random.Random(seed))
        reference = run_session(grammar_ref, chunks, limits, random.Random(seed))
        for i, (a, b) in enumerate(zip(native, reference)):
            assert a == b and repr(a) == repr(b), (seed, cut, i, a, b)
        assert len(native) == len(reference), (seed, cut)


def test_generator_covers_commands_and_errors():
    """The random streams exercise valid commands of every kind and errors of many kinds
    (a generator that only produced errors would prove little)."""
    names, messages = set(), set()
    for seed in range(40):
        gen = Gen(random.Random(seed))
        for event in run_session(grammar, [gen.stream(60)], gen.limits(), random.Random(seed)):
            if isinstance(event, Command):
                names.add(event.name)
            elif isinstance(event, ImapError):
                messages.add(event.message.split(" ")[0])
    assert {"LOGIN", "APPEND", "FETCH", "UID FETCH", "SEARCH", "STORE", "SELECT", "LIST",
            "STATUS", "ID", "UID EXPUNGE", "CREATE", "RENAME", "ENABLE", "SORT", "UID THREAD",
            "REPLACE", "SETQUOTA", "SETACL", "GETMETADATA", "SETMETADATA",
            "NOTIFY", "COMPRESS"} <= names
    assert len(messages) >= 15, messages


def test_the_session_reads_commands_with_the_native_parser():
    """The reference is for tests and benchmarks only: ImapSession's hot path is Rust."""
    from stalwart.protocols.imap.session import ImapSession
    from stalwart.store import Store

    session = ImapSession(Store.memory())
    assert isinstance(session.parser, grammar.Parser)
    assert type(session.parser._native).__module__ == "stalwart._native"
    session.receive_data(b"a1 SELECT &Jjo\r\n")
    assert session.parser.buffered() == len(b"a1 SELECT &Jjo\r\n")
