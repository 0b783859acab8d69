"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are a raw DEFLATE
stream (RFC 1951, no zlib or gzip header).

Rules enforced here:

- Only ``DEFLATE``; another mechanism is ``BAD`` (RFC 4978 3: the server MUST reject
  unknown algorithms). A second COMPRESS is ``NO [COMPRESSIONACTIVE]``.
- The tagged OK itself is sent uncompressed; every octet the server sends after it is
  compressed and flushed with ``Z_SYNC_FLUSH`` at the end of each write, so the client can
  decode every response as soon as it arrives (RFC 4978 4).
- Octets the client pipelined after the COMPRESS command line are already compressed:
  they are taken back from the parser's buffer and inflated.
- Inflation is bounded: at most ``INFLATE_CHUNK`` octets come out of one step, the rest of
  the compressed input waits (``pending``), so a small "zip bomb" cannot fill memory;
  the adapter counts ``pending`` in its input backpressure.
- Corrupt compressed input ends the session with ``BYE`` (the stream cannot resync).

Over TLS the layer sits above the TLS record layer (the adapter hands the session clear
text), which is the order RFC 4978 8 describes.
"""

from __future__ import annotations

import zlib

from ..session import Bad, No

#: Most clear-text octets one ``inflate`` call produces.
INFLATE_CHUNK = 64 * 1024


class DeflateLayer:
    """Raw DEFLATE both ways (sans-IO): ``inflate(received)``, ``deflate(to_send)``."""

    __slots__ = ("_in", "_out", "_tail", "broken")

    def __init__(self) -> None:
        self._in = zlib.decompressobj(wbits=-15)
        self._out = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
        self._tail = b""
        self.broken = False

    def pending(self) -> int:
        """Compressed octets received and not inflated yet."""
        return len(self._tail)

    def inflate(self, data: bytes) -> bytes:
        """Clear text for ``data`` (appended to what is pending), at most INFLATE_CHUNK."""
        if self.broken:
            return b""
        data = self._tail + data if self._tail else data
        try:
            out = self._in.decompress(data, INFLATE_CHUNK)
        except zlib.error:
            self.broken = True
            self._tail = b""
            return b""
        self._tail = self._in.unconsumed_tail
        if self._in.eof:
            # The client ended its DEFLATE stream (a final block): nothing can follow.
            self.broken = True
        return out

    def deflate(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)


async def run(s, cmd):
    if s.compression is not None:
        raise No("DEFLATE is already active", "COMPRESSIONACTIVE")
    if cmd.args.mechanism != "DEFLATE":
        raise Bad(f"Unsupported compression mechanism {cmd.args.mechanism[:40]} "
                  "(only DEFLATE, RFC 4978)")
    s.write_all(s.sync_updates(allow_expunge=True))
    s.tagged(cmd.tag, "OK", "DEFLATE active")
    s.start_compression(DeflateLayer())
    return None
