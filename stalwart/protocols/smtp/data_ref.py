"""Pure-Python reference of the SMTP DATA and BDAT receivers (``_data.pyx``).

This module exists for two things only: the differential tests
(``tests/protocol/test_smtp_data.py`` checks that the Cython receivers and this one agree
on every input and every way of splitting it) and ``bench.micro.data_receiver``. The server
never imports it; if the Cython module is not built, the server fails to start rather than
quietly running this slower code.

The behaviour, the public interface and the invariants are those documented at the top of
``stalwart/protocols/smtp/_data.pyx``; read that first. This implementation is written for
clarity with the usual pure-Python speed habits (regular expressions and ``bytes`` methods
find the interesting octets, so the Python-level loop runs once per line, not per octet),
which makes it a fair baseline for the benchmark.
"""

from __future__ import annotations

import re
import sys

from stalwart.protocols.base import NEED_DATA, LocalProtocolError, RemoteProtocolError, Sentinel

__all__ = ["DataReceiver", "BdatReceiver", "REPLY_SIZE_EXCEEDED", "REPLY_BARE_NEWLINE"]

#: RFC 1870 6.1 / RFC 5321 4.5.3.1.10 with RFC 3463 5.3.4 "message too big for system".
REPLY_SIZE_EXCEEDED = "552 5.3.4"
#: RFC 5321 2.3.8: lines end with CRLF only; a message with bare CR or LF is refused
#: (RFC 3463 5.6.0, "other or undefined media error"), as Postfix does since 3.9.
REPLY_BARE_NEWLINE = "550 5.6.0"

_CR, _LF, _DOT = 13, 10, 46
_CR_OR_LF = re.compile(rb"[\r\n]")
_HIGH = bytes(range(128, 256))

# Parser states. LINE_START: just after a CRLF (or at the start of DATA); DOT: a line that
# began with "." (the dot is held back); DOT_CR: ".", CR at a line start (the end if LF
# follows); CR: a CR held back until we know whether LF follows; MID: anywhere else.
_MID, _LINE_START, _CR_HELD, _DOT_HELD, _DOT_CR, _DONE = range(6)

_POLICIES = ("reject", "normalize", "allow")


def _as_bytes(data) -> bytes:
    """Any contiguous bytes-like object as bytes; TypeError for anything else (an int too)."""
    view = memoryview(data)
    if not view.contiguous:
        raise BufferError("data must be a contiguous buffer")
    return view.tobytes()


