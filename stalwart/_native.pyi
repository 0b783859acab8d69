"""Type stub of ``stalwart._native``, the Rust extension built from ``ext/`` by maturin.

Kept in step with ``ext/src/lib.rs`` by hand; ``tests/unit/test_mime.py`` checks that
every name declared here exists at run time with the declared kind.

MIME parsing (``ext/src/mime.rs``, on the ``mail-parser`` crate): ``parse_message``
returns a ``Message`` handle; its ``parts`` are ``Part`` handles. Both only point at the
parsed tree and at the raw ``bytes``; each attribute is converted when read.

Offsets are absolute positions in ``Message.raw`` (the outermost message, also for nested
messages), so IMAP fetches slice ``raw`` directly:

- ``raw[p.header_start:p.body_start]``: the part's MIME header with its closing blank
  line (``BODY[n.MIME]``; for a message root, ``BODY[HEADER]``);
- ``raw[p.body_start:p.body_end]``: the body (``BODY[n]``), without the line break
  before the next boundary (RFC 2046 section 5.1.1);
- header tuples ``(name, field_start, value_start, end)``: ``raw[field_start:end]`` is
  the whole field including its final line break, ``raw[value_start:end]`` its value.
"""

__version__: str

MIME_MAX_DEPTH: int
"""Deepest container nesting kept; a multipart or message/rfc822 at this depth is a leaf."""

Mailbox = tuple[str | None, str | None]
"""(display name decoded to str, or None; address ``local@domain``, or None)."""

HeaderField = tuple[str, int, int, int]
"""(name as written, field start, value start, end)."""

class Message:
    """A parsed message: the top-level one, or the one inside a message/rfc822 part."""

    @property
    def raw(self) -> bytes:
        """The outermost raw message (the object given to ``parse_message``)."""
    @property
    def start(self) -> int:
        """Where this message starts in ``raw`` (0, or the body start of its part)."""
    @property
    def end(self) -> int: ...
    @property
    def size(self) -> int:
        """``end - start``: RFC822.SIZE of this message."""
    @property
    def parts(self) -> list[Part]:
        """All parts of this message in document order; index 0 is the root. Parts of
        nested messages are not included (see ``Part.message``)."""
    def part(self, index: int) -> Part:
        """``parts[index]`` without building the whole list; IndexError if absent."""
    @property
    def text_body(self) -> list[int]:
        """RFC 8621 textBody: indexes into ``parts``."""
    @property
    def html_body(self) -> list[int]:
        """RFC 8621 htmlBody."""
    @property
    def attachments(self) -> list[int]:
        """RFC 8621 attachments (a message/rfc822 part counts as one attachment)."""
    @property
    def subject(self) -> str | None:
        """Decoded Subject (RFC 2047, charset to UTF-8); None when absent."""
    @property
    def from_(self) -> list[Mailbox]: ...
    @property
    def sender(self) -> list[Mailbox]: ...
    @property
    def reply_to(self) -> list[Mailbox]: ...
    @property
    def to(self) -> list[Mailbox]: ...
    @property
    def cc(self) -> list[Mailbox]: ...
    @property
    def bcc(self) -> list[Mailbox]: ...
    def address_groups(self, field: str) -> list[tuple[str | None, list[Mailbox]]]:
        """Addresses of ``field`` ("from", "sender", "reply-to", "to", "cc", "bcc") as
        ``(group name or None for ungrouped, mailboxes)``. ValueError for other names."""
    @property
    def date(self) -> int | None:
        """Date as seconds since the Unix epoch; None when absent or unparseable."""
    @property
    def date_raw(self) -> str | None:
        """The Date field's value as written (unfolded, trimmed)."""
    @property
    def message_id(self) -> str | None:
        """First id of Message-ID, without angle brackets."""
    @property
    def in_reply_to(self) -> list[str]: ...
    @property
    def references(self) -> list[str]: ...
    @property
    def preview(self) -> str:
        """Up to 256 characters of the text body, HTML converted, white space collapsed."""
    @property
    def headers(self) -> list[HeaderField]:
        """The header fields of this message, in order."""
    def header(self, name: str) -> bytes | None:
        """Raw value of the last field ``name`` (case-insensitive), or None."""
    def decoded_body(self, index: int) -> str | bytes:
        """Content of ``parts[index]``: str (UTF-8 decoded) for text parts, transfer-
        decoded bytes otherwise, the raw body for containers. IndexError if absent."""
    def __len__(self) -> int: ...

