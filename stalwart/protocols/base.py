"""The sans-IO foundation shared by every protocol core (SMTP, LMTP, IMAP, POP3, ManageSieve).

Theory of operation
-------------------
A protocol core never touches a socket. The asyncio adapter hands it the bytes it read
(``receive_data`` / ``feed``) and asks for the next thing to do (``next_event`` /
``next_line``). When the core cannot make progress with the bytes it has, it answers
``NEED_DATA`` and the adapter reads more. This is h11's split; it makes every parser testable
by feeding it bytes whole, line by line, byte by byte and at random splits.

Errors say who broke the protocol (h11 ``_util.py``):

- ``RemoteProtocolError``: the peer sent something the protocol forbids. It carries the
  reply code to answer with (``"500 5.5.2"`` for SMTP, ``"BAD"`` for IMAP, ``"-ERR"`` for
  POP3) and whether the connection must be closed after the reply. The adapter formats the
  reply line in its protocol's syntax; the core never writes to the transport itself.
- ``LocalProtocolError``: our own code used a core wrongly (fed data after the end, started
  a second chunk while one is open). It is a bug on this side and is never answered to
  the peer with detail.

``LineReader`` splits a byte stream into lines with a hard maximum length. RFC 5321 4.5.3.1.4
limits an SMTP command line to 512 octets including CRLF, RFC 9051 leaves IMAP's to the
server; either way, a peer that sends an endless line must not make the server buffer it.

Invariants of ``LineReader``
----------------------------
- Memory: the reader keeps at most the bytes fed since the caller last drained lines (the
  adapter calls ``next_line`` until ``NEED_DATA`` after every ``feed``); an over-long line is
  never kept beyond ``max_length`` bytes, the rest of it is discarded as it arrives.
- Work is O(n) in the bytes fed: each byte is searched for a line end at most once.
- A line is returned with its line ending exactly as received (``b"...\\r\\n"`` or a bare
  ``b"...\\n"``), so the caller decides what a bare LF means (SMTP smuggling defences forbid
  it; see ``stalwart.protocols.smtp._data``).
- An over-long line is reported once, when its end (LF) arrives, with ``LineTooLong``; the
  reader then continues with the next line, so the reply to the bad line stays in step with
  the pipelined commands behind it. While it discards, ``discarding`` is true, so an adapter
  that prefers to hang up at once can.
"""

from __future__ import annotations

__all__ = [
    "NEED_DATA",
    "Sentinel",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "LineTooLong",
    "LineReader",
]


class Sentinel:
    """A named singleton value returned instead of an event (``NEED_DATA``, ``PAUSED``...).

    Compare with ``is``; the ``repr`` is the name, so test failures read well.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = Sentinel("NEED_DATA")
"""Returned by a core when it needs more bytes from the peer before it can say anything."""


class ProtocolError(Exception):
    """Base of the errors a protocol core raises; catch the subclasses, not this."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; answer with ``reply_code`` and ``message``.

    ``reply_code`` is the protocol-specific status to answer with, without the text: an SMTP
    reply code and enhanced status code (``"500 5.5.2"``, RFC 5321 4.2 and RFC 3463), an
    IMAP response condition (``"BAD"``, ``"NO"``, ``"BYE"``), a POP3 ``"-ERR"``. ``close``
    asks the adapter to close the connection after the reply, when the position of the next
    command in the stream is no longer known.
    """

    def __init__(self, message: str, reply_code: str, *, close: bool = False) -> None:
        if not reply_code:
            raise ValueError("a RemoteProtocolError needs a reply code")
        super().__init__(message)
        self.reply_code = reply_code
        self.close = close

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.message!r}, {self.reply_code!r}"
                f"{', close=True' if self.close else ''})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (self.message, self.reply_code, self.close) == (
            other.message, other.reply_code, other.close)

    __hash__ = Exception.__hash__


class LocalProtocolError(ProtocolError):
    """Our side used a protocol core in a way its state does not allow (a bug here)."""


class LineTooLong(RemoteProtocolError):
    """A line went over ``LineReader.max_length``; its bytes were discarded."""


class LineReader:
    """Split a byte stream into LF-terminated lines of at most ``max_length`` octets.

    ``max_length`` counts the whole line including its ending (RFC 5321 4.5.3.1.4 counts
    the CRLF in the 512 octets of a command line). ``reply_code`` is what ``LineTooLong``
    carries (``"500 5.5.2"`` for SMTP, ``"BAD"`` for IMAP).

    Use: ``feed(data)`` with every read, then ``next_line()`` until it returns ``NEED_DATA``.
    ``take(n)`` and ``drain()`` hand raw buffered bytes to another reader (an IMAP literal,
    the SMTP DATA receiver) and ``feed`` gives back what that reader did not consume.
    """

    __slots__ = ("max_length", "reply_code", "_buf", "_scanned", "_discarding")

    def __init__(self, max_length: int, *, reply_code: str) -> None:
        if max_length < 2:
            raise ValueError("max_length must leave room for at least one octet and LF")
        self.max_length = max_length
        self.reply_code = reply_code
        self._buf = bytearray()
        self._scanned = 0           # bytes of _buf already known to hold no LF
        self._discarding = False    # inside an over-long line, dropping bytes until LF

    def __len__(self) -> int:
        """Number of buffered bytes not yet returned."""
        return len(self._buf)

    @property
    def discarding(self) -> bool:
        """True while the rest of an over-long line is being dropped."""
        return self._discarding

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the peer."""
        self._buf += data

    def next_line(self) -> bytes | Sentinel:
        """The next complete line including its ending, or ``NEED_DATA``.

        Raises ``LineTooLong`` once per over-long line, when its LF has arrived; the next
        call goes on with the line after it.
        """
        buf = self._buf
        if self._discarding:
            end = buf.find(b"\n")
            if end < 0:
                buf.clear()
                return NEED_DATA
            del buf[:end + 1]
            self._discarding = False
            raise self._too_long()
        # Search only the part not searched before, and never past max_length.
        end = buf.find(b"\n", self._scanned, self.max_length)
        if end >= 0:
            line = bytes(buf[:end + 1])
            del buf[:end + 1]
            self._scanned = 0
            return line
        if len(buf) < self.max_length:
            self._scanned = len(buf)
            return NEED_DATA
        # No LF within max_length octets: the line is too long whatever follows.
        self._scanned = 0
        end = buf.find(b"\n", self.max_length)
        if end < 0:
            buf.clear()
            self._discarding = True
            return NEED_DATA
        del buf[:end + 1]
        raise self._too_long()

    def take(self, n: int) -> bytes:
        """Remove and return up to ``n`` buffered bytes (fewer if fewer are buffered)."""
        if n < 0:
            raise ValueError("n must not be negative")
        if self._discarding:
            raise LocalProtocolError("take() while discarding an over-long line")
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        self._scanned = 0
        return chunk

    def drain(self) -> bytes:
        """Remove and return every buffered byte (for a switch to another reader).

        After STARTTLS the caller must check that this is empty: bytes pipelined behind
        STARTTLS were sent in clear text and must not be executed (CVE-2011-0411).
        """
        return self.take(len(self._buf))

    def _too_long(self) -> LineTooLong:
        return LineTooLong(f"line too long (limit {self.max_length} octets)", self.reply_code)
