"""The queue process: ``async def serve(ctx)`` for the singleton kind ``queue``.

It opens the store, builds the process-wide resolver from the ``resolver.*`` settings,
routes the server's own domains to local delivery (a DSN to a local sender must not go
out to the MX of our own domain and come back; the store is asked at each attempt, so a
domain created later counts), serves the control socket ``<run_dir>/queue.sock``
(``control``: retry and cancel from the management API), and runs ``Queue.run`` until
``ctx.shutdown`` is set; attempts in flight get ``server.shutdown-timeout`` to finish.

New entries (queued by the SMTP workers) are found by polling the store's due index every
``queue.poll-interval``; an entry being delivered when the process dies is simply due
again when it restarts (its stored state is that of before the attempt), so a SIGKILL
loses nothing and at worst repeats an attempt.

Local delivery goes through ``Store.deliver`` with the account each address resolves to;
an address that resolves to no account fails with 550 5.1.1.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from stalwart.dns import Resolver, set_default_resolver

from .control import SOCKET_NAME, ControlServer
from .engine import Queue
from .model import QueuedMessage, QueuedRecipient, Reply
from .settings import QueueSettings

__all__ = ["serve", "resolver_from_config", "store_local_delivery"]

log = logging.getLogger("stalwart.queue")


def resolver_from_config(config: Any) -> Resolver:
    """``resolver.nameservers`` (``["127.0.0.1:53"]``; empty: /etc/resolv.conf),
    ``resolver.timeout``, ``resolver.lifetime``, ``resolver.cache-size``."""
    return Resolver.from_settings(config.get("resolver.nameservers") or (),
                                  timeout=config.get("resolver.timeout"),
                                  lifetime=config.get("resolver.lifetime"),
                                  cache_size=config.get("resolver.cache-size"))


def store_local_delivery(store: Any):
    """A ``LocalDeliver`` over ``Store.deliver`` (one commit for all local recipients)."""
    async def deliver(message: QueuedMessage, data: bytes,
                      rcpts: list[QueuedRecipient]) -> list[Reply]:
        header = f"Return-Path: <{message.return_path}>\r\n".encode("utf-8")
        accounts: list[int | None] = [store.resolve_address(r.address) for r in rcpts]
        unique = [a for i, a in enumerate(accounts) if a is not None and a not in accounts[:i]]
        by_account: dict[int, Reply] = {}
        if unique:
            results = await store.deliver([{"account": a} for a in unique], header + data)
            for account, result in zip(unique, results):
                if isinstance(result, dict) and "error" in result:
                    code = result["error"]
                    by_account[account] = (
                        Reply(552, "5.2.2", "mailbox full", remote=False)
                        if code == "over_quota" else
                        Reply(451, "4.3.0", f"local delivery failed: {code}", remote=False))
                else:
                    by_account[account] = Reply(250, "2.0.0", "delivered", remote=False)
        return [by_account[a] if a is not None else
                Reply(550, "5.1.1", "no such local user", remote=False) for a in accounts]
    return deliver


async def serve(ctx: Any) -> None:
    from stalwart.store.api import Store

    config = ctx.config
    resolver = resolver_from_config(config)
    set_default_resolver(resolver)
    store = await Store.open(config)
    control = None
    tls_reports = None
    try:
        settings = QueueSettings.from_config(config)
        queue = Queue(store, store.blobs, resolver, settings,
                      local=store_local_delivery(store),
                      is_local_domain=store.is_local_domain)
        control = ControlServer(queue, Path(config.run_dir) / SOCKET_NAME)
        await control.start()
        # MTA-STS and TLS-RPT on the deliverer; the daily TLS report job (RFC 8460).
        from stalwart.mailauth.tlsrpt import install as install_transport_security
        tls_reports = install_transport_security(queue, resolver, config, ctx.shutdown)
        if tls_reports is not None:
            tls_reports = asyncio.ensure_future(tls_reports)
        log.info("queue process running: concurrency %d, %d configured route(s)",
                 settings.concurrency, len(settings.routes))
        await queue.run(ctx.shutdown, drain_timeout=config.get("server.shutdown-timeout"))
    finally:
        if tls_reports is not None:
            tls_reports.cancel()
        if control is not None:
            await control.close()
        await store.close()
