"""The reference IMAP grammar (stalwart.protocols.imap.grammar_ref) and modified UTF-7.

Every case is fed whole, line by line, byte by byte and at random splits, and must give the
same events (gunicorn's treq habit); the Rust parser will be checked against these cases.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest

from stalwart.protocols.base import NEED_DATA
from stalwart.protocols.imap import mutf7
from stalwart.protocols.imap.grammar_ref import Limits, Parser
from stalwart.protocols.imap.types import (
    Append, AppendMessage, Authenticate, Command, Continuation, CopyMove, Create, Enable,
    Expunge, Fetch, FetchItem, Id, IdleDone, ImapError, ListCmd, Login, Lsub, Mailbox,
    Qresync, Rename, SaslResponse, Search, Section, Select, SequenceSet, Status, Store,
)


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


def feed(data: bytes, chunks: list[bytes], **kw) -> list:
    parser = Parser(**kw)
    events = []
    for chunk in chunks:
        parser.receive_data(chunk)
        events += drain(parser)
    assert b"".join(chunks) == data
    return events


def splits(data: bytes) -> dict[str, list[bytes]]:
    rnd = random.Random(len(data))
    out = {"whole": [data], "lines": data.splitlines(keepends=True),
           "bytes": [data[i:i + 1] for i in range(len(data))]}
    for n in range(3):
        cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, 5))) if len(data) > 1 else []
        pieces, last = [], 0
        for cut in cuts + [len(data)]:
            pieces.append(data[last:cut])
            last = cut
        out[f"random{n}"] = pieces
    return out


S = SequenceSet
UTC1 = timezone(timedelta(hours=1))

CASES: list[tuple[bytes, list]] = [
    (b"a1 CAPABILITY\r\n", [Command("a1", "CAPABILITY")]),
    (b"a1 noop\r\nA2 Logout\n", [Command("a1", "NOOP"), Command("A2", "LOGOUT")]),
    (b'a1 LOGIN alice "p w\\"x"\r\n', [Command("a1", "LOGIN", Login("alice", 'p w"x'))]),
    (b"a1 LOGIN {5}\r\nalice {2+}\r\npw\r\n",
     [Continuation("a1", "LOGIN", 5), Command("a1", "LOGIN", Login("alice", "pw"))]),
    (b"a1 AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n",
     [Command("a1", "AUTHENTICATE", Authenticate("PLAIN", b"AGFsaWNlAHB3"))]),
    (b"a1 AUTHENTICATE plain\r\n", [Command("a1", "AUTHENTICATE", Authenticate("PLAIN", None))]),
    (b"a1 ENABLE CONDSTORE utf8=accept\r\n",
     [Command("a1", "ENABLE", Enable(("CONDSTORE", "UTF8=ACCEPT")))]),
    (b'a1 ID ("name" "x" "version" NIL)\r\na2 ID NIL\r\n',
     [Command("a1", "ID", Id((("name", "x"), ("version", None)))), Command("a2", "ID", Id(None))]),
    (b"a1 SELECT inbox\r\n", [Command("a1", "SELECT", Select("INBOX"))]),
    (b"a1 EXAMINE &AOk-t&AOk- (CONDSTORE)\r\n",
     [Command("a1", "EXAMINE", Select("\u00e9t\u00e9", condstore=True))]),
    (b"a1 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
     [Command("a1", "SELECT", Select("INBOX", qresync=Qresync(
         67890007, 20050715194045000, S(((41, 41), (43, 211), (214, 541))))))]),
    (b"a1 CREATE Sent/2024 (USE (\\Sent))\r\n",
     [Command("a1", "CREATE", Create("Sent/2024", ("\\Sent",)))]),
    (b"a1 DELETE x\r\na2 SUBSCRIBE \"a b\"\r\na3 RENAME a b\r\n",
     [Command("a1", "DELETE", Mailbox("x")), Command("a2", "SUBSCRIBE", Mailbox("a b")),
      Command("a3", "RENAME", Rename("a", "b"))]),
    (b'a1 LIST "" *\r\n', [Command("a1", "LIST", ListCmd("", ("*",)))]),
    (b'a1 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("%" "Sent/*") RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n',
     [Command("a1", "LIST", ListCmd("", ("%", "Sent/*"), ("SUBSCRIBED", "RECURSIVEMATCH"),
                                    ("CHILDREN",), ("MESSAGES", "SIZE"), True))]),
    (b"a1 LSUB \"\" %\r\n", [Command("a1", "LSUB", Lsub("", "%"))]),
    (b"a1 STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)\r\n",
     [Command("a1", "STATUS", Status("INBOX", ("MESSAGES", "UIDNEXT", "HIGHESTMODSEQ")))]),
    (b'a1 APPEND Drafts (\\Seen $Label) "05-Jan-2024 10:00:00 +0100" {5}\r\nHello\r\n',
     [Continuation("a1", "APPEND", 5),
      Command("a1", "APPEND", Append("Drafts", (AppendMessage(
          ("\\Seen", "$Label"), datetime(2024, 1, 5, 10, 0, 0, tzinfo=UTC1), b"Hello"),)))]),
    (b"a1 APPEND INBOX {1+}\r\nA (\\Draft) ~{2+}\r\nB\x00\r\n",
     [Command("a1", "APPEND", Append("INBOX", (AppendMessage((), None, b"A"),
                                               AppendMessage(("\\Draft",), None, b"B\x00", True))))]),
    (b"a1 FETCH 1:* ALL\r\n",
     [Command("a1", "FETCH", Fetch(S(((1, None),)), tuple(FetchItem(n) for n in (
         "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")), macro=True))]),
    (b"a1 UID FETCH $ (UID BODY.PEEK[HEADER.FIELDS (From Subject)] BINARY[1.2]<0.10> "
     b"BINARY.SIZE[1] BODY[1.MIME] PREVIEW (LAZY)) (CHANGEDSINCE 12345 VANISHED)\r\n",
     [Command("a1", "UID FETCH", Fetch(S((), True), (
         FetchItem("UID"),
         FetchItem("BODY[]", Section((), "HEADER.FIELDS", ("FROM", "SUBJECT")), peek=True),
         FetchItem("BINARY", Section((1, 2)), (0, 10)),
         FetchItem("BINARY.SIZE", Section((1,))),
         FetchItem("BODY[]", Section((1,), "MIME")),
         FetchItem("PREVIEW", lazy=True)), 12345, True))]),
    (b"a1 FETCH 2,4:3 BODY[]\r\n",
     [Command("a1", "FETCH", Fetch(S(((2, 2), (4, 3))), (FetchItem("BODY[]", Section()),)))]),
    (b"a1 STORE 1:3 +FLAGS.SILENT (\\Deleted foo)\r\na2 UID STORE 5 (UNCHANGEDSINCE 9) FLAGS \\Seen\r\n",
     [Command("a1", "STORE", Store(S(((1, 3),)), "+", True, ("\\Deleted", "foo"))),
      Command("a2", "UID STORE", Store(S(((5, 5),)), "", False, ("\\Seen",), 9))]),
    (b"a1 COPY 1,2 Trash\r\na2 UID MOVE 3:* Archive\r\na3 UID EXPUNGE 4\r\n",
     [Command("a1", "COPY", CopyMove(S(((1, 1), (2, 2))), "Trash")),
      Command("a2", "UID MOVE", CopyMove(S(((3, None),)), "Archive")),
      Command("a3", "UID EXPUNGE", Expunge(S(((4, 4),))))]),
    (b"a1 SEARCH UNSEEN FROM \"bob\" SINCE 1-Feb-2024\r\n",
     [Command("a1", "SEARCH", Search(("and", (("not", ("keyword", "\\Seen")),
                                              ("header", "FROM", "bob"),
                                              ("since", date(2024, 2, 1))))))]),
    (b"a1 UID SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 OR (SUBJECT {2+}\r\n\xc3\xa9) "
     b"NOT 1:5,$ LARGER 100 MODSEQ 7\r\n",
     [Command("a1", "UID SEARCH", Search(("and", (
         ("or", ("header", "SUBJECT", "\u00e9"), ("not", ("seq", S(((1, 5),), True)))),
         ("larger", 100), ("modseq", 7))), ("MIN", "COUNT", "SAVE"), "UTF-8"))]),
    (b"a1 SEARCH (HEADER X-Spam yes KEYWORD $Junk) YOUNGER 60\r\n",
     [Command("a1", "SEARCH", Search(("and", (("and", (("header", "X-SPAM", "yes"),
                                                       ("keyword", "$Junk"))),
                                              ("younger", 60)))))]),
    # -- errors, each answered and followed by a good command
    (b"a1 FROB\r\na2 NOOP\r\n",
     [ImapError("Unknown command FROB", tag="a1"), Command("a2", "NOOP")]),
    (b"\r\n* NOOP\r\na2 NOOP\r\n", [ImapError("Invalid tag"), Command("a2", "NOOP")]),
    (b"a1\r\n", [ImapError("Missing command name", tag="a1")]),
    (b"a1 SELECT\r\n", [ImapError("Expected a space at end of line", tag="a1")]),
    (b"a1 SELECT &Jjo\r\n", [ImapError(
        "Invalid mailbox name: modified UTF-7 shift sequence is not terminated by '-'", tag="a1")]),
    (b"a1 FETCH 0 FLAGS\r\n", [ImapError("Expected a non-zero number", tag="a1")]),
    (b"a1 FETCH 1 FLAGS extra\r\n",
     [ImapError("Expected '(' but found b'extra'", tag="a1")]),
    (b"a1 FETCH 1 (VANISHED)\r\n", [ImapError("Unknown fetch attribute VANISHED", tag="a1")]),
    (b"a1 STORE 1 FLAGS (\\Recent)\r\n",
     [ImapError("\\Recent cannot be set by the client", tag="a1")]),
    (b"a1 FETCH 4294967296 FLAGS\r\n",
     [ImapError("Number 4294967296 is out of range (at most 4294967295)", tag="a1")]),
    (b'a1 LOGIN "a\r\n', [ImapError("Unterminated quoted string", tag="a1")]),
    (b'a1 LOGIN "a {3}\r\n', [ImapError("Unterminated quoted string", tag="a1")]),
    (b"a1 SEARCH CHARSET KOI9-X ALL\r\n",
     [ImapError("Unsupported charset KOI9-X", "NO", tag="a1", code="BADCHARSET (UTF-8 US-ASCII)")]),
    (b"a1 LOGIN {4294967295}\r\na2 NOOP\r\n",
     [ImapError("Literal of 4294967295 octets is over the limit of 1048576 octets",
                tag="a1", code="TOOBIG"), Command("a2", "NOOP")]),
    (b"a1 APPEND INBOX {99999999999}\r\na2 NOOP\r\n",
     [ImapError("Message of 99999999999 octets is over the limit of 52428800 octets", "NO",
                tag="a1", code="TOOBIG"), Command("a2", "NOOP")]),
]


@pytest.mark.parametrize("data, expected", CASES, ids=[c[0][:40].decode("latin-1") for c in CASES])
def test_grammar_cases_at_every_split(data, expected):
    for how, chunks in splits(data).items():
        assert feed(data, chunks) == expected, how


def test_idle_and_sasl_lines_are_not_commands():
    p = Parser()
    p.receive_data(b"a1 IDLE\r\n")
    assert drain(p) == [Command("a1", "IDLE")]
    p.expect_idle_done()
    p.receive_data(b"done\r\na2 AUTHENTICATE PLAIN\r\n")
    assert drain(p)[0] == IdleDone()
    p.expect_sasl()
    p.receive_data(b"AGFsaWNlAHB3\r\n")
    assert drain(p) == [SaslResponse(b"AGFsaWNlAHB3")]
    p.expect_idle_done()
    p.receive_data(b"NOOP\r\n")
    assert drain(p) == [ImapError("Expected DONE to end IDLE")]


def test_refused_nonsync_literal_is_read_and_dropped():
    """RFC 7888 4: the octets of a refused {n+} are on the wire; they must not be parsed as
    commands, and the next command must be understood."""
    limits = Limits(max_literal=10)
    data = b"a1 LOGIN {22+}\r\n" + b"a9 LOGOUT\r\n" * 2 + b" x\r\na2 NOOP\r\n"
    for how, chunks in splits(data).items():
        events = feed(data, chunks, limits=limits)
        assert events == [ImapError("Literal of 22 octets is over the limit of 10 octets",
                                    tag="a1", code="TOOBIG"), Command("a2", "NOOP")], how


def test_refused_sync_literal_keeps_connection_in_step():
    p = Parser(literal_limit=lambda name: 100)
    p.receive_data(b"a1 LOGIN {101}\r\n")
    [err] = drain(p)
    assert err.tag == "a1" and err.code == "TOOBIG" and not err.close
    p.receive_data(b"a2 LOGIN {3}\r\n")
    assert drain(p) == [Continuation("a2", "LOGIN", 3)]
    p.refuse_literal()  # the session said NO instead of "+"
    p.receive_data(b"a3 NOOP\r\n")
    assert drain(p) == [Command("a3", "NOOP")]


def test_huge_nonsync_literal_closes():
    p = Parser(limits=Limits(max_discard=1000))
    p.receive_data(b"a1 APPEND INBOX {4294967295+}\r\n")
    [err] = drain(p)
    assert err.close and err.response().startswith(b"* BYE [TOOBIG]")


def test_line_and_command_limits():
    limits = Limits(max_line=100, max_command=150)
    p = Parser(limits=limits)
    p.receive_data(b"a1 LOGIN " + b"x" * 200 + b"\r\na2 NOOP\r\n")
    assert drain(p) == [ImapError("Line too long (limit 100 octets)", code="TOOBIG"),
                        Command("a2", "NOOP")]
    p.receive_data(b"a3 LOGIN {140}\r\n")
    [err] = drain(p)
    assert err.code == "TOOBIG" and err.tag == "a3"


def test_nesting_and_argument_limits():
    p = Parser(limits=Limits(max_depth=10, max_args=50))
    p.receive_data(b"a1 SEARCH " + b"(" * 11 + b"ALL" + b")" * 11 + b"\r\n")
    p.receive_data(b"a2 SEARCH " + b"NOT " * 11 + b"ALL\r\n")
    p.receive_data(b"a3 FETCH " + b",".join(b"%d" % i for i in range(1, 60)) + b" FLAGS\r\n")
    p.receive_data(b"a4 SEARCH " + b"(" * 5 + b"ALL" + b")" * 5 + b"\r\n")
    events = drain(p)
    assert [e.message for e in events[:3]] == [
        "Parentheses nested too deep (limit 10)", "Search keys nested too deep (limit 10)",
        "Too many arguments (limit 50)"]
    assert events[3] == Command("a4", "SEARCH", Search(("and", (("all",),))))


def test_deep_nesting_default_limit_does_not_recurse_forever():
    p = Parser()
    p.receive_data(b"a1 SEARCH " + b"(" * 50000 + b"\r\n")
    p.receive_data(b"a2 SEARCH " + b"OR ALL " * 9000 + b"ALL\r\n")
    events = drain(p)
    assert [e.tag for e in events] == ["a1", "a2"]
    assert all(isinstance(e, ImapError) and "nested too deep" in e.message for e in events)


def test_thousands_of_pipelined_commands():
    p = Parser()
    p.receive_data(b"".join(b"t%d NOOP\r\n" % i for i in range(5000)) + b"t5000 BAD(\r\n")
    events = drain(p)
    assert len(events) == 5001
    assert events[4999] == Command("t4999", "NOOP") and isinstance(events[5000], ImapError)


def test_utf8_mailbox_names_only_when_enabled():
    p = Parser()
    p.receive_data("a1 SELECT \"Entw\u00fcrfe\"\r\n".encode())
    [err] = drain(p)
    assert "modified UTF-7" in err.message
    p.utf8 = True
    p.receive_data("a2 SELECT \"Entw\u00fcrfe\"\r\na3 SELECT \"\xff\"\r\n".encode("latin-1")
                   .replace(b"\xfc", "\u00fc".encode()))
    events = drain(p)
    assert events[0] == Command("a2", "SELECT", Select("Entw\u00fcrfe"))
    assert events[1].message == "Mailbox name is not valid UTF-8"


def test_bytes_after_starttls_can_be_discarded():
    p = Parser()
    p.receive_data(b"a1 STARTTLS\r\na2 LOGIN evil injected\r\n")
    assert p.next_event() == Command("a1", "STARTTLS")
    assert p.buffered() > 0
    p.discard_buffer()
    assert p.next_event() is NEED_DATA


@pytest.mark.parametrize("name, encoded", [
    ("INBOX", "INBOX"), ("a&b", "a&-b"), ("\u00e9t\u00e9", "&AOk-t&AOk-"),
    ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("\U0001F600", "&2D3eAA-"), ("\u00e9\u00e8", "&AOkA6A-"),
])
def test_mutf7_round_trip(name, encoded):
    assert mutf7.encode(name) == encoded
    assert mutf7.decode(encoded.encode()) == name


@pytest.mark.parametrize("bad", [
    b"&", b"&AOk", b"&AOk-&AOg-", b"&AGE-", b"&A-", b"&AO!-", b"caf\xc3\xa9", b"a\x01b",
    b"&2D0-", b"&AOl-",
])
def test_mutf7_refuses_invalid(bad):
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.decode(bad)


def test_random_garbage_never_crashes():
    rnd = random.Random(7)
    alphabet = b'a1 ()[]{}<>"\\*%$:,.+~-0123456789FETCHSEARCHUIDBODY\r\n\x00\xff'
    for _ in range(300):
        blob = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 120)))
        p = Parser(limits=Limits(max_literal=50, max_discard=100))
        p.receive_data(blob + b"\r\n")
        for _ in range(200):
            try:
                if p.next_event() is NEED_DATA:
                    break
            except ImapError as exc:
                assert exc.reply_code in ("BAD", "NO") and exc.response().endswith(b"\r\n")