class Part:
    """One MIME entity of a ``Message``."""

    @property
    def index(self) -> int: ...
    @property
    def content_type(self) -> str:
        """Lower-case media type; "text" (or "message" in multipart/digest) by default."""
    @property
    def subtype(self) -> str:
        """Lower-case subtype; "plain" (or "rfc822") by default."""
    @property
    def mime_type(self) -> str:
        """``content_type + "/" + subtype``."""
    @property
    def params(self) -> list[tuple[str, str]]:
        """Content-Type parameters in order; names lower-case, RFC 2231 values decoded."""
    def param(self, name: str) -> str | None: ...
    @property
    def charset(self) -> str | None: ...
    @property
    def encoding(self) -> str | None:
        """Content-Transfer-Encoding, lower-case; None when absent."""
    @property
    def content_id(self) -> str | None:
        """Content-ID without angle brackets."""
    @property
    def description(self) -> str | None:
        """Content-Description, RFC 2047 decoded."""
    @property
    def location(self) -> str | None: ...
    @property
    def disposition(self) -> str | None:
        """Content-Disposition type, lower-case."""
    @property
    def disposition_params(self) -> list[tuple[str, str]]: ...
    @property
    def filename(self) -> str | None:
        """Disposition ``filename``, else Content-Type ``name`` (RFC 8621 ``name``)."""
    @property
    def language(self) -> list[str]: ...
    @property
    def header_start(self) -> int: ...
    @property
    def body_start(self) -> int: ...
    @property
    def body_end(self) -> int: ...
    @property
    def size(self) -> int:
        """Body size in octets, as transferred."""
    @property
    def lines(self) -> int:
        """Body lines: line breaks, plus one for a last line without one."""
    @property
    def children(self) -> list[int]:
        """Indexes of the direct children (multipart); may be empty for broken input
        or at ``MIME_MAX_DEPTH``."""
    @property
    def is_multipart(self) -> bool: ...
    @property
    def is_text(self) -> bool:
        """True when ``decoded()`` returns str."""
    @property
    def is_html(self) -> bool: ...
    @property
    def encoding_problem(self) -> bool:
        """The body did not decode as declared and is exposed as raw text."""
    @property
    def message(self) -> Message | None:
        """The nested message of a message/rfc822 part; None when its body is transfer-
        encoded, empty, or at ``MIME_MAX_DEPTH``."""
    @property
    def headers(self) -> list[HeaderField]: ...
    def header(self, name: str) -> bytes | None: ...
    def decoded(self) -> str | bytes:
        """Same as ``Message.decoded_body(self.index)``."""

def parse_message(raw: bytes) -> Message:
    """Parse an RFC 5322 message. Never raises for malformed input (TypeError if ``raw``
    is not bytes). Runs without the GIL."""

# -- IMAP command parser (ext/src/imap/, glue ext/src/imap_py.rs) --------------------------
#
# Used through ``stalwart.protocols.imap.grammar``, never directly. Events and errors are
# the classes of ``stalwart.protocols.imap.types`` (built natively), ``NEED_DATA`` is the
# sentinel of ``stalwart.protocols.base``; behaviour is that of the reference
# ``grammar_ref`` (checked by tests/protocol/test_imap_grammar_native.py).

ImapLimits = tuple[int, int, int, int, int, int, int, int]
"""(max_line, max_command, max_literal, max_append, max_append_total, max_discard,
max_depth, max_args): the fields of ``grammar_ref.Limits`` in order."""

class ImapParser:
    """Incremental IMAP command reader (sans-IO)."""

    utf8: bool
    """Mailbox names are UTF-8 (IMAP4rev2, UTF8=ACCEPT) rather than modified UTF-7."""
    mode: str
    """"command", "idle" (the next line must be DONE) or "sasl" (lines are SASL data)."""
    stream_append: bool
    """APPEND and REPLACE literals leave as ``LiteralChunk(data, last)`` events as they arrive; the
    command then carries an empty literal in their place (off by default)."""

    def __init__(self, limits: ImapLimits, utf8: bool = False,
                 literal_limit: object | None = None) -> None:
        """``literal_limit(name) -> int`` gives the largest literal accepted for command
        ``name`` (errors it raises propagate from ``next_event``)."""
    def receive_data(self, data: bytes | bytearray | memoryview) -> None: ...
    def next_event(self) -> object:
        """A ``Command``, ``Continuation``, ``IdleDone``, ``SaslResponse`` or
        ``LiteralChunk`` (``stream_append``), or ``NEED_DATA``; raises ``ImapError``."""
    def buffered(self) -> int: ...
    def memory(self) -> int:
        """Octets the reader's buffers hold (their capacity)."""
    def discard_buffer(self) -> bytes:
        """Drop the buffered octets (after STARTTLS); LocalProtocolError while an
        over-long line is being dropped."""
    def expect_idle_done(self) -> None: ...
    def expect_sasl(self) -> None: ...
    def expect_command(self) -> None: ...
    def refuse_literal(self) -> None:
        """The session refused a synchronizing literal: forget the command."""

