"""A worker's connection to the store process.

Requests are multiplexed over one Unix-socket connection by request id. If the store process
goes away (it was killed, or is restarting), every request without a reply fails with
``StoreError("unavailable")`` — the operation may or may not have been committed, and the
protocol answers with a temporary failure (SMTP 451, IMAP NO [UNAVAILABLE]) so the client
retries; an operation is never reported as done unless its reply arrived. The next call
reconnects, waiting up to ``connect_timeout`` for the store to come back.

Subscribers get change events (``on_event(events, seqno)``) and are resubscribed after a
reconnect; ``on_reconnect()`` lets them rescan what they may have missed.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any, Callable

from .errors import StoreError
from .wire import FrameDecoder, FrameError, encode


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, client: "StoreClient") -> None:
        self.client = client
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            self.transport.close()
            self.client._lost(self, StoreError("unavailable", f"bad frame from the store: {exc}"))
            return
        for frame in frames:
            self.client._frame(frame)

    def connection_lost(self, exc) -> None:
        self.client._lost(self, StoreError("unavailable", "lost the connection to the store"))


class StoreClient:
    def __init__(self, path: Path, *, connect_timeout: float = 10.0,
                 on_event: Callable[[dict, int], None] | None = None,
                 on_reconnect: Callable[[], None] | None = None) -> None:
        self.path = Path(path)
        self.connect_timeout = connect_timeout
        self.on_event = on_event
        self.on_reconnect = on_reconnect
        self._proto: _ClientProtocol | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._connecting: asyncio.Future | None = None
        self._ever_connected = False
        self._closed = False

    # ------------------------------------------------------------------ connection
    async def _ensure(self) -> _ClientProtocol:
        if self._proto is not None:
            return self._proto
        if self._closed:
            raise StoreError("unavailable", "the store client is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _ClientProtocol:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        delay = 0.01
        while True:
            try:
                _, proto = await loop.create_unix_connection(lambda: _ClientProtocol(self),
                                                             str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError) as exc:
                if loop.time() + delay > deadline:
                    raise StoreError("unavailable", f"cannot reach the store at {self.path}: "
                                                    f"{exc}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)
        self._proto = proto
        if self.on_event is not None:
            _, seqno = await self._call_on(proto, "subscribe", {})
            # Events sent while we were away are lost; the watermark of the reply makes the
            # next read catch up with everything committed until now.
            self.on_event({}, seqno)
        if self._ever_connected and self.on_reconnect is not None:
            self.on_reconnect()
        self._ever_connected = True
        return proto

    def _lost(self, proto: _ClientProtocol, error: StoreError) -> None:
        if self._proto is proto:
            self._proto = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)

    def _frame(self, frame: Any) -> None:
        if not isinstance(frame, list) or len(frame) != 4:
            return
        req_id, status, payload, seqno = frame
        if req_id == 0:
            if status == "event" and self.on_event is not None:
                self.on_event(payload, seqno)
            return
        fut = self._pending.pop(req_id, None)
        if fut is None or fut.done():
            return
        if status == 0:
            fut.set_result((payload, seqno))
        else:
            fut.set_exception(StoreError.from_wire(payload))

    # ------------------------------------------------------------------ calls
    async def _call_on(self, proto: _ClientProtocol, op: str, args: dict) -> tuple[Any, int]:
        req_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        proto.transport.write(encode([req_id, op, args]))
        return await fut

    async def call(self, op: str, args: dict) -> tuple[Any, int]:
        """Run one operation; return (result, commit sequence number)."""
        proto = await self._ensure()
        return await self._call_on(proto, op, args)

    async def close(self) -> None:
        self._closed = True
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
