"""The typed values an IMAP command parser produces (the contract of every parser).

The pure-Python reference grammar (``grammar_ref``) and the Rust parser that will replace it
on the hot path both produce these objects, and the differential tests compare them with
``==``; so every type here is an immutable value with structural equality and nothing else.

Conventions:

- Strings the client sent (astring, quoted, literal) are ``bytes`` where their meaning is
  octets (message data, SASL responses, search strings before charset decoding) and ``str``
  where the grammar makes them text (mailbox names, user names, flags, header names).
- Mailbox names are decoded (modified UTF-7 for IMAP4rev1 sessions, UTF-8 otherwise) and
  "INBOX" in any case is the canonical ``"INBOX"`` (RFC 9051 section 5.1).
- In a ``SequenceSet``, ``None`` stands for ``*`` (the largest number in use).
- Search keys are tuples whose first item is a lower-case key name; see ``SEARCH_KEYS``.
- Events the parser hands to the session: ``Command``, ``Continuation`` (a synchronizing
  literal was announced; the session answers ``+`` or refuses it), ``IdleDone`` and
  ``SaslResponse`` (the lines of IDLE and AUTHENTICATE, which are not commands). Errors are
  raised as ``ImapError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from ..base import RemoteProtocolError

__all__ = [
    "ImapError", "Command", "Continuation", "LiteralChunk", "IdleDone", "SaslResponse", "SequenceSet",
    "Section", "FetchItem", "Login", "Authenticate", "Mailbox", "Rename", "Create",
    "Select", "Qresync", "ListCmd", "Lsub", "Status", "AppendMessage", "Append", "Search",
    "Fetch", "Store", "CopyMove", "Expunge", "Enable", "Id", "Sort", "Thread", "Replace",
    "QuotaCmd", "SEARCH_KEYS",
    "Compress", "GetMetadata", "SetMetadata", "NotifyGroup", "Notify",
]


class ImapError(RemoteProtocolError):
    """The client broke the grammar or a limit: answer ``tag reply_code [code] message``.

    ``tag`` is None when the tag could not be read (answer untagged). ``code`` is the
    response code without brackets (``"TOOBIG"``, ``"BADCHARSET (UTF-8)"``, ``"CLIENTBUG"``).
    ``close`` asks the adapter to send BYE and close: the position of the next command in
    the stream is no longer known.
    """

    def __init__(self, message: str, reply_code: str = "BAD", *, tag: str | None = None,
                 code: str | None = None, close: bool = False) -> None:
        super().__init__(message, reply_code, close=close)
        self.tag = tag
        self.code = code

    def response(self) -> bytes:
        """The response line for this error, CRLF included."""
        code = f"[{self.code}] " if self.code else ""
        if self.close:
            return f"* BYE {code}{self.message}\r\n".encode()
        return f"{self.tag or '*'} {self.reply_code} {code}{self.message}\r\n".encode()

    def __repr__(self) -> str:
        return (f"ImapError({self.message!r}, {self.reply_code!r}, tag={self.tag!r}, "
                f"code={self.code!r}, close={self.close})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImapError):
            return NotImplemented
        return (self.message, self.reply_code, self.tag, self.code, self.close) == (
            other.message, other.reply_code, other.tag, other.code, other.close)

    __hash__ = Exception.__hash__


@dataclass(frozen=True)
class Command:
    tag: str
    name: str                 # upper case; "UID FETCH" style for UID commands
    args: Any = None


@dataclass(frozen=True)
class Continuation:
    """A synchronizing literal of ``size`` octets was announced for command ``name``."""
    tag: str
    name: str
    size: int


@dataclass(frozen=True)
class LiteralChunk:
    """Octets of an APPEND or REPLACE literal, streamed (``Parser.stream_append``); ``last`` on the
    literal's final chunk. The command that follows carries an empty literal in its place."""
    data: bytes
    last: bool


@dataclass(frozen=True)
class IdleDone:
    """The client ended IDLE with DONE (RFC 2177 / RFC 9051 6.3.13)."""