class _Receiver:
    """Output, size limit, counters and bare-newline policy shared by DATA and BDAT."""

    def __init__(self, sink, max_size: int | None, bare_newline: str, allowed: tuple) -> None:
        if bare_newline not in allowed:
            raise ValueError(f"bare_newline must be one of {', '.join(allowed)}, "
                             f"not {bare_newline!r}")
        if max_size is not None and (
                isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            raise ValueError("max_size must be a non-negative int or None")
        if not isinstance(sink, bytearray) and not callable(getattr(sink, "write", None)):
            raise TypeError("sink must be a bytearray or have a write(bytes) method")
        self._sink = sink
        self.max_size = max_size
        self.bare_newline = bare_newline
        self._normalize = bare_newline == "normalize"
        self._limit = max_size if max_size is not None else float("inf")
        self.size = 0                 # octets of the message, counted past the limit too
        self._stored = 0
        self._hstate = 2              # header-end search: 0 none, 1 CR, 2 CRLF, 3 CRLF CR
        self._header_size = -1
        self.bare_lf_count = 0
        self.bare_cr_count = 0
        self.nul_count = 0
        self.eight_bit_count = 0
        self.done = False
        self._broken = False

    # ---------------------------------------------------------------- results
    @property
    def size_exceeded(self) -> bool:
        return self.size > self._limit

    @property
    def header_size(self) -> int:
        return self._header_size if self._header_size >= 0 else self.size

    @property
    def body_size(self) -> int:
        return self.size - self.header_size

    @property
    def error(self) -> RemoteProtocolError | None:
        if self.size_exceeded:
            return RemoteProtocolError(
                f"message exceeds the maximum size of {self.max_size} octets",
                REPLY_SIZE_EXCEEDED)
        if self.bare_newline == "reject" and (self.bare_lf_count or self.bare_cr_count):
            return RemoteProtocolError(
                "message contains a bare CR or LF; lines must end with CRLF",
                REPLY_BARE_NEWLINE)
        return None

    # ---------------------------------------------------------------- output
    def _check_usable(self) -> None:
        if self._broken:
            raise LocalProtocolError("receiver is unusable after its sink failed")
        if self.done:
            raise LocalProtocolError("the message is complete; feed the rest to the command reader")

    def _emit(self, piece: bytes, out: list) -> None:
        """Account one piece of message content and keep what fits under the limit."""
        self.size += len(piece)
        if self._header_size < 0:
            if len(piece) <= 2 and piece in (b"\r\n", b"\r", b"\n"):
                for c in piece:
                    self._track(c)
            elif piece:
                self._hstate = 0
        room = self._limit - self._stored
        if room > 0:
            if len(piece) > room:
                piece = piece[:room]
            out.append(piece)
            self._stored += len(piece)

    def _track(self, c: int) -> None:
        h = self._hstate
        if c == _CR:
            self._hstate = 3 if h == 2 else 1
        elif c == _LF:
            if h == 3:
                self._header_size = self.size
            self._hstate = 2 if h == 1 else 0
        else:
            self._hstate = 0

    def _run(self, piece: bytes, out: list) -> None:
        """Ordinary octets (no CR, no LF)."""
        self.nul_count += piece.count(b"\0")
        self.eight_bit_count += len(piece) - len(piece.translate(None, _HIGH))
        self._emit(piece, out)

    def _bare_lf(self, out: list) -> None:
        self.bare_lf_count += 1
        self._emit(b"\r\n" if self._normalize else b"\n", out)

    def _bare_cr(self, out: list) -> None:
        self.bare_cr_count += 1
        self._emit(b"\r\n" if self._normalize else b"\r", out)

    def _flush(self, out: list) -> None:
        if not out:
            return
        data = b"".join(out)
        if not data:
            return
        try:
            if isinstance(self._sink, bytearray):
                self._sink += data
            else:
                self._sink.write(data)
        except BaseException:
            self._broken = True
            raise


class DataReceiver(_Receiver):
    """The message after DATA: dot-unstuffed, ended only by ``<CRLF>.<CRLF>``."""

    def __init__(self, sink, *, max_size: int | None = None, bare_newline: str = "reject") -> None:
        super().__init__(sink, max_size, bare_newline, ("reject", "normalize"))
        self._state = _LINE_START

    def feed(self, data) -> bytes | Sentinel:
        self._check_usable()
        data = _as_bytes(data)
        out: list[bytes] = []
        st = self._state
        i, n = 0, len(data)
        while i < n:
            if st == _MID:
                m = _CR_OR_LF.search(data, i)
                j = m.start() if m else n
                if j > i:
                    self._run(data[i:j], out)
                if j == n:
                    break
                if data[j] == _CR:
                    st = _CR_HELD
                else:
                    self._bare_lf(out)
                i = j + 1
                continue
            c = data[i]
            if st == _LINE_START:
                if c == _DOT:
                    st = _DOT_HELD
                elif c == _CR:
                    st = _CR_HELD
                elif c == _LF:
                    self._bare_lf(out)
                    st = _MID
                else:
                    st = _MID
                    continue
                i += 1
            elif st == _CR_HELD:
                if c == _LF:
                    self._emit(b"\r\n", out)
                    st = _LINE_START
                    i += 1
                elif c == _CR:
                    self._bare_cr(out)
                    i += 1
                else:
                    self._bare_cr(out)
                    st = _MID
            elif st == _DOT_HELD:
                # RFC 5321 4.5.2: the leading dot of a line with more on it is removed.
                if c == _CR:
                    st = _DOT_CR
                    i += 1
                elif c == _LF:
                    self._bare_lf(out)
                    st = _MID
                    i += 1
                else:
                    st = _MID
            else:  # _DOT_CR
                if c == _LF:
                    i += 1
                    st = _DONE
                    break
                self._bare_cr(out)
                if c == _CR:
                    st = _CR_HELD
                    i += 1
                else:
                    st = _MID
        self._state = st
        if st == _DONE:
            self.done = True
        self._flush(out)
        return data[i:] if self.done else NEED_DATA


class BdatReceiver(_Receiver):
    """The message of a BDAT sequence: chunks of announced length, no dot-stuffing."""

    def __init__(self, sink, *, max_size: int | None = None, bare_newline: str = "reject") -> None:
        super().__init__(sink, max_size, bare_newline, _POLICIES)
        self._remaining = 0
        self._in_chunk = False
        self._last = False
        self._cr_held = False
        self.chunks = 0

    @property
    def in_chunk(self) -> bool:
        return self._in_chunk

    @property
    def chunk_remaining(self) -> int:
        return self._remaining

    def start_chunk(self, size: int, last: bool = False) -> None:
        if self._broken:
            raise LocalProtocolError("receiver is unusable after its sink failed")
        if self.done:
            raise LocalProtocolError("BDAT after the LAST chunk")
        if self._in_chunk:
            raise LocalProtocolError("BDAT chunk started while another is open")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("chunk size must be a non-negative int")
        if size > sys.maxsize:
            raise ValueError("chunk size is too large")
        self._remaining = size
        self._last = bool(last)
        self._in_chunk = True
        self.chunks += 1

    def feed(self, data) -> bytes | Sentinel:
        self._check_usable()
        if not self._in_chunk:
            raise LocalProtocolError("feed() without an open BDAT chunk")
        data = _as_bytes(data)
        take = min(len(data), self._remaining)
        out: list[bytes] = []
        body = data[:take]
        i = 0
        cr = self._cr_held
        while i < take:
            if cr:
                cr = False
                c = body[i]
                if c == _LF:
                    self._emit(b"\r\n", out)
                    i += 1
                    continue
                self._bare_cr(out)
                if c == _CR:
                    cr = True
                    i += 1
                continue
            m = _CR_OR_LF.search(body, i)
            j = m.start() if m else take
            if j > i:
                self._run(body[i:j], out)
            if j == take:
                break
            if body[j] == _CR:
                cr = True
            else:
                self._bare_lf(out)
            i = j + 1
        self._remaining -= take
        if self._remaining == 0:
            self._in_chunk = False
            if self._last:
                if cr:
                    self._bare_cr(out)
                    cr = False
                self.done = True
        self._cr_held = cr
        self._flush(out)
        return NEED_DATA if self._in_chunk else data[take:]
