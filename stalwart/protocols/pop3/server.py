"""``serve(ctx)``: the pop3 pool's worker entry point (docs/architecture.md, worker
contract).

For each of ``ctx.sockets`` whose listener protocol is pop3, an asyncio server with a
``Pop3Handler``:

- implicit TLS when the listener says so (995, RFC 8314); else clear text (110) with STLS
  offered when a certificate is configured (RFC 2595). TLS contexts come from
  ``stalwart.http.tls.server_context`` with ALPN "pop3" (RFC 7301 / IANA). An
  implicit-TLS listener without certificates is not served (an error in the log); the
  other listeners still are.
- Plain-text logins (USER/PASS, PLAIN, LOGIN) need TLS, except from a loopback peer.
- Failed logins and bans: shared with SMTP and IMAP (the same limit table and the same
  ``smtp.auth-penalty.*`` / ``smtp.limits.exempt`` settings, see
  ``stalwart.protocols.imap.server.penalty_from_config``): one ban covers every protocol.
- The store: ``Store.open(ctx.config)`` (IPC to the store process for the expunge at
  QUIT, this process's RocksDB secondary for reads and message content).

Connections are counted through ``ctx.connection_opened/closed`` (process title). When
``ctx.shutdown`` is set: stop accepting, tell every session to end after its current
command (``-ERR [SYS/TEMP] Server shutting down``, no UPDATE), wait up to
``server.shutdown-timeout``, cancel the rest, close the store.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from typing import Any

from .machine import Pop3Config
from .services import StoreServices
from .session import Pop3Handler

log = logging.getLogger("stalwart.pop3")


def _seconds(value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def tls_context_for(config: Any) -> ssl.SSLContext | None:
    if not getattr(config, "certificates", None):
        return None
    from stalwart.http.tls import server_context

    return server_context(config.certificates, alpn=("pop3",))


async def serve(ctx: Any) -> None:
    """Serve every pop3 listener of ``ctx.sockets`` until ``ctx.shutdown`` is set."""
    from stalwart.store.api import Store

    config = ctx.config
    store = await Store.open(config)
    servers: list[asyncio.AbstractServer] = []
    handlers: list[Pop3Handler] = []
    try:
        tls_context = tls_context_for(config)
        services = StoreServices(store)
        pop_config = Pop3Config(hostname=str(config.get("server.hostname")))
        from stalwart.protocols.imap.server import penalty_from_config
        limits = penalty_from_config(config, "pop3")
        for listener, sock in ctx.sockets:
            if listener.protocol != "pop3":
                continue
            if listener.tls_implicit and tls_context is None:
                log.error("pop3 listener %r needs TLS but no [certificate] is configured; "
                          "it is not served", listener.id)
                continue
            handler = Pop3Handler(pop_config, services, tls_context=tls_context,
                                  implicit_tls=listener.tls_implicit, ctx=ctx,
                                  limits=limits, auth_delay=limits.auth.delay)
            handlers.append(handler)
            servers.append(await asyncio.start_server(
                handler, sock=sock, ssl=tls_context if listener.tls_implicit else None,
                ssl_handshake_timeout=30.0 if listener.tls_implicit else None))
        # Replaced by a reload: stop accepting, keep the open sessions (ctx.retire).
        ctx.on_retire(lambda: [s.close() for s in servers])
        await ctx.shutdown.wait()
    finally:
        for server in servers:
            server.close()
        for handler in handlers:
            handler.drain()
        timeout = _seconds(config.get("server.shutdown-timeout"))
        await asyncio.gather(*(h.wait_closed(timeout) for h in handlers))
        await store.close()
