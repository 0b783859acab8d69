"""Pure-Python reference of the IMAP command grammar, incremental and sans-IO.

This is the executable specification the Rust parser (ext/, ``grammar.py``) is tested
against; the session uses the Rust parser, this one serves the differential tests and
``bench/micro/imap_parser.py`` only. Feed bytes with ``receive_data``; call ``next_event`` until
it returns ``NEED_DATA``. It returns ``Command`` (tag, name, typed arguments, see types.py),
``Continuation`` (a synchronizing literal was announced: the session sends "+" or calls
``refuse_literal``), ``IdleDone`` / ``SaslResponse`` in the IDLE and AUTHENTICATE modes, and
raises ``ImapError`` (BAD/NO with a response code, tagged when the tag was read) for every
syntax error or broken limit. After an error the parser is ready for the next command.

Framing (RFC 9051 sections 2.2, 4.3, 7.5; RFC 7888 LITERAL+; RFC 3516 literal8):
a command is one or more lines; a line that ends with ``{n}``, ``{n+}`` or ``~{n}`` (outside
a quoted string) is followed by exactly n octets of literal data and the command goes on
after them. Lines end with CRLF; a bare LF is accepted (widely sent by hand, never
ambiguous here because literal lengths are exact).

Limits (``Limits``), each refused with the response the RFCs name:

- a line longer than ``max_line`` or a command (lines plus literals) longer than
  ``max_command``: ``BAD [TOOBIG]``; the rest of that command is skipped.
- a literal over the limit for its command (``literal_limit(name)``; APPEND gets
  ``max_append``, RFC 7889 APPENDLIMIT): a synchronizing literal is refused before the
  client sends it (``NO [TOOBIG]`` for APPEND, ``BAD [TOOBIG]`` otherwise) and the
  connection stays in step; a non-synchronizing one has already been sent, so it is read
  and dropped (up to ``max_discard`` octets, else BYE: RFC 7888 section 4 lets the server
  close).
- parenthesis nesting deeper than ``max_depth`` and more than ``max_args`` arguments:
  ``BAD``.

Grammar choices: command names and keywords are case-insensitive; numbers are at most
2^32-1 (number64 / mod-sequence at most 2^63-1); tags are ASTRING-CHARs except "+";
8-bit text is accepted in quoted strings and literals when it is valid UTF-8 (RFC 9051
QUOTED-CHAR includes UTF8-2..4); mailbox names are modified UTF-7 unless ``utf8`` is set
(IMAP4rev2 or UTF8=ACCEPT), and invalid ones are refused.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable

from ..base import NEED_DATA, LineReader, LineTooLong, Sentinel
from . import mutf7
from .types import (
    Append, AppendMessage, Authenticate, Command, Continuation, CopyMove, Create, Enable,
    Expunge, Fetch, FetchItem, Id, IdleDone, ImapError, ListCmd, Login, Lsub, Mailbox,
    Qresync, Rename, SaslResponse, Search, Section, Select, SequenceSet, Status, Store,
    QuotaCmd, Replace, Sort, Thread, AclCmd,
)
from .types import Compress, GetMetadata, Notify, NotifyGroup, SetMetadata

__all__ = ["Parser", "Limits", "NEED_DATA", "parse_command"]

MAX_U32 = 2**32 - 1
#: Commands whose literal is a message: APPENDLIMIT applies, a refusal is NO [TOOBIG].
_MESSAGE_COMMANDS = frozenset({"APPEND", "REPLACE", "UID REPLACE"})
MAX_U63 = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    max_line: int = 64 * 1024           # one line, CRLF included (RFC 7162 3: >= 8192)
    max_command: int = 2 * 1024 * 1024  # lines + literals of one non-APPEND command
    max_literal: int = 1024 * 1024      # one literal outside APPEND
    max_append: int = 50 * 1024 * 1024  # one APPEND message (advertised as APPENDLIMIT)
    max_append_total: int = 200 * 1024 * 1024  # all messages of one MULTIAPPEND
    max_discard: int = 50 * 1024 * 1024  # refused non-synchronizing literal we read and drop
    max_depth: int = 32                 # parenthesis nesting
    max_args: int = 10000               # arguments of one command


# --------------------------------------------------------------------------- character classes

def _chars(pred) -> frozenset[int]:
    return frozenset(c for c in range(256) if pred(c))


_CTL = _chars(lambda c: c < 0x20 or c == 0x7F)
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | _CTL
ATOM_CHARS = _chars(lambda c: c < 0x80 and c not in _ATOM_SPECIALS)
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
TAG_CHARS = ASTRING_CHARS - {ord("+")}
LIST_CHARS = ATOM_CHARS | frozenset(b"%*]")
_DIGITS = frozenset(b"0123456789")

_LITERAL_END = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\Z")
_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"')
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}

SYSTEM_FLAGS = {"\\ANSWERED": "\\Answered", "\\FLAGGED": "\\Flagged", "\\DELETED": "\\Deleted",
                "\\SEEN": "\\Seen", "\\DRAFT": "\\Draft", "\\RECENT": "\\Recent"}


def literal_marker(line: bytes) -> tuple[int, bool, bool] | None:
    """(size, non_synchronizing, literal8) if ``line`` (without its line end) ends with a
    literal announcement outside any quoted string, else None."""
    if not line.endswith(b"}"):
        return None
    m = _LITERAL_END.search(line)
    if m is None:
        return None
    if b'"' in _QUOTED.sub(b"", line[:m.start()]):
        return None  # the braces are inside an unterminated quoted string
    return int(m.group(2)), bool(m.group(3)), bool(m.group(1))


class _Bad(Exception):
    """A syntax error inside one command (becomes an ImapError with the command's tag)."""

    def __init__(self, message: str, reply: str = "BAD", code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.reply, self.code = message, reply, code


# --------------------------------------------------------------------------- the cursor

class _Cursor:
    """Reads one complete command: line parts with the literal that follows each but the
    last. A literal marker is always at the very end of its part."""

    def __init__(self, parts: list[bytes], literals: list[tuple[bytes, bool]],
                 limits: Limits, utf8: bool) -> None:
        self.parts = parts
        self.literals = literals
        self.k = 0
        self.line = parts[0]
        self.pos = 0
        self.limits = limits
        self.utf8 = utf8
        self.depth = 0
        self.args = 0

    # -- low level
    def peek(self) -> int:
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_end(self) -> bool:
        return self.k == len(self.parts) - 1 and self.pos >= len(self.line)

    def end(self) -> None:
        if not self.at_end():
            if self.pos >= len(self.line):
                raise _Bad("Unexpected literal")
            raise _Bad(f"Unexpected characters at end of command: "
                       f"{self.line[self.pos:self.pos + 20]!r}")

    def take(self, c: bytes) -> bool:
        if self.line.startswith(c, self.pos):
            self.pos += len(c)
            return True
        return False

    def expect(self, c: bytes, what: str | None = None) -> None:
        if not self.take(c):
            got = self.line[self.pos:self.pos + 10]
            raise _Bad(f"Expected {what or repr(c.decode())} "
                       f"{'at end of line' if not got else f'but found {got!r}'}")

    def sp(self) -> None:
        self.expect(b" ", "a space")

    def arg(self) -> None:
        self.args += 1
        if self.args > self.limits.max_args:
            raise _Bad(f"Too many arguments (limit {self.limits.max_args})")

    def open(self) -> None:
        self.expect(b"(")
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise _Bad(f"Parentheses nested too deep (limit {self.limits.max_depth})")

    def close(self) -> None:
        self.expect(b")")
        self.depth -= 1

    def run(self, allowed: frozenset[int]) -> bytes:
        start = self.pos
        line = self.line
        n = len(line)
        while self.pos < n and line[self.pos] in allowed:
            self.pos += 1
        return line[start:self.pos]

    # -- tokens
    def atom(self, what: str = "an atom") -> str:
        raw = self.run(ATOM_CHARS)
        if not raw:
            got = self.line[self.pos:self.pos + 10]
            raise _Bad(f"Expected {what}" + (f" but found {got!r}" if got else " at end of line"))
        self.arg()
        return raw.decode("ascii")

    def keyword(self) -> str:
        return self.atom("a keyword").upper()

    def number(self, maximum: int = MAX_U32, nonzero: bool = False) -> int:
        raw = self.run(_DIGITS)
        if not raw:
            raise _Bad("Expected a number")
        if len(raw) > 20 or int(raw) > maximum:
            raise _Bad(f"Number {raw[:24].decode()} is out of range (at most {maximum})")
        value = int(raw)
        if nonzero and value == 0:
            raise _Bad("Expected a non-zero number")
        return value

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        line = self.line
        while True:
            if self.pos >= len(line):
                raise _Bad("Unterminated quoted string")
            c = line[self.pos]
            self.pos += 1
            if c == 0x22:
                break
            if c == 0x5C:
                if self.pos >= len(line) or line[self.pos] not in b'"\\':
                    raise _Bad("Invalid escape in quoted string (only \\\" and \\\\)")
                c = line[self.pos]
                self.pos += 1
            elif c in (0x0D, 0x0A, 0x00):
                raise _Bad("Quoted strings must not contain CR, LF or NUL")
            out.append(c)
        return bytes(out)

    def literal(self) -> tuple[bytes, bool]:
        binary = self.take(b"~")
        if self.peek() != 0x7B:
            raise _Bad("Expected a literal")
        marker = literal_marker(self.line)
        if marker is None or self.line.rfind(b"{") != self.pos:
            raise _Bad("Invalid literal announcement")
        if self.k >= len(self.literals):
            raise _Bad("Literal data missing")
        data, is8 = self.literals[self.k]
        self.k += 1
        self.line = self.parts[self.k]
        self.pos = 0
        if is8 != binary:
            raise _Bad("Literal type mismatch")
        return data, binary

    def string(self, allow8: bool = False) -> bytes:
        self.arg()
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B or (c == 0x7E and allow8):
            data, binary = self.literal()
            if not binary and b"\x00" in data:
                raise _Bad("NUL octets are only allowed in literal8 (RFC 3516)")
            return data
        raise _Bad("Expected a quoted string or a literal")

    def astring(self) -> bytes:
        c = self.peek()
        if c in (0x22, 0x7B):
            return self.string()
        raw = self.run(ASTRING_CHARS)
        if not raw:
            raise _Bad("Expected an atom or a string")
        self.arg()
        return raw

    def nstring(self) -> bytes | None:
        if self.line[self.pos:self.pos + 3].upper() == b"NIL" and \
                (self.pos + 3 >= len(self.line) or self.line[self.pos + 3] not in ASTRING_CHARS):
            self.pos += 3
            self.arg()
            return None
        return self.string()

    def text(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Bad(f"{what} is not valid UTF-8") from None

    def mailbox(self) -> str:
        raw = self.astring()
        return self.mailbox_name(raw)

    def mailbox_name(self, raw: bytes, *, pattern: bool = False) -> str:
        if self.utf8:
            name = self.text(raw, "Mailbox name")
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
                raise _Bad("Mailbox name contains control characters")
        else:
            try:
                name = mutf7.decode(raw)
            except mutf7.MUTF7Error as exc:
                raise _Bad(f"Invalid mailbox name: {exc}") from None
        if not pattern and name.upper() == "INBOX":
            return "INBOX"
        return name

    def list_mailbox(self) -> str:
        c = self.peek()
        if c in (0x22, 0x7B):
            raw = self.string()
        else:
            raw = self.run(LIST_CHARS)
            if not raw:
                raise _Bad("Expected a mailbox pattern")
            self.arg()
        return self.mailbox_name(raw, pattern=True)

    def flag(self, allow_recent: bool = True) -> str:
        if self.take(b"\\"):
            name = self.run(ATOM_CHARS)
            if not name:
                raise _Bad("Expected a flag name after '\\'")
            self.arg()
            flag = "\\" + name.decode("ascii")
            canonical = SYSTEM_FLAGS.get(flag.upper())
            if canonical is None:
                raise _Bad(f"Unknown system flag {flag} (RFC 9051 2.3.2)")
            if canonical == "\\Recent" and not allow_recent:
                raise _Bad("\\Recent cannot be set by the client")
            return canonical
        return self.atom("a flag")

    def flag_list(self, allow_recent: bool = True) -> tuple[str, ...]:
        self.open()
        flags: list[str] = []
        if not self.take(b")"):
            while True:
                flags.append(self.flag(allow_recent))
                if self.take(b")"):
                    break
                self.sp()
        else:
            self.depth -= 1
            return ()
        self.depth -= 1
        return tuple(flags)

    def sequence_set(self) -> SequenceSet:
        ranges = []
        saved = False
        while True:
            if self.take(b"$"):
                saved = True  # RFC 9051: sequence-set =/ seq-last-command, also after ","
            else:
                lo = self.seq_number()
                hi = self.seq_number() if self.take(b":") else lo
                ranges.append((lo, hi))
            self.arg()
            if not self.take(b","):
                break
        return SequenceSet(tuple(ranges), saved)

    def seq_number(self) -> int | None:
        if self.take(b"*"):
            return None
        if self.peek() not in _DIGITS:
            raise _Bad("Expected a sequence set")
        return self.number(nonzero=True)

    def date(self) -> date:
        quoted = self.take(b'"')
        m = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})").match(self.line, self.pos)
        if m is None:
            raise _Bad("Expected a date (d-Mon-yyyy)")
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        month = _MONTHS.get(m.group(2).upper().decode())
        try:
            if month is None:
                raise ValueError("month")
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise _Bad(f"Invalid date {m.group(0).decode()!r}") from None

    def date_time(self) -> datetime:
        m = re.compile(rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) '
                       rb'([+-])([0-9]{2})([0-9]{2})"').match(self.line, self.pos)
        if m is None:
            raise _Bad('Expected a date-time ("dd-Mon-yyyy hh:mm:ss +zzzz")')
        self.pos = m.end()
        self.arg()
        g = [x.decode() for x in m.groups()]
        month = _MONTHS.get(g[1].upper())
        try:
            if month is None:
                raise ValueError("month")
            offset = timedelta(hours=int(g[7]), minutes=int(g[8]))
            if offset >= timedelta(hours=24):
                raise ValueError("zone")
            tz = timezone(-offset if g[6] == "-" else offset)
            return datetime(int(g[2]), month, int(g[0].strip()), int(g[3]), int(g[4]),
                            int(g[5]), tzinfo=tz)
        except ValueError:
            raise _Bad(f"Invalid date-time {m.group(0).decode()}") from None

    def paren_list(self, item: Callable[[], object]) -> tuple:
        """``"(" item *(SP item) ")"``, also accepting ``()``."""
        self.open()
        out = []
        if not self.take(b")"):
            while True:
                out.append(item())
                if self.take(b")"):
                    break
                self.sp()
        self.depth -= 1
        return tuple(out)


