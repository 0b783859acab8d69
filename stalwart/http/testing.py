"""Harness for tests of HTTP endpoints (the REST API here; JMAP and WebAdmin later).

- ``free_port()``: a free TCP port on 127.0.0.1 inside the range the test suite may use.
- ``serving(app, ...)``: an async context manager that serves ``app`` on a temporary Unix
  socket and/or TCP port in the running loop and drains it afterwards.
- ``ServerThread``: the same in a thread with its own event loop, for synchronous
  clients (``http.client``, stalwart-cli); ``call(coro_factory)`` runs a coroutine in the
  server's loop (to seed or inspect a ``Store.memory()`` that lives there).
- ``RawClient``: sends raw bytes and parses replies with h11 in client mode, so tests can
  send malformed, split or pipelined requests and still read the answers exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import h11

from .connection import App, Limits
from .server import HttpServer

#: Ports the test suite may bind (loopback only).
PORT_RANGE = (21000, 21999)


def free_port(low: int = PORT_RANGE[0], high: int = PORT_RANGE[1]) -> int:
    """A port in [low, high] that 127.0.0.1 can bind right now."""
    ports = list(range(low, high + 1))
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def tcp_listener(port: int | None = None) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 in the test port range."""
    for _ in range(50):
        chosen = port or free_port()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", chosen))
        except OSError:
            sock.close()
            if port:
                raise
            continue
        sock.listen(64)
        return sock
    raise RuntimeError("could not bind a test port")


def unix_listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


@contextlib.asynccontextmanager
async def serving(app: App, *, unix_path: Path | None = None, tcp: bool = False,
                  admin: bool = True, ssl_context: ssl.SSLContext | None = None,
                  limits: Limits = Limits(), drain_timeout: float = 2.0
                  ) -> AsyncIterator[tuple[HttpServer, dict[str, Any]]]:
    """Serve ``app``; yields the server and {"unix": path, "port": int} of what it opened."""
    server = HttpServer(app, limits)
    where: dict[str, Any] = {}
    if unix_path is not None:
        await server.add_listener(unix_listener(unix_path), listener="admin", admin=admin)
        where["unix"] = unix_path
    if tcp:
        sock = tcp_listener()
        where["port"] = sock.getsockname()[1]
        await server.add_listener(sock, listener="http", ssl_context=ssl_context)
    try:
        yield server, where
    finally:
        await server.drain(drain_timeout)


class ServerThread:
    """Runs ``serving`` in a background thread; ``make_app`` runs in that thread's loop."""

    def __init__(self, make_app: Callable[[], Awaitable[App]], *, unix: bool = True,
                 tcp: bool = False, ssl_context: ssl.SSLContext | None = None,
                 limits: Limits = Limits()) -> None:
        self._make_app = make_app
        self._unix = unix
        self._tcp = tcp
        self._ssl = ssl_context
        self._limits = limits
        self._tmp = tempfile.TemporaryDirectory(prefix="stalwart-http-")
        self.unix_path: Path | None = Path(self._tmp.name) / "admin.sock" if unix else None
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="http-test-server",
                                        daemon=True)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            app = await self._make_app()
            async with serving(app, unix_path=self.unix_path, tcp=self._tcp,
                               ssl_context=self._ssl, limits=self._limits) as (_, where):
                self.port = where.get("port")
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # reported to the thread that waits in start()
            self._error = exc
            self._ready.set()

    def start(self) -> "ServerThread":
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError("test server failed to start") from self._error
        return self

    def call(self, factory: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
        """Run ``factory()`` in the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(factory(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._tmp.cleanup()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class RawClient:
    """A byte-level HTTP client over an asyncio stream; replies are parsed with h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def unix(cls, path: Path) -> "RawClient":
        return cls(*await asyncio.open_unix_connection(str(path)))

    @classmethod
    async def tcp(cls, port: int, ssl_context: ssl.SSLContext | None = None,
                  server_hostname: str | None = None) -> "RawClient":
        return cls(*await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context,
                                                  server_hostname=server_hostname))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 5.0, *, head: bool = False
                       ) -> tuple[h11.Response, dict[str, str], bytes]:
        """The next response: (h11 head, lower-cased headers, body).

        ``head`` tells the parser the request was HEAD (no body follows)."""
        if head:
            # h11 needs to know the request was HEAD to frame the reply; tell it.
            self.conn.send(h11.Request(method="HEAD", target="/", headers=[("host", "x")]))
            self.conn.send(h11.EndOfMessage())
        elif self.conn.our_state is h11.IDLE:
            self.conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            self.conn.send(h11.EndOfMessage())
        head_event = None
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                head_event = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected event {event!r}")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        headers = {k.decode().lower(): v.decode() for k, v in head_event.headers}
        return head_event, headers, bytes(body)

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the connection (EOF after any pending data)."""
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        return data == b""

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.close()
            await self.writer.wait_closed()
