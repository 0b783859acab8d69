"""``serve(ctx)``: the smtp and lmtp pools' worker entry point (docs/architecture.md).

For each of ``ctx.sockets`` whose listener protocol is smtp or lmtp, start an asyncio
server with an ``SmtpHandler``. Listener roles follow the listener:
- protocol ``lmtp``: LMTP (RFC 2033), local delivery only;
- implicit TLS (465, RFC 8314) or the id ``submission``: submission, AUTH required
  before MAIL (RFC 6409);
- otherwise MX (port 25): STARTTLS offered, AUTH only after TLS, no relay without AUTH.
When ``ctx.shutdown`` is set: stop accepting, give open sessions
``server.shutdown-timeout`` to finish, then cancel the rest.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from typing import Any

from .delivery import LocalDelivery
from .machine import SmtpConfig
from .policy import StoreAuthenticator, StorePolicy
from .session import SmtpHandler


def _seconds(value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def listener_config(listener: Any, hostname: str) -> SmtpConfig:
    lmtp = listener.protocol == "lmtp"
    submission = not lmtp and (listener.tls_implicit or listener.id.startswith("submission"))
    return SmtpConfig(hostname=hostname, lmtp=lmtp, submission=submission)


def build_handler(listener: Any, hostname: str, store: Any,
                  tls_context: ssl.SSLContext | None) -> SmtpHandler:
    return SmtpHandler(listener_config(listener, hostname), policy=StorePolicy(store),
                       authenticator=StoreAuthenticator(store),
                       delivery=LocalDelivery(store, hostname), tls_context=tls_context,
                       implicit_tls=listener.tls_implicit)


def _counted(ctx: Any, handler: SmtpHandler):
    """The handler, reporting each session to the worker context (title, idle exit)."""
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ctx.connection_opened()
        try:
            await handler(reader, writer)
        finally:
            ctx.connection_closed()
    return session


async def serve(ctx: Any) -> None:
    from stalwart.store.api import Store

    config = ctx.config
    hostname = config.get("server.hostname")
    store = await Store.open(config)
    tls_context = None
    if config.certificates:
        from stalwart.http.tls import server_context

        tls_context = server_context(config.certificates, alpn=())
    servers, handlers = [], []
    try:
        for listener, sock in ctx.sockets:
            if listener.protocol not in ("smtp", "lmtp"):
                continue
            handler = build_handler(listener, hostname, store, tls_context)
            handlers.append(handler)
            servers.append(await asyncio.start_server(
                _counted(ctx, handler), sock=sock,
                ssl=tls_context if listener.tls_implicit else None))
        await ctx.shutdown.wait()
    finally:
        for server in servers:
            server.close()
        tasks = [t for h in handlers for t in h.connections]
        if tasks:
            _, pending = await asyncio.wait(
                tasks, timeout=_seconds(config.get("server.shutdown-timeout")))
            for task in pending:
                task.cancel()
        await store.close()