# --------------------------------------------------------------------------- commands

def _no_args(c: _Cursor) -> None:
    return None


def _login(c: _Cursor) -> Login:
    c.sp()
    user = c.text(c.astring(), "User name")
    c.sp()
    password = c.text(c.astring(), "Password")
    return Login(user, password)


def _authenticate(c: _Cursor) -> Authenticate:
    c.sp()
    mech = c.atom("a SASL mechanism").upper()
    initial = None
    if c.take(b" "):
        initial = c.run(frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  b"0123456789+/="))
        if not initial:
            raise _Bad("Expected a base64 initial response or '='")
        c.arg()
    return Authenticate(mech, initial)


def _enable(c: _Cursor) -> Enable:
    caps = []
    while c.take(b" "):
        caps.append(c.atom("a capability").upper())
    if not caps:
        raise _Bad("ENABLE needs at least one capability")
    return Enable(tuple(caps))


def _id(c: _Cursor) -> Id:
    c.sp()
    if c.line[c.pos:c.pos + 3].upper() == b"NIL":
        c.pos += 3
        return Id(None)
    c.open()
    params: list[tuple[str, str | None]] = []
    if not c.take(b")"):
        while True:
            key = c.text(c.string(), "ID field")
            c.sp()
            value = c.nstring()
            params.append((key, None if value is None else c.text(value, "ID value")))
            if len(params) > 30:
                raise _Bad("Too many ID fields (RFC 2971: at most 30)")
            if c.take(b")"):
                break
            c.sp()
    c.depth -= 1
    return Id(tuple(params))