@dataclass(frozen=True)
class SaslResponse:
    """One client line of an AUTHENTICATE exchange, base64 text as sent ("*" cancels)."""
    data: bytes


@dataclass(frozen=True)
class SequenceSet:
    """RFC 9051 sequence-set: ranges of (low, high) with ``None`` for ``*``, or ``$``.

    ``saved`` says the set includes the SEARCHRES reference ``$`` (RFC 5182), alone or
    after "," (RFC 9051 lets ``1:5,$`` through). Ranges are kept as sent ("5:3" stays
    (5, 3)); ``resolve`` orders them.
    """
    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    def resolve(self, largest: int) -> Iterator[tuple[int, int]]:
        """The ranges as ordered (low, high) with ``*`` replaced by ``largest``."""
        for lo, hi in self.ranges:
            lo = largest if lo is None else lo
            hi = largest if hi is None else hi
            yield (lo, hi) if lo <= hi else (hi, lo)

    def contains(self, number: int, largest: int) -> bool:
        return any(lo <= number <= hi for lo, hi in self.resolve(largest))


@dataclass(frozen=True)
class Section:
    """A BODY[...] / BINARY[...] section (RFC 9051 section 6.4.5).

    ``part`` is the part path (empty for the whole message); ``text`` one of None,
    "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"; ``fields`` the header
    names (upper case) of HEADER.FIELDS[.NOT].
    """
    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def spec(self) -> str:
        """The section as it appears between the brackets of a response."""
        out = ".".join(str(p) for p in self.part)
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
            if self.fields:
                out += " (" + " ".join(self.fields) + ")"
        return out


@dataclass(frozen=True)
class FetchItem:
    """One fetch-att. ``name`` is upper case: FLAGS, UID, INTERNALDATE, RFC822.SIZE,
    ENVELOPE, BODYSTRUCTURE, BODY (structure without extension data), BODY[] (with
    ``section``), BINARY, BINARY.SIZE, RFC822, RFC822.HEADER, RFC822.TEXT, MODSEQ,
    PREVIEW. ``partial`` is (offset, count)."""
    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False        # PREVIEW (LAZY)


@dataclass(frozen=True)
class Login:
    username: str
    password: str


@dataclass(frozen=True)
class Authenticate:
    mechanism: str            # upper case
    initial: bytes | None     # SASL-IR initial response as sent (base64 or "=")


@dataclass(frozen=True)
class Mailbox:
    """Commands whose only argument is a mailbox (DELETE, SUBSCRIBE, UNSUBSCRIBE,
    GETQUOTAROOT)."""
    name: str


@dataclass(frozen=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True)
class Create:
    name: str
    use: tuple[str, ...] = ()  # CREATE-SPECIAL-USE (RFC 6154): ("\\Sent", ...)


@dataclass(frozen=True)
class Qresync:
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select:
    name: str
    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True)
class ListCmd:
    reference: str
    patterns: tuple[str, ...]
    select: tuple[str, ...] = ()      # upper case selection options
    returns: tuple[str, ...] = ()     # upper case return options (STATUS not included)
    status: tuple[str, ...] = ()      # RETURN (STATUS (...)) items
    extended: bool = False            # the LIST-EXTENDED syntax was used


@dataclass(frozen=True)
class Lsub:
    reference: str
    pattern: str


@dataclass(frozen=True)
class Status:
    name: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class AppendMessage:
    flags: tuple[str, ...]
    date: datetime | None
    data: bytes
    binary: bool = False      # sent as literal8 (RFC 3516)


@dataclass(frozen=True)
class Append:
    name: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True)
class Search:
    """SEARCH. ``returns`` is None for the plain (RFC 3501) form, else the ESEARCH return
    options (empty tuple = RETURN () = ALL). ``key`` is an ("and", (...)) of the keys."""
    key: tuple
    returns: tuple[str, ...] | None = None
    charset: str | None = None


@dataclass(frozen=True)
class Fetch:
    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    changed_since: int | None = None
    vanished: bool = False
    macro: bool = False       # ALL / FAST / FULL was used


