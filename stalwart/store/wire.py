"""Framing between workers and the store process: length-prefixed msgpack over a Unix socket.

Frame: 4-byte big-endian length, then a msgpack array.
- request   ``[id, op, args]``                    id > 0, op a string, args a map
- reply     ``[id, 0, result, seqno]``            ok: result of the operation, durable at seqno
- reply     ``[id, 1, [code, message], seqno]``   StoreError: nothing was changed
- event     ``[0, "event", {account: {"change", "types"}}, seqno]``   pushed to subscribers

``seqno`` is the RocksDB sequence number of the commit (0 for the memory backend): a reader
that has caught up to it sees the operation's writes.
"""

from __future__ import annotations

import struct

import msgpack

MAX_FRAME = 64 * 1024 * 1024
_LEN = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent something that is not a valid frame; the connection must be closed."""


def encode(value) -> bytes:
    body = msgpack.packb(value, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME} byte limit")
    return _LEN.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder: feed bytes, get complete decoded frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list:
        self._buf += data
        out = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > MAX_FRAME:
                raise FrameError(f"frame of {n} bytes exceeds the {MAX_FRAME} byte limit")
            if len(buf) - pos - 4 < n:
                break
            try:
                out.append(msgpack.unpackb(bytes(buf[pos + 4:pos + 4 + n]), raw=False,
                                           strict_map_key=False))
            except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
                raise FrameError(f"undecodable frame: {exc}") from None
            pos += 4 + n
        if pos:
            del buf[:pos]
        return out