def _mailbox_only(c: _Cursor) -> Mailbox:
    c.sp()
    return Mailbox(c.mailbox())


def _rename(c: _Cursor) -> Rename:
    c.sp()
    old = c.mailbox()
    c.sp()
    return Rename(old, c.mailbox())


def _create(c: _Cursor) -> Create:
    c.sp()
    name = c.mailbox()
    use: tuple[str, ...] = ()
    if c.take(b" "):
        c.open()
        if c.keyword() != "USE":
            raise _Bad("Unknown CREATE parameter (only USE, RFC 6154)")
        c.sp()
        use = c.paren_list(lambda: (c.expect(b"\\"), "\\" + c.atom("a special-use attribute"))[1])
        c.close()
    return Create(name, use)


def _select(c: _Cursor) -> Select:
    c.sp()
    name = c.mailbox()
    condstore = False
    qresync = None
    if c.take(b" "):
        c.open()
        while True:
            param = c.keyword()
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC":
                c.sp()
                qresync = _qresync(c)
            else:
                raise _Bad(f"Unknown SELECT parameter {param}")
            if c.take(b")"):
                break
            c.sp()
        c.depth -= 1
    return Select(name, condstore, qresync)


def _qresync(c: _Cursor) -> Qresync:
    c.open()
    uidvalidity = c.number(nonzero=True)
    c.sp()
    modseq = c.number(MAX_U63)
    known = match = None
    if c.take(b" "):
        if c.peek() == 0x28:
            match = _seq_match(c)
        else:
            known = c.sequence_set()
            if known.saved:
                raise _Bad("$ is not allowed in QRESYNC")
            if c.take(b" "):
                match = _seq_match(c)
    c.close()
    return Qresync(uidvalidity, modseq, known, match)


def _seq_match(c: _Cursor) -> tuple[SequenceSet, SequenceSet]:
    c.open()
    seqs = c.sequence_set()
    c.sp()
    uids = c.sequence_set()
    c.close()
    return seqs, uids


_LIST_SELECT = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_LIST_RETURN = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", "MYRIGHTS"}
STATUS_ITEMS = {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
                "HIGHESTMODSEQ", "RECENT", "APPENDLIMIT"}