@dataclass(frozen=True)
class Store:
    sequence: SequenceSet
    mode: str                 # "+" add, "-" remove, "" replace
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None


@dataclass(frozen=True)
class CopyMove:
    sequence: SequenceSet
    name: str


@dataclass(frozen=True)
class Expunge:
    uids: SequenceSet | None = None


@dataclass(frozen=True)
class Enable:
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Id:
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True)
class Sort:
    """SORT (RFC 5256): ``criteria`` are (reverse, key) with key upper case (ARRIVAL, CC,
    DATE, FROM, SIZE, SUBJECT, TO, DISPLAYFROM, DISPLAYTO); ``key`` as in ``Search``."""
    criteria: tuple[tuple[bool, str], ...]
    key: tuple
    charset: str


@dataclass(frozen=True)
class Thread:
    """THREAD (RFC 5256): ``algorithm`` is ORDEREDSUBJECT or REFERENCES."""
    algorithm: str
    key: tuple
    charset: str


@dataclass(frozen=True)
class Replace:
    """REPLACE / UID REPLACE (RFC 8508): message ``number`` (or UID) replaced by
    ``message`` appended to mailbox ``name``."""
    number: int
    name: str
    message: AppendMessage


@dataclass(frozen=True)
class AclCmd:
    """SETACL, DELETEACL, LISTRIGHTS (RFC 4314 3.1, 3.2, 3.4): mailbox, identifier and, for
    SETACL, the rights as sent (a leading "+" adds them, "-" removes them). GETACL and
    MYRIGHTS parse as ``Mailbox``."""
    name: str
    identifier: str
    rights: str | None = None


@dataclass(frozen=True)
class QuotaCmd:
    """GETQUOTA / SETQUOTA (RFC 9208): a quota root; SETQUOTA's (resource, limit) pairs.
    GETQUOTAROOT parses as ``Mailbox``."""
    root: str
    limits: tuple[tuple[str, int], ...] = ()


#: Search keys and their operands, as produced by the parser.
SEARCH_KEYS: dict[str, str] = {
    "all": "()",
    "and": "(tuple of keys)",
    "or": "(key, key)",
    "not": "(key)",
    "seq": "(SequenceSet)",
    "uid": "(SequenceSet)",
    "keyword": "(flag or keyword, as sent)",
    "recent": "()",
    "before": "(date)", "on": "(date)", "since": "(date)",
    "sentbefore": "(date)", "senton": "(date)", "sentsince": "(date)",
    "larger": "(int)", "smaller": "(int)",
    "header": "(field name upper case, str)",
    "body": "(str)", "text": "(str)",
    "modseq": "(int)",
    "older": "(seconds)", "younger": "(seconds)",
}


# ----------------------------------------------------------------- COMPRESS, METADATA, NOTIFY

@dataclass(frozen=True)
class Compress:
    """COMPRESS (RFC 4978): the mechanism as sent, upper case ("DEFLATE")."""
    mechanism: str


@dataclass(frozen=True)
class GetMetadata:
    """GETMETADATA (RFC 5464 4.2): mailbox ("" = server), entry names as sent, MAXSIZE and
    DEPTH options (depth 0, 1, or None for "infinity")."""
    name: str
    entries: tuple[str, ...]
    maxsize: int | None = None
    depth: int | None = 0


@dataclass(frozen=True)
class SetMetadata:
    """SETMETADATA (RFC 5464 4.3): (entry, value) pairs; value None (NIL) removes."""
    name: str
    entries: tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class NotifyGroup:
    """One event group of NOTIFY SET (RFC 5465 3.1). ``filter`` is upper case (SELECTED,
    SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES); ``mailboxes`` the
    names of SUBTREE/MAILBOXES; ``events`` upper case ("NONE" alone for no events);
    ``fetch`` the fetch attributes of MessageNew."""
    filter: str
    mailboxes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    fetch: tuple[FetchItem, ...] = ()


@dataclass(frozen=True)
class Notify:
    """NOTIFY NONE (``groups`` None) or NOTIFY SET [STATUS] groups (RFC 5465 3)."""
    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
