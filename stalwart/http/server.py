"""The http pool worker: serves every http listener of its slot and the admin socket.

``serve(ctx)`` is the entry point the worker registry names for the ``http`` kind (the
worker contract in docs/architecture.md). It

1. builds the application (``build_app``): a ``Router`` with ``GET /healthz`` and the REST
   management API under ``/api``; JMAP and the WebAdmin mount their routers here later;
2. starts an asyncio server on each of ``ctx.sockets`` whose listener protocol is ``http``
   (implicit TLS when ``tls_implicit``; the contexts come from ``Config.certificates``)
   and on ``ctx.admin_socket`` (plain HTTP over the Unix socket, where the API trusts the
   peer's SO_PEERCRED uid instead of a password);
3. waits for ``ctx.shutdown``; then stops accepting, lets open connections finish their
   current request for up to ``server.shutdown-timeout`` seconds, aborts the rest, and
   closes the store connection.

The store is opened lazily, on the first request that needs it, and re-opened after a
failure: ``/healthz`` answers while the store process is still starting, and the API
answers 503 ``unavailable`` until the store is reachable.

``HttpServer`` is the reusable part (tests run it on temporary sockets).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import ssl
import sys
from typing import Any, Awaitable, Callable

from .connection import App, HttpConnection, Limits
from .message import Request, Response
from .router import Router
from .tls import server_context

log = logging.getLogger("stalwart.http")


class HttpServer:
    """Runs ``app`` on any number of listening sockets and drains them on request."""

    def __init__(self, app: App, limits: Limits = Limits(), *,
                 on_open: Callable[[], None] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.app = app
        self.limits = limits
        self._on_open, self._on_close = on_open, on_close
        self.connections: set[HttpConnection] = set()
        self._servers: list[asyncio.AbstractServer] = []

    async def add_listener(self, sock: socket.socket, *, listener: str,
                           ssl_context: ssl.SSLContext | None = None,
                           admin: bool = False) -> None:
        """Start serving on an already bound and listening socket."""
        loop = asyncio.get_running_loop()

        # Counted from connection_made to connection_lost: a TLS handshake that fails
        # calls neither, so it leaves no phantom connection (which would keep an
        # on-demand worker from ever leaving, and a drain waiting).
        def opened(conn: HttpConnection) -> None:
            self.connections.add(conn)
            if self._on_open is not None:
                self._on_open()

        def closed(conn: HttpConnection) -> None:
            if conn in self.connections:
                self.connections.discard(conn)
                if self._on_close is not None:
                    self._on_close()

        def factory() -> HttpConnection:
            return HttpConnection(self.app, self.limits, listener=listener,
                                  admin_socket=admin, on_open=opened, on_close=closed)

        if sock.family == socket.AF_UNIX:
            kwargs: dict[str, Any] = {}
            if sys.version_info >= (3, 13):
                # The admin socket is shared by every http worker and owned by the master:
                # a worker that stops must not unlink it.
                kwargs["cleanup_socket"] = False
            server = await loop.create_unix_server(factory, sock=sock, ssl=ssl_context,
                                                   **kwargs)
        else:
            server = await loop.create_server(
                factory, sock=sock, ssl=ssl_context,
                ssl_handshake_timeout=self.limits.header_timeout if ssl_context else None)
        self._servers.append(server)

    async def drain(self, timeout: float) -> None:
        """Stop accepting, finish requests in progress for ``timeout`` s, abort the rest."""
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.begin_drain()
        tasks = {c.task for c in self.connections if c.task is not None}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
            for conn in list(self.connections):
                conn.abort()
            for task in pending:
                task.cancel()
            if pending:
                log.warning("aborted %d HTTP connections still busy after %.1fs",
                            len(pending), timeout)
                await asyncio.wait(pending, timeout=1.0)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


class StoreHandle:
    """Opens the store on first use and again after it became unreachable."""

    def __init__(self, opener: Callable[[], Awaitable[Any]]) -> None:
        self._opener = opener
        self._store: Any = None
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        if self._store is not None:
            return self._store
        async with self._lock:
            if self._store is None:
                self._store = await self._opener()
            return self._store

    async def reset(self) -> None:
        """Forget the current store (after an ``unavailable`` error), closing it."""
        store, self._store = self._store, None
        if store is not None:
            try:
                await store.close()
            except Exception as exc:   # the store is already broken; closing is best effort
                log.debug("closing a failed store connection: %s", exc)

    async def close(self) -> None:
        await self.reset()


def _seconds(value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def health_handler(ctx: Any) -> Callable[[Request], Awaitable[Response]]:
    async def healthz(request: Request) -> Response:
        return Response.json({"kind": ctx.kind, "slot": ctx.slot, "pid": os.getpid(),
                              "generation": ctx.generation},
                             headers=[("cache-control", "no-store")])
    return healthz


def build_app(ctx: Any, store: StoreHandle) -> Router:
    """The http pool's routes: /healthz and the management API under /api."""
    from .api import build_router as build_api_router

    router = Router()
    router.add("GET", "/healthz", health_handler(ctx))
    router.mount("/api", build_api_router(ctx.config, store))
    from .wellknown import add_routes as add_wellknown_routes    # /.well-known/mta-sts.txt
    add_wellknown_routes(router, ctx.config, store)
    return router


async def _open_store(config: Any) -> Any:
    from stalwart.store.api import Store   # imported here: the store is opened on demand
    return await Store.open(config)


async def serve(ctx: Any) -> None:
    """Serve ctx.sockets (protocol http) and ctx.admin_socket until ctx.shutdown is set."""
    config = ctx.config
    store = StoreHandle(lambda: _open_store(config))
    router = build_app(ctx, store)
    server = HttpServer(router.dispatch, on_open=ctx.connection_opened,
                        on_close=ctx.connection_closed)
    tls_context: ssl.SSLContext | None = None
    try:
        for listener, sock in ctx.sockets:
            if listener.protocol != "http":
                continue
            if listener.tls_implicit and tls_context is None:
                tls_context = server_context(config.certificates)
            await server.add_listener(sock, listener=listener.id,
                                      ssl_context=tls_context if listener.tls_implicit
                                      else None)
        if ctx.admin_socket is not None:
            await server.add_listener(ctx.admin_socket, listener="admin", admin=True)
        # No retire hook: after a reload this worker drains at once (requests in flight
        # finish, idle keep-alive connections close; clients simply reconnect).
        await ctx.shutdown.wait()
    finally:
        await server.drain(_seconds(config.get("server.shutdown-timeout")))
        await store.close()