def _list(c: _Cursor) -> ListCmd:
    c.sp()
    select: tuple[str, ...] = ()
    extended = False
    if c.peek() == 0x28:
        extended = True
        select = c.paren_list(c.keyword)
        for opt in select:
            if opt not in _LIST_SELECT:
                raise _Bad(f"Unknown LIST selection option {opt}")
        if "RECURSIVEMATCH" in select and len(set(select) - {"RECURSIVEMATCH", "REMOTE"}) == 0:
            raise _Bad("RECURSIVEMATCH needs another selection option (RFC 5258 3)")
        c.sp()
    reference = c.mailbox_name(c.astring(), pattern=True)
    c.sp()
    if c.peek() == 0x28:
        extended = True
        patterns = c.paren_list(c.list_mailbox)
        if not patterns:
            raise _Bad("Empty pattern list")
    else:
        patterns = (c.list_mailbox(),)
    returns: list[str] = []
    status: tuple[str, ...] = ()
    if c.take(b" "):
        extended = True
        if c.keyword() != "RETURN":
            raise _Bad("Expected RETURN")
        c.sp()
        c.open()
        if not c.take(b")"):
            while True:
                opt = c.keyword()
                if opt not in _LIST_RETURN:
                    raise _Bad(f"Unknown LIST return option {opt}")
                if opt == "STATUS":
                    c.sp()
                    status = _status_items(c)
                else:
                    returns.append(opt)
                if c.take(b")"):
                    break
                c.sp()
        c.depth -= 1
    return ListCmd(reference, tuple(patterns), select, tuple(returns), status, extended)


def _lsub(c: _Cursor) -> Lsub:
    c.sp()
    reference = c.mailbox_name(c.astring(), pattern=True)
    c.sp()
    return Lsub(reference, c.list_mailbox())


def _status_items(c: _Cursor) -> tuple[str, ...]:
    items = c.paren_list(c.keyword)
    if not items:
        raise _Bad("Expected at least one status item")
    for item in items:
        if item not in STATUS_ITEMS:
            raise _Bad(f"Unknown STATUS item {item}")
    return items


def _status(c: _Cursor) -> Status:
    c.sp()
    name = c.mailbox()
    c.sp()
    return Status(name, _status_items(c))


def _append_message(c: _Cursor) -> AppendMessage:
    """``[flag-list SP] [date-time SP] literal`` (RFC 9051 append-message, RFC 3516)."""
    flags: tuple[str, ...] = ()
    when = None
    if c.peek() == 0x28:
        flags = c.flag_list(allow_recent=False)
        c.sp()
    if c.peek() == 0x22:
        when = c.date_time()
        c.sp()
    if c.peek() not in (0x7B, 0x7E):
        raise _Bad("Expected the message as a literal")
    data, binary = c.literal()
    c.arg()
    return AppendMessage(flags, when, data, binary)


def _append(c: _Cursor) -> Append:
    c.sp()
    name = c.mailbox()
    messages = []
    while c.take(b" "):
        messages.append(_append_message(c))
    if not messages:
        raise _Bad("APPEND needs a message")
    return Append(name, tuple(messages))


def _replace(c: _Cursor) -> Replace:
    """RFC 8508: ``REPLACE SP seq-number SP mailbox SP append-message`` (UID form too)."""
    c.sp()
    number = c.number(nonzero=True)
    c.sp()
    name = c.mailbox()
    c.sp()
    return Replace(number, name, _append_message(c))


# -- QUOTA (RFC 9208)

_QUOTA_RESOURCES = frozenset({"STORAGE", "MESSAGE", "MAILBOX", "ANNOTATION-STORAGE"})


def _quota_root(c: _Cursor) -> QuotaCmd:
    c.sp()
    return QuotaCmd(c.text(c.astring(), "Quota root"))


def _acl_identifier(c: _Cursor) -> AclCmd:
    """RFC 4314 3.2/3.4: ``mailbox SP identifier`` (DELETEACL, LISTRIGHTS)."""
    c.sp()
    name = c.mailbox()
    c.sp()
    return AclCmd(name, c.text(c.astring(), "Identifier"))


def _setacl(c: _Cursor) -> AclCmd:
    """RFC 4314 3.1: ``SETACL SP mailbox SP identifier SP mod-rights``."""
    cmd = _acl_identifier(c)
    c.sp()
    return AclCmd(cmd.name, cmd.identifier, c.text(c.astring(), "Rights"))


def _set_quota(c: _Cursor) -> QuotaCmd:
    c.sp()
    root = c.text(c.astring(), "Quota root")
    c.sp()

    def resource() -> tuple[str, int]:
        name = c.atom("a resource name").upper()
        c.sp()
        return name, c.number(MAX_U63)

    return QuotaCmd(root, c.paren_list(resource))


def _copy_move(c: _Cursor) -> CopyMove:
    c.sp()
    seq = c.sequence_set()
    c.sp()
    return CopyMove(seq, c.mailbox())


def _uid_expunge(c: _Cursor) -> Expunge:
    c.sp()
    return Expunge(c.sequence_set())


# -- STORE

def _store(c: _Cursor) -> Store:
    c.sp()
    seq = c.sequence_set()
    c.sp()
    unchanged = None
    if c.peek() == 0x28:
        c.open()
        while True:
            mod = c.keyword()
            if mod != "UNCHANGEDSINCE":
                raise _Bad(f"Unknown STORE modifier {mod}")
            c.sp()
            unchanged = c.number(MAX_U63)
            if c.take(b")"):
                break
            c.sp()
        c.depth -= 1
        c.sp()
    mode = ""
    if c.take(b"+"):
        mode = "+"
    elif c.take(b"-"):
        mode = "-"
    item = c.keyword()
    if item not in ("FLAGS", "FLAGS.SILENT"):
        raise _Bad(f"Expected FLAGS or FLAGS.SILENT, not {item}")
    c.sp()
    if c.peek() == 0x28:
        flags = c.flag_list(allow_recent=False)
    else:
        items = [c.flag(allow_recent=False)]
        while c.take(b" "):
            items.append(c.flag(allow_recent=False))
        flags = tuple(items)
    return Store(seq, mode, item.endswith(".SILENT"), flags, unchanged)


# -- FETCH

_SIMPLE_ATTS = {"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODYSTRUCTURE", "UID",
                "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ"}
_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SECTION_WORD = re.compile(rb"[A-Za-z.]+")


