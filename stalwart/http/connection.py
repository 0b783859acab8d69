"""One HTTP/1.1 connection: h11 (sans-IO) driven by an asyncio Protocol.

Theory of operation
-------------------
``HttpConnection`` is an ``asyncio.Protocol``. The transport pushes bytes into
``data_received``, which feeds them to the ``h11.Connection``; one task per connection
(``_run``) pulls events out of h11, one request at a time:

    read head -> check limits -> read body -> app(request) -> send response -> next cycle

Requests are handled strictly in order, so pipelined requests are answered in order: h11
keeps bytes of the next request in its buffer while the current one is being answered
(h11 returns ``PAUSED`` until ``start_next_cycle``).

Backpressure, both ways:

- reading: the transport is paused whenever the task is not waiting for data, so at most
  one read chunk is buffered beyond what the current step needs, however fast the client
  sends (a pipelining client cannot make the server buffer without bound);
- writing: ``pause_writing``/``resume_writing`` gate every write of a streamed body, with
  ``Limits.write_timeout``.

Limits and timeouts (``Limits``): request head size (h11 ``max_incomplete_event_size``;
431), body size (413, checked against Content-Length before any of it is read, and
against the running total for chunked bodies), idle keep-alive time (close without a
word), the time to receive a whole head once it has started and the longest pause while
reading a body (408, then close), and the time to get a response out.

Errors: a malformed request (h11 ``RemoteProtocolError``) is answered with h11's
``error_status_hint`` and a JSON error body, then the connection is closed, because after
a framing error the position of the next request is unknown. An ``HTTPError`` raised by a
handler is its response; any other exception is logged and becomes a 500 with no detail.

Draining (``begin_drain``): a connection that is between requests closes at once; one
that is working finishes its current request, answers with ``Connection: close`` and
closes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Awaitable, Callable

import h11

from .message import REASONS, HTTPError, Peer, Request, Response

log = logging.getLogger("stalwart.http")

App = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Limits:
    """Per-connection limits; every time is in seconds."""

    max_header_bytes: int = 16 * 1024
    max_target_bytes: int = 8 * 1024
    max_body_bytes: int = 10 * 1024 * 1024
    idle_timeout: float = 60.0
    header_timeout: float = 30.0
    body_timeout: float = 30.0
    write_timeout: float = 30.0
    max_requests: int = 10_000


class _Closed(Exception):
    """The peer went away, or the server is draining an idle connection."""


class _Timeout(Exception):
    def __init__(self, during: str) -> None:
        super().__init__(during)
        self.during = during


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


class HttpConnection(asyncio.Protocol):
    """Serves HTTP/1.1 requests on one transport with ``app``."""

    def __init__(self, app: App, limits: Limits, *, listener: str = "",
                 admin_socket: bool = False,
                 on_open: Callable[["HttpConnection"], None] | None = None,
                 on_close: Callable[["HttpConnection"], None] | None = None) -> None:
        self.app = app
        self.limits = limits
        self.listener = listener
        self.admin_socket = admin_socket
        # Paired calls: connection_made then connection_lost. (A TLS client whose
        # handshake fails gets neither: the protocol was made but never connected.)
        self._on_open = on_open
        self._on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.peer: Peer | None = None
        self._task: asyncio.Task | None = None
        self._waiter: asyncio.Future | None = None
        self._idle = False            # waiting for the first byte of a new request
        self._reading_paused = False
        self._write_waiter: asyncio.Future | None = None
        self._write_paused = False
        self._lost = False
        self._draining = False
        self.requests_served = 0

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self._on_open is not None:
            self._on_open(self)
        sock = transport.get_extra_info("socket")
        tls = transport.get_extra_info("sslcontext") is not None
        creds = None
        address = None
        if sock is not None and sock.family == socket.AF_UNIX:
            try:
                creds = peer_credentials(sock)
            except OSError as exc:
                log.warning("cannot read peer credentials on %s: %s", self.listener, exc)
        else:
            peername = transport.get_extra_info("peername")
            if peername:
                address = (str(peername[0]), int(peername[1]))
        self.peer = Peer(address=address, uid=creds[1] if creds else None,
                         pid=creds[0] if creds else None, tls=tls,
                         admin_socket=self.admin_socket, listener=self.listener)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        elif not self._reading_paused:
            # Nobody asked for more: stop reading until the task has used what it has.
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        # Keep the write side open so the last request still gets its answer (half-close);
        # asyncio's TLS transports cannot do that and ignore the return value.
        return self.peer is not None and not self.peer.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        for fut in (self._waiter, self._write_waiter):
            if fut is not None and not fut.done():
                fut.set_exception(_Closed())
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    # ------------------------------------------------------------------ control

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    @property
    def idle(self) -> bool:
        return self._idle

    def begin_drain(self) -> None:
        """Finish the request in progress (if any), then close."""
        self._draining = True
        if self._idle and self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(_Closed())

    def abort(self) -> None:
        if self.transport is not None and not self._lost:
            self.transport.abort()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    # ------------------------------------------------------------------ reading

    async def _wait_for_data(self, timeout: float, during: str) -> None:
        if self._lost:
            raise _Closed()
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        try:
            await asyncio.wait_for(self._waiter, max(timeout, 0.0))
        except asyncio.TimeoutError:
            raise _Timeout(during) from None
        finally:
            self._waiter = None

    async def _next_request(self) -> h11.Request | None:
        """The next request head, or None when the client closed between requests."""
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                if deadline is None:
                    if self._draining:
                        raise _Closed()
                    self._idle = True
                    try:
                        await self._wait_for_data(self.limits.idle_timeout, "idle")
                    finally:
                        self._idle = False
                    deadline = loop.time() + self.limits.header_timeout
                else:
                    await self._wait_for_data(deadline - loop.time(), "head")
                continue
            if isinstance(event, h11.Request):
                return event
            if isinstance(event, h11.ConnectionClosed):
                return None
            raise RuntimeError(f"unexpected h11 event {event!r} while reading a request head")

    async def _read_body(self, head: h11.Request) -> bytes:
        limit = self.limits.max_body_bytes
        length = None
        for name, value in head.headers:
            if name == b"content-length":
                length = int(value)  # h11 has validated it
        if length is not None and length > limit:
            raise HTTPError(413, f"the request body is larger than {limit} bytes")
        if self.conn.they_are_waiting_for_100_continue:
            self._write(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        total = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                await self._wait_for_data(self.limits.body_timeout, "body")
            elif isinstance(event, h11.Data):
                total += len(event.data)
                if total > limit:
                    raise HTTPError(413, f"the request body is larger than {limit} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise _Closed()
            else:
                raise RuntimeError(f"unexpected h11 event {event!r} while reading a body")

    # ------------------------------------------------------------------ writing

    def _write(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data and not self._lost:
            self.transport.write(data)

    async def _drain(self) -> None:
        if not self._write_paused:
            return
        if self._lost:
            raise _Closed()
        self._write_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._write_waiter, self.limits.write_timeout)
        except asyncio.TimeoutError:
            raise _Timeout("write") from None
        finally:
            self._write_waiter = None

    async def _send(self, response: Response, *, head_only: bool, close: bool) -> None:
        headers: list[tuple[bytes, bytes]] = []
        for name, value in response.headers:
            lname = name.lower()
            if lname in ("connection", "transfer-encoding", "date"):
                continue            # framing is ours
            if lname == "content-length":
                if response.stream is None:
                    continue        # recomputed from the body below
            headers.append((lname.encode("ascii"), value.encode("latin-1")))
        headers.append((b"date", _http_date()))
        if response.stream is None and response.status not in (204, 304) \
                and not 100 <= response.status < 200:
            headers.append((b"content-length", str(len(response.body)).encode("ascii")))
        if close:
            headers.append((b"connection", b"close"))
        reason = REASONS.get(response.status, "").encode("ascii")
        self._write(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if response.stream is not None:
            try:
                if not head_only:
                    async for chunk in response.stream:
                        if chunk:
                            self._write(h11.Data(data=chunk))
                            await self._drain()
            finally:
                close_stream = getattr(response.stream, "aclose", None)
                if close_stream is not None:
                    await close_stream()
        elif response.body and not head_only and response.status not in (204, 304):
            self._write(h11.Data(data=response.body))
        self._write(h11.EndOfMessage())
        await self._drain()

    async def _send_error(self, status: int, detail: str, code: str | None = None) -> None:
        """Answer a request we could not read, if h11 still lets us, then close."""
        if self._lost or self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = HTTPError(status, detail, code=code).to_response()
        try:
            await self._send(response, head_only=False, close=True)
        except (h11.LocalProtocolError, _Closed, _Timeout):
            pass

    # ------------------------------------------------------------------ the loop

    async def _handle(self, request: Request) -> Response:
        try:
            response = await self.app(request)
        except HTTPError as exc:
            return exc.to_response()
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            return HTTPError(500, "internal server error").to_response()
        if not isinstance(response, Response):
            log.error("handler for %s %s returned %r, not a Response",
                      request.method, request.path, type(response).__name__)
            return HTTPError(500, "internal server error").to_response()
        return response

    async def _run(self) -> None:
        try:
            while True:
                head = await self._next_request()
                if head is None:
                    break
                if head.http_version not in (b"1.0", b"1.1"):
                    await self._send_error(505, "only HTTP/1.0 and HTTP/1.1 are served here",
                                           "http_version")
                    break
                # h11 bounds only an incomplete head; a head that arrives whole in one
                # read is measured here.
                if len(head.target) > self.limits.max_target_bytes:
                    await self._send_error(414, "the request target is too long")
                    break
                head_size = len(head.method) + len(head.target) + sum(
                    len(k) + len(v) + 4 for k, v in head.headers)
                if head_size > self.limits.max_header_bytes:
                    await self._send_error(431, "the request head is too large",
                                           "headers_too_large")
                    break
                method = head.method.decode("ascii", "replace").upper()
                try:
                    target = head.target.decode("ascii")
                except UnicodeDecodeError:
                    await self._send_error(400, "the request target is not ASCII", "bad_target")
                    break
                try:
                    body = await self._read_body(head)
                except HTTPError as exc:
                    # The body was not (completely) read: the connection cannot be reused.
                    if not self._lost:
                        await self._send(exc.to_response(), head_only=False, close=True)
                    break
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
                request = Request(method, target, headers, body, self.peer,
                                  http_version=head.http_version.decode("ascii"))
                response = await self._handle(request)
                if self._lost:
                    break
                self.requests_served += 1
                close = self._draining or self.requests_served >= self.limits.max_requests
                await self._send(response, head_only=(method == "HEAD"), close=close)
                if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                    break
                self.conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._send_error(exc.error_status_hint, f"malformed request: {exc}",
                                   "headers_too_large" if exc.error_status_hint == 431
                                   else "bad_request")
        except _Timeout as exc:
            if exc.during in ("head", "body"):
                await self._send_error(408, f"timed out while reading the request {exc.during}")
        except _Closed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP connection on %s failed", self.listener)
        finally:
            if self.transport is not None and not self._lost:
                self.transport.close()
