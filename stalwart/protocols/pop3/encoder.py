"""Streaming encoder of message content for RETR and TOP (RFC 1939 3, 7).

    enc = MessageEncoder()            # RETR; MessageEncoder(top_lines=n) for TOP msg n
    for chunk in source:              # any cut of the raw message
        out += enc.feed(chunk)
        if enc.done:                  # TOP has all it needs: stop reading the blob
            break
    out += enc.finish()               # line end if missing, then ".\\r\\n"

What goes on the wire
- Line endings are CRLF: a bare LF becomes CRLF (a stored message normally has CRLF
  already; SMTP delivery guarantees it). A CR not followed by LF is left alone.
- Dot stuffing (RFC 1939 3): a line that begins with "." gets one more "." in front,
  so no content line can be taken for the terminating ".".
- The content always ends with CRLF before the terminator, even when the stored message
  does not, so the terminator is always a line of its own.
- TOP msg n (RFC 1939 7): the header, the blank line that ends it, then at most ``n``
  lines of the body. A message without a blank line is all header and is sent whole.

Invariants: output depends only on the concatenated input, never on how it was cut
(tests feed every message whole, byte by byte and at random splits); memory is bounded by
one chunk (a pending CR is the only byte carried between calls).
"""

from __future__ import annotations

__all__ = ["MessageEncoder", "encode_message"]


class MessageEncoder:
    __slots__ = ("top_lines", "done", "_carry", "_line_start", "_in_header",
                 "_header_line_start", "_remaining")

    def __init__(self, top_lines: int | None = None) -> None:
        if top_lines is not None and top_lines < 0:
            raise ValueError("top_lines must not be negative")
        self.top_lines = top_lines
        self.done = False                # TOP: the wanted lines are all out
        self._carry = b""                # a trailing CR whose LF may be in the next chunk
        self._line_start = True          # the output so far ends at a line start
        self._in_header = True           # TOP: the blank line has not been seen yet
        self._header_line_start = True   # TOP: normalised input so far ends with LF
        self._remaining = top_lines      # TOP: body lines still to send

    def feed(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode the next piece of the raw message; returns the bytes to send."""
        if self.done:
            return b""
        data = self._carry + bytes(chunk)
        self._carry = b""
        if data.endswith(b"\r"):
            self._carry = b"\r"
            data = data[:-1]
        if not data:
            return b""
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self.top_lines is not None:
            data = self._limit(data)
        return self._stuff(data)

    def finish(self) -> bytes:
        """The rest: a held CR, a final line end if needed, and the terminator."""
        out = b""
        if self._carry and not self.done:
            self._carry = b""
            out = self._stuff(b"\r")
        self._carry = b""
        if not self._line_start:
            out += b"\r\n"
        self.done = True
        return out + b".\r\n"

    # ------------------------------------------------------------------ internals
    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return data
        if self._line_start and data[:1] == b".":
            data = b"." + data
        data = data.replace(b"\n.", b"\n..")
        self._line_start = data.endswith(b"\n")
        return data

    def _limit(self, data: bytes) -> bytes:
        """Cut normalised (CRLF) data at the end of what TOP wants; sets ``done``."""
        start = 0
        if self._in_header:
            if self._header_line_start and data.startswith(b"\r\n"):
                start = 2
            else:
                end = data.find(b"\n\r\n")
                if end < 0:
                    self._header_line_start = data.endswith(b"\n")
                    return data
                start = end + 3
            self._in_header = False
        remaining = self._remaining
        pos = start
        while remaining > 0:
            nl = data.find(b"\n", pos)
            if nl < 0:
                self._remaining = remaining - data.count(b"\n", pos)
                return data
            remaining -= 1
            pos = nl + 1
        self._remaining = 0
        self.done = True
        return data[:pos]


def encode_message(raw: bytes, top_lines: int | None = None) -> bytes:
    """The whole encoded content of ``raw`` with its terminator (for tests and small uses)."""
    enc = MessageEncoder(top_lines)
    return enc.feed(raw) + enc.finish()