def _section(c: _Cursor, binary: bool) -> Section:
    c.expect(b"[")
    part: list[int] = []
    text = None
    fields: tuple[str, ...] = ()
    dot = False
    while c.peek() in _DIGITS:
        part.append(c.number(nonzero=True))
        if len(part) > c.limits.max_depth:
            raise _Bad("Section part path too deep")
        dot = c.take(b".")
        if not dot:
            break
    if dot and c.peek() == 0x5D:
        raise _Bad("Section ends with '.'")
    if part and not dot and c.peek() != 0x5D:
        raise _Bad("Invalid section")
    if c.peek() != 0x5D:
        if binary:
            raise _Bad("BINARY sections are part numbers only (RFC 3516)")
        m = _SECTION_WORD.match(c.line, c.pos)
        if m is None:
            raise _Bad("Invalid section")
        word = m.group(0).upper().decode()
        c.pos = m.end()
        if word not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME") or \
                (word == "MIME" and not part):
            raise _Bad(f"Invalid section text {word}")
        text = word
        if word.startswith("HEADER.FIELDS"):
            c.sp()
            names = c.paren_list(lambda: c.text(c.astring(), "Header name").upper())
            if not names:
                raise _Bad("Expected at least one header field name")
            for name in names:
                if not name or any(ord(ch) <= 32 or ord(ch) > 126 or ch == ":" for ch in name):
                    raise _Bad(f"Invalid header field name {name!r}")
            fields = names
    c.expect(b"]")
    return Section(tuple(part), text, fields)


def _partial(c: _Cursor) -> tuple[int, int] | None:
    """RFC 9051: ``partial = "<" number64 "." nz-number64 ">"`` (64-bit since IMAP4rev2,
    which allows messages over 4 GiB; RFC 3501 had 32-bit numbers)."""
    if not c.take(b"<"):
        return None
    start = c.number(MAX_U63)
    c.expect(b".")
    count = c.number(MAX_U63, nonzero=True)
    c.expect(b">")
    return start, count


def _fetch_att(c: _Cursor) -> FetchItem:
    m = re.compile(rb"[A-Za-z0-9.]+").match(c.line, c.pos)
    if m is None:
        raise _Bad("Expected a fetch attribute")
    name = m.group(0).upper().decode()
    c.pos = m.end()
    c.arg()
    if name in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE") and c.peek() == 0x5B:
        binary = name.startswith("BINARY")
        section = _section(c, binary)
        if name == "BINARY.SIZE":
            return FetchItem("BINARY.SIZE", section)
        partial = _partial(c)
        base = "BINARY" if binary else "BODY[]"
        return FetchItem(base, section, partial, peek=name.endswith(".PEEK"))
    if name == "BODY":
        return FetchItem("BODY")
    if name == "PREVIEW":
        lazy = False
        m = re.compile(rb" \(LAZY\)", re.I).match(c.line, c.pos)
        if m is not None:
            c.pos = m.end()
            lazy = True
        return FetchItem("PREVIEW", lazy=lazy)
    if name in _SIMPLE_ATTS:
        return FetchItem(name)
    raise _Bad(f"Unknown fetch attribute {name}")


def _fetch(c: _Cursor) -> Fetch:
    c.sp()
    seq = c.sequence_set()
    c.sp()
    macro = False
    if c.peek() == 0x28:
        items = c.paren_list(lambda: _fetch_att(c))
        if not items:
            raise _Bad("Expected at least one fetch attribute")
    else:
        m = re.compile(rb"[A-Za-z]+").match(c.line, c.pos)
        word = m.group(0).upper().decode() if m else ""
        end = m.end() if m else c.pos
        if word in _MACROS and (end >= len(c.line) or c.line[end] == 0x20):
            c.pos = end
            items = tuple(FetchItem(n) for n in _MACROS[word])
            macro = True
        else:
            items = (_fetch_att(c),)
    changed = None
    vanished = False
    if c.take(b" "):
        c.open()
        while True:
            mod = c.keyword()
            if mod == "CHANGEDSINCE":
                c.sp()
                changed = c.number(MAX_U63)
            elif mod == "VANISHED":
                vanished = True
            else:
                raise _Bad(f"Unknown FETCH modifier {mod}")
            if c.take(b")"):
                break
            c.sp()
        c.depth -= 1
    if vanished and changed is None:
        raise _Bad("VANISHED needs CHANGEDSINCE (RFC 7162 3.2.6)")
    return Fetch(seq, items, changed, vanished, macro)


# -- SEARCH

_SIMPLE_KEYS: dict[str, tuple] = {
    "ALL": ("all",),
    "ANSWERED": ("keyword", "\\Answered"),
    "DELETED": ("keyword", "\\Deleted"),
    "DRAFT": ("keyword", "\\Draft"),
    "FLAGGED": ("keyword", "\\Flagged"),
    "SEEN": ("keyword", "\\Seen"),
    "RECENT": ("recent",),
    "NEW": ("and", (("recent",), ("not", ("keyword", "\\Seen")))),
    "OLD": ("not", ("recent",)),
    "UNANSWERED": ("not", ("keyword", "\\Answered")),
    "UNDELETED": ("not", ("keyword", "\\Deleted")),
    "UNDRAFT": ("not", ("keyword", "\\Draft")),
    "UNFLAGGED": ("not", ("keyword", "\\Flagged")),
    "UNSEEN": ("not", ("keyword", "\\Seen")),
}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_STRING_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO", "BODY", "TEXT"}
_SEARCH_RETURN = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}


def _search_string(c: _Cursor, charset: str) -> str:
    raw = c.astring()
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        raise _Bad(f"Search string is not valid {charset}") from None