def imap_parse_command(parts: list[bytes], literals: list[tuple[bytes, bool]],
                       limits: ImapLimits, utf8: bool = False) -> object:
    """One complete command (line parts, and (data, literal8) after each part but the
    last) as a ``Command``; raises ``ImapError``."""

# -- full-text index (ext/src/fts/, glue ext/src/fts_py.rs) --------------------------------
#
# Used through ``stalwart.fts``. Posting lists: version octet 1, then per document
# (ascending) varint(doc gap), varint(count), varint positions (first, then gaps).

FTS_LANGUAGES: list[str]
"""ISO 639-1 codes with a Snowball stemmer, and "none"."""
FTS_MAX_WORD_BYTES: int
"""Longest folded word indexed; longer ones only take a position."""

FTS_DETECTED: list[str]
"""The languages ``fts_detect_language`` can answer (besides "none")."""

def fts_detect_language(text: str) -> str:
    """ISO 639-1 code of the language of ``text`` by a stop-word vote (Cyrillic and Greek
    by script), or "none" when short or unclear. Runs without the GIL."""
def fts_index(parts: list[tuple[str, str]], language: str = "en") -> dict[str, list[int]]:
    """{"field:term": positions} of ``(field, text)`` parts. Runs without the GIL;
    ValueError for an unknown language."""
def fts_terms(text: str, language: str = "en") -> list[str]:
    """The folded, stemmed terms of ``text`` in order."""
def fts_encode(entries: list[tuple[int, list[int]]]) -> bytes:
    """Encode (doc, positions) entries, both strictly ascending (else ValueError)."""
def fts_decode(blob: bytes) -> list[tuple[int, list[int]]]:
    """Decode a posting list; ValueError for anything ``fts_encode`` cannot produce."""
def fts_docs(blob: bytes) -> list[int]: ...
def fts_upsert(blob: bytes | None, doc: int, positions: list[int]) -> bytes:
    """The list with ``doc`` set to ``positions`` (added or replaced)."""
def fts_remove(blob: bytes, docs: list[int]) -> bytes | None:
    """The list without ``docs``; None when it is left empty."""
def fts_intersect(blobs: list[bytes]) -> list[int]:
    """Documents in every list."""
def fts_phrase(blobs: list[bytes]) -> list[int]:
    """Documents where term i of the lists is at position p + i for some p."""

# DKIM / ARC canonicalization (ext/src/dkim.rs; Python reference and dispatch in
# stalwart/mailauth/canon.py, which is what callers use). Results are byte-identical to
# the reference for any input; a line end is exactly CRLF.

def dkim_split(message: bytes, field_type: type | None = None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """((lower-case name, raw field with folding and CRLF) per header field, body); bare
    LFs are made CRLF first, lines that are not fields are skipped. Each field is a
    ``field_type`` (``tuple`` when None; else a NamedTuple of two fields, built without
    calling it; TypeError for any other type)."""
def dkim_relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 3.4.2 for one whole field; the result ends with CRLF."""
def dkim_strip_b_value(raw: bytes) -> bytes:
    """The field with the value of its first b= tag emptied (RFC 6376 3.7); the same
    object when there is none. ValueError for a field without a colon."""
def dkim_header_data(fields: list[bytes], relaxed: bool, signature: bytes) -> bytes:
    """RFC 6376 5.4.2: ``fields`` canonicalized, then ``signature`` with b= emptied,
    canonicalized, without its final CRLF. TypeError for a non-bytes field, ValueError
    for a signature without a colon."""
def dkim_body_hash(body: bytes, relaxed: bool, limit: int | None = None) -> tuple[bytes, int]:
    """(SHA-256 of the first ``limit`` canonical body octets, canonical body length),
    RFC 6376 3.4.3/3.4.4, without building the canonical body. Large bodies are hashed
    without the GIL. OverflowError for a negative or over-64-bit ``limit``."""
def dkim_canonical_body(body: bytes, relaxed: bool) -> bytes:
    """The canonical body itself (tests and diagnostics)."""

class DkimBodyHasher:
    """``dkim_body_hash`` fed in chunks split anywhere."""

    def __init__(self, relaxed: bool, limit: int | None = None) -> None: ...
    def update(self, data: bytes) -> None:
        """ValueError after ``finish``."""
    def finish(self) -> tuple[bytes, int]:
        """(digest, canonical length); once (ValueError after)."""