def _search_key(c: _Cursor, charset: str) -> tuple:
    c.arg()
    p = c.peek()
    if p == 0x28:
        keys = c.paren_list(lambda: _search_key(c, charset))
        if not keys:
            raise _Bad("Empty search key list")
        return keys[0] if len(keys) == 1 else ("and", keys)
    if p in _DIGITS or p in (0x2A, 0x24):
        return ("seq", c.sequence_set())
    word = c.keyword()
    simple = _SIMPLE_KEYS.get(word)
    if simple is not None:
        return simple
    if word in _DATE_KEYS:
        c.sp()
        return (word.lower(), c.date())
    if word in _STRING_KEYS:
        c.sp()
        value = _search_string(c, charset)
        if word in ("BODY", "TEXT"):
            return (word.lower(), value)
        return ("header", word, value)
    if word in ("KEYWORD", "UNKEYWORD"):
        c.sp()
        kw = ("keyword", c.flag())
        return kw if word == "KEYWORD" else ("not", kw)
    if word == "HEADER":
        c.sp()
        field = c.text(c.astring(), "Header name").upper()
        c.sp()
        return ("header", field, _search_string(c, charset))
    if word in ("LARGER", "SMALLER"):
        c.sp()
        return (word.lower(), c.number(MAX_U63))
    if word == "NOT":
        c.sp()
        c.depth += 1
        if c.depth > c.limits.max_depth:
            raise _Bad(f"Search keys nested too deep (limit {c.limits.max_depth})")
        key = _search_key(c, charset)
        c.depth -= 1
        return ("not", key)
    if word == "OR":
        c.sp()
        c.depth += 1
        if c.depth > c.limits.max_depth:
            raise _Bad(f"Search keys nested too deep (limit {c.limits.max_depth})")
        a = _search_key(c, charset)
        c.sp()
        b = _search_key(c, charset)
        c.depth -= 1
        return ("or", a, b)
    if word == "UID":
        c.sp()
        return ("uid", c.sequence_set())
    if word == "MODSEQ":
        c.sp()
        if c.peek() == 0x22:  # entry-name entry-type-req: accepted, the value is what counts
            c.quoted()
            c.sp()
            entry_type = c.keyword()
            if entry_type not in ("PRIV", "SHARED", "ALL"):
                raise _Bad("Invalid MODSEQ entry type")
            c.sp()
        return ("modseq", c.number(MAX_U63))
    if word in ("OLDER", "YOUNGER"):
        c.sp()
        return (word.lower(), c.number(nonzero=True))
    raise _Bad(f"Unknown search key {word}")


def _codec(charset: str) -> str:
    """The Python codec of a CHARSET name; NO [BADCHARSET] when there is none. Codecs that
    are not text encodings (rot13, base64, zlib: bytes to bytes) are no charset either."""
    try:
        info = codecs.lookup(charset)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise _Bad(f"Unsupported charset {charset}", "NO", "BADCHARSET (UTF-8 US-ASCII)")
    return info.name


def _charset(c: _Cursor) -> tuple[str, str]:
    """A CHARSET argument: (name as sent upper case, Python codec)."""
    charset = c.text(c.astring(), "Charset").upper()
    return charset, _codec(charset)


def _search_criteria(c: _Cursor) -> tuple[str, tuple]:
    """``charset 1*(SP search-key)`` of SORT and THREAD (the charset is mandatory there)."""
    charset, codec = _charset(c)
    keys = []
    while c.take(b" "):
        keys.append(_search_key(c, codec))
    if not keys:
        raise _Bad("Expected search keys")
    return charset, ("and", tuple(keys))


SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                       "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})


def _sort(c: _Cursor) -> Sort:
    """RFC 5256 3: ``SORT SP sort-criteria SP search-criteria``; DISPLAY keys RFC 5957."""
    c.sp()

    def criterion() -> tuple[bool, str]:
        word = c.atom("a sort key").upper()
        reverse = word == "REVERSE"
        if reverse:
            c.sp()
            word = c.atom("a sort key").upper()
        if word not in SORT_KEYS:
            raise _Bad(f"Unknown sort key {word[:40]}")
        return reverse, word

    criteria = c.paren_list(criterion)
    if not criteria:
        raise _Bad("Expected at least one sort key")
    c.sp()
    charset, key = _search_criteria(c)
    return Sort(criteria, key, charset)


def _thread(c: _Cursor) -> Thread:
    """RFC 5256 3: ``THREAD SP thread-alg SP search-criteria``."""
    c.sp()
    algorithm = c.atom("a threading algorithm").upper()
    if algorithm not in THREAD_ALGORITHMS:
        raise _Bad(f"Unsupported threading algorithm {algorithm[:40]}")
    c.sp()
    charset, key = _search_criteria(c)
    return Thread(algorithm, key, charset)


def _search(c: _Cursor) -> Search:
    c.sp()
    returns = None
    charset = None
    m = re.compile(rb"RETURN ", re.I).match(c.line, c.pos)
    if m:
        c.pos = m.end()
        returns = c.paren_list(c.keyword)
        for opt in returns:
            if opt not in _SEARCH_RETURN:
                raise _Bad(f"Unknown SEARCH return option {opt}")
        c.sp()
    m = re.compile(rb"CHARSET ", re.I).match(c.line, c.pos)
    codec = "utf-8"
    if m:
        c.pos = m.end()
        charset, codec = _charset(c)
        c.sp()
    keys = [_search_key(c, codec)]
    while c.take(b" "):
        keys.append(_search_key(c, codec))
    return Search(("and", tuple(keys)), returns, charset)


_COMMANDS: dict[str, Callable[[_Cursor], object]] = {
    "CAPABILITY": _no_args, "NOOP": _no_args, "LOGOUT": _no_args, "STARTTLS": _no_args,
    "NAMESPACE": _no_args, "IDLE": _no_args, "CHECK": _no_args, "CLOSE": _no_args,
    "UNSELECT": _no_args, "EXPUNGE": _no_args,
    "LOGIN": _login, "AUTHENTICATE": _authenticate, "ENABLE": _enable, "ID": _id,
    "SELECT": _select, "EXAMINE": _select, "CREATE": _create, "DELETE": _mailbox_only,
    "RENAME": _rename, "SUBSCRIBE": _mailbox_only, "UNSUBSCRIBE": _mailbox_only,
    "LIST": _list, "LSUB": _lsub, "STATUS": _status, "APPEND": _append,
    "SEARCH": _search, "FETCH": _fetch, "STORE": _store, "COPY": _copy_move,
    "MOVE": _copy_move, "SORT": _sort, "THREAD": _thread, "REPLACE": _replace,
    "GETQUOTA": _quota_root, "GETQUOTAROOT": _mailbox_only, "SETQUOTA": _set_quota,
    "SETACL": _setacl, "DELETEACL": _acl_identifier, "GETACL": _mailbox_only,
    "LISTRIGHTS": _acl_identifier, "MYRIGHTS": _mailbox_only,
}
# -- COMPRESS (RFC 4978), GETMETADATA/SETMETADATA (RFC 5464), NOTIFY (RFC 5465)

def _compress(c: _Cursor) -> Compress:
    """``COMPRESS SP algorithm`` (the handler refuses what it does not support)."""
    c.sp()
    return Compress(c.atom("a compression mechanism").upper())


def _metadata_entry(c: _Cursor) -> str:
    """An entry name (astring; its rules are checked by the handler, RFC 5464 3.2)."""
    return c.text(c.astring(), "Entry name")


_DEPTHS = {"0": 0, "1": 1, "INFINITY": None}


def _getmetadata(c: _Cursor) -> GetMetadata:
    """``GETMETADATA [SP "(" option *(SP option) ")"] SP mailbox SP (entry / "(" entries ")")``
    with ``option = "MAXSIZE" SP number / "DEPTH" SP ("0" / "1" / "infinity")``."""
    c.sp()
    maxsize: int | None = None
    depth: int | None = 0
    if c.peek() == 0x28:
        c.open()
        while True:
            option = c.keyword()
            c.sp()
            if option == "MAXSIZE":
                maxsize = c.number()
            elif option == "DEPTH":
                word = c.atom("0, 1 or infinity").upper()
                if word not in _DEPTHS:
                    raise _Bad(f"Invalid DEPTH {word[:20]} (0, 1 or infinity)")
                depth = _DEPTHS[word]
            else:
                raise _Bad(f"Unknown GETMETADATA option {option[:40]}")
            if c.take(b")"):
                break
            c.sp()
        c.depth -= 1
        c.sp()
    name = c.mailbox()
    c.sp()
    if c.peek() == 0x28:
        entries = c.paren_list(lambda: _metadata_entry(c))
        if not entries:
            raise _Bad("Expected at least one entry name")
    else:
        entries = (_metadata_entry(c),)
    return GetMetadata(name, entries, maxsize, depth)


def _setmetadata(c: _Cursor) -> SetMetadata:
    """``SETMETADATA SP mailbox SP "(" entry SP value *(SP entry SP value) ")"`` with
    ``value = nstring / literal8``."""
    c.sp()
    name = c.mailbox()
    c.sp()

    def pair() -> tuple[str, bytes | None]:
        entry = _metadata_entry(c)
        c.sp()
        value = c.string(allow8=True) if c.peek() == 0x7E else c.nstring()
        return entry, value

    entries = c.paren_list(pair)
    if not entries:
        raise _Bad("Expected at least one entry and value")
    return SetMetadata(name, entries)


NOTIFY_FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL",
                            "SUBSCRIBED", "SUBTREE", "MAILBOXES"})


def _notify_group(c: _Cursor) -> NotifyGroup:
    """``"(" filter-mailboxes SP events ")"``; events: ``"(" event *(SP event) ")"`` or
    NONE; ``MessageNew`` may carry ``SP "(" fetch-att *(SP fetch-att) ")"``."""
    c.open()
    what = c.atom("a mailbox filter").upper()
    if what not in NOTIFY_FILTERS:
        raise _Bad(f"Unknown NOTIFY mailbox filter {what[:40]}")
    mailboxes: tuple[str, ...] = ()
    if what in ("SUBTREE", "MAILBOXES"):
        c.sp()
        mailboxes = c.paren_list(c.mailbox) if c.peek() == 0x28 else (c.mailbox(),)
        if not mailboxes:
            raise _Bad("Expected at least one mailbox")
    c.sp()
    fetch: tuple[FetchItem, ...] = ()
    if c.peek() == 0x28:
        c.open()
        events = []
        while True:
            event = c.atom("an event").upper()
            if event == "MESSAGENEW" and c.line.startswith(b" (", c.pos):
                c.sp()
                fetch = c.paren_list(lambda: _fetch_att(c))
            events.append(event)
            if c.take(b")"):
                break
            c.sp()
        c.depth -= 1
    else:
        if c.keyword() != "NONE":
            raise _Bad("Expected a list of events or NONE")
        events = ["NONE"]
    c.close()
    return NotifyGroup(what, mailboxes, tuple(events), fetch)


def _notify(c: _Cursor) -> Notify:
    """``NOTIFY SP "NONE"`` or ``NOTIFY SP "SET" [SP "STATUS"] 1*(SP event-group)``."""
    c.sp()
    word = c.keyword()
    if word == "NONE":
        return Notify(None)
    if word != "SET":
        raise _Bad("Expected NOTIFY SET or NOTIFY NONE")
    c.sp()
    status = False
    if c.peek() != 0x28:
        if c.keyword() != "STATUS":
            raise _Bad("Expected STATUS or an event group")
        status = True
        c.sp()
    groups = [_notify_group(c)]
    while c.take(b" "):
        groups.append(_notify_group(c))
    return Notify(tuple(groups), status)


_COMMANDS.update({"COMPRESS": _compress, "GETMETADATA": _getmetadata,
                  "SETMETADATA": _setmetadata, "NOTIFY": _notify})
_UID_COMMANDS: dict[str, Callable[[_Cursor], object]] = {
    "FETCH": _fetch, "STORE": _store, "COPY": _copy_move, "MOVE": _copy_move,
    "SEARCH": _search, "EXPUNGE": _uid_expunge, "SORT": _sort, "THREAD": _thread,
    "REPLACE": _replace,
}
COMMAND_NAMES = frozenset(_COMMANDS) | frozenset(f"UID {n}" for n in _UID_COMMANDS)


def _tag_and_name(line: bytes) -> tuple[str | None, str | None]:
    """The tag and command name at the start of a command's first line, if readable."""
    i = 0
    n = len(line)
    while i < n and line[i] in TAG_CHARS:
        i += 1
    if i == 0 or i >= n or line[i] != 0x20:
        return (line[:i].decode("ascii") if 0 < i and i == n else None), None
    tag = line[:i].decode("ascii")
    j = i + 1
    while j < n and line[j] in ATOM_CHARS:
        j += 1
    name = line[i + 1:j].decode("ascii").upper()
    if name == "UID" and line[j:j + 1] == b" ":
        k = j + 1
        while k < n and line[k] in ATOM_CHARS:
            k += 1
        name = "UID " + line[j + 1:k].decode("ascii").upper()
    return tag, name or None


def parse_command(parts: list[bytes], literals: list[tuple[bytes, bool]], *,
                  limits: Limits = Limits(), utf8: bool = False) -> Command:
    """Parse one complete command (its line parts and literals). Raises ImapError."""
    tag, name = _tag_and_name(parts[0])
    if tag is None:
        raise ImapError("Invalid tag" if parts[0].strip() else "Empty command line")
    if name is None:
        raise ImapError("Missing command name", tag=tag)
    c = _Cursor(parts, literals, limits, utf8)
    c.pos = len(tag) + 1
    c.run(ATOM_CHARS)  # the command name, already read
    try:
        if name.startswith("UID "):
            c.take(b" ")
            c.run(ATOM_CHARS)
            fn = _UID_COMMANDS.get(name[4:])
        else:
            fn = _COMMANDS.get(name)
        if fn is None:
            raise _Bad(f"Unknown command {name[:40]}")
        args = fn(c)
        c.end()
    except _Bad as exc:
        raise ImapError(exc.message, exc.reply, tag=tag, code=exc.code) from None
    return Command(tag, name, args)


# --------------------------------------------------------------------------- the framer

class Parser:
    """Incremental IMAP command reader: bytes in, events out (see the module docstring).

    ``literal_limit(name)`` (optional) gives the largest literal the session accepts for
    command ``name`` now (e.g. small before authentication); the default applies
    ``Limits.max_append`` to APPEND and ``Limits.max_literal`` to the rest.
    """

    COMMAND, IDLE, SASL = "command", "idle", "sasl"

    def __init__(self, limits: Limits | None = None, *, utf8: bool = False,
                 literal_limit: Callable[[str], int] | None = None) -> None:
        self.limits = limits or Limits()
        self.utf8 = utf8
        self.mode = self.COMMAND
        self._literal_limit = literal_limit
        self._reader = LineReader(self.limits.max_line, reply_code="BAD")
        self._reset()
        self._discard = 0
        self._skipping = False

    # -- public
    def receive_data(self, data: bytes) -> None:
        self._reader.feed(data)

    def buffered(self) -> int:
        """Octets received and not yet consumed (must be 0 when STARTTLS starts)."""
        return len(self._reader)

    def discard_buffer(self) -> bytes:
        """Drop every buffered octet (the plaintext pipelined behind STARTTLS)."""
        self._reset()
        return self._reader.drain()

    def expect_idle_done(self) -> None:
        self.mode = self.IDLE

    def expect_sasl(self) -> None:
        self.mode = self.SASL

    def expect_command(self) -> None:
        self.mode = self.COMMAND

    def refuse_literal(self) -> None:
        """The session answered a ``Continuation`` with a tagged response instead of "+":
        the client will not send the literal, so forget the command."""
        self._reset()

    def next_event(self):
        """The next event, or ``NEED_DATA``. Raises ``ImapError`` for a bad command."""
        while True:
            if self._discard:
                chunk = self._reader.take(self._discard)
                self._discard -= len(chunk)
                if self._discard:
                    return NEED_DATA
                continue
            if self._literal_left:
                chunk = self._reader.take(self._literal_left)
                if not chunk:
                    return NEED_DATA
                self._literal_buf += chunk
                self._literal_left -= len(chunk)
                if self._literal_left:
                    return NEED_DATA
                self._literals.append((bytes(self._literal_buf), self._literal8))
                self._literal_buf = bytearray()
                continue
            try:
                raw = self._reader.next_line()
            except LineTooLong:
                tag = self._tag
                skipping = self._skipping
                self._reset()
                if skipping:
                    continue
                raise ImapError(f"Line too long (limit {self.limits.max_line} octets)",
                                tag=tag, code="TOOBIG") from None
            if raw is NEED_DATA:
                return NEED_DATA
            line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            event = self._line(line)
            if event is not None:
                return event

    # -- internals
    def _reset(self) -> None:
        self._parts: list[bytes] = []
        self._literals: list[tuple[bytes, bool]] = []
        self._size = 0
        self._tag: str | None = None
        self._name: str | None = None
        self._literal_left = 0
        self._literal8 = False
        self._literal_buf = bytearray()
        self._skipping = False

    def _line(self, line: bytes) -> object | Sentinel | None:
        if self._skipping:
            marker = literal_marker(line)
            if marker is not None and marker[1]:
                self._discard_literal(marker[0])
                return None
            self._reset()
            return None
        if self.mode == self.IDLE and not self._parts:
            self.mode = self.COMMAND
            if line.upper() == b"DONE":
                return IdleDone()
            raise ImapError("Expected DONE to end IDLE")
        if self.mode == self.SASL and not self._parts:
            return SaslResponse(line)
        if not self._parts:
            if not line:
                return None  # empty lines between commands are ignored, as most servers do
            self._tag, self._name = _tag_and_name(line)
            if self._tag is None:
                self._reset()
                marker = literal_marker(line)
                if marker is not None and marker[1]:
                    self._discard_literal(marker[0])
                raise ImapError("Invalid tag")
        self._size += len(line) + 2
        self._parts.append(line)
        marker = literal_marker(line)
        name = self._name or ""
        if marker is None:
            parts, literals, size, tag = self._parts, self._literals, self._size, self._tag
            self._reset()
            if size > self._command_limit(name):
                raise ImapError("Command too long", tag=tag, code="TOOBIG")
            return parse_command(parts, literals, limits=self.limits, utf8=self.utf8)
        size, nonsync, binary = marker
        limit = self._literal_size_limit(name)
        total = self._size + size
        if size > limit or total > self._command_limit(name):
            tag = self._tag
            what = "Message" if name in _MESSAGE_COMMANDS else "Literal"
            reply = "NO" if name in _MESSAGE_COMMANDS else "BAD"
            self._reset()
            close = False
            if nonsync:
                # RFC 7888 4: the data is on its way; read and drop it, or hang up when
                # there is too much of it to be worth reading.
                close = size > self.limits.max_discard
                if not close:
                    self._skipping = True
                    self._discard = size
            raise ImapError(f"{what} of {size} octets is over the limit of {limit} octets",
                            reply, tag=tag, code="TOOBIG", close=close)
        self._size = total
        self._literal_left = size
        self._literal8 = binary
        if size == 0:
            self._literals.append((b"", binary))  # nothing to wait for: complete already
        if not nonsync:
            return Continuation(self._tag or "*", name, size)
        return None

    def _discard_literal(self, size: int) -> None:
        """Drop a non-synchronizing literal of a command already refused."""
        self._discard = min(size, self.limits.max_discard)

    def _literal_size_limit(self, name: str) -> int:
        if self._literal_limit is not None:
            return self._literal_limit(name)
        return self.limits.max_append if name in _MESSAGE_COMMANDS else self.limits.max_literal

    def _command_limit(self, name: str) -> int:
        if name == "APPEND":
            return self.limits.max_append_total
        return self.limits.max_append + self.limits.max_line if name in _MESSAGE_COMMANDS \
            else self.limits.max_command
