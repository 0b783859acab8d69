"""``serve(ctx)``: the smtp and lmtp pools' worker entry point (docs/architecture.md).

For each of ``ctx.sockets`` whose listener protocol is smtp or lmtp, start an asyncio
server with an ``SmtpHandler``. Listener roles follow the listener:
- protocol ``lmtp``: LMTP (RFC 2033), local delivery only;
- implicit TLS (465, RFC 8314) or the id ``submission``: submission, AUTH required
  before MAIL (RFC 6409);
- otherwise MX (port 25): STARTTLS offered, AUTH only after TLS, no relay without AUTH.
When ``ctx.shutdown`` is set: stop accepting, give open sessions
``server.shutdown-timeout`` to finish, then cancel the rest.

Settings (``stalwart/config/settings/smtp.py``) become the machine's ``SmtpConfig``
(``smtp.session.*``), the handler's timeouts, the per-client ``ClientLimits`` over the
table every smtp worker maps (``run/limits-<slots>.table``, see ``stalwart.limits``; its
epoch is the master's pid, so a restarted daemon starts with no open connections counted)
and the duplicate window (the store handed to ``LocalDelivery`` is wrapped in
``DeduplicatingStore``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ssl
from typing import Any

from stalwart.limits import AuthPenalty, ClientLimits, LimitTable, open_shared_table

from .delivery import LocalDelivery
from .machine import SmtpConfig
from .policy import StoreAuthenticator, StorePolicy
from .session import DeduplicatingStore, SmtpHandler


def _seconds(value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    """The ``smtp.*`` settings one worker applies to all of its listeners."""

    max_recipients: int = 100
    max_messages: int = 100
    max_message_size: int = 50 * 1024 * 1024
    max_errors: int = 10
    max_auth_failures: int = 3
    max_pipeline: int = 500
    max_line_length: int = 512
    idle_timeout: float = 300.0
    max_duration: float = 3600.0
    dedup_window: float = 0.0

    @classmethod
    def from_config(cls, config: Any) -> "SmtpSettings":
        get = config.get
        return cls(max_recipients=get("smtp.session.max-recipients"),
                   max_messages=get("smtp.session.max-messages"),
                   max_message_size=get("smtp.session.max-message-size"),
                   max_errors=get("smtp.session.max-errors"),
                   max_auth_failures=get("smtp.session.max-auth-failures"),
                   max_pipeline=get("smtp.session.max-pipeline"),
                   max_line_length=get("smtp.session.max-line-length"),
                   idle_timeout=_seconds(get("smtp.session.idle-timeout")),
                   max_duration=_seconds(get("smtp.session.max-duration")),
                   dedup_window=_seconds(get("smtp.deduplicate.window")))


def client_limits(config: Any, table: LimitTable) -> ClientLimits:
    """The per-client limits of ``config`` over ``table``."""
    get = config.get
    return ClientLimits(
        table, name="smtp", exempt=tuple(get("smtp.limits.exempt")),
        concurrency=get("smtp.limits.concurrency"),
        connection_rate=get("smtp.limits.connection-rate"),
        message_rate=get("smtp.limits.message-rate"),
        account_message_rate=get("smtp.limits.account-message-rate"),
        auth=AuthPenalty(delay_after=get("smtp.auth-penalty.delay-after"),
                         delay=_seconds(get("smtp.auth-penalty.delay")),
                         max_delay=_seconds(get("smtp.auth-penalty.max-delay")),
                         ban_after=get("smtp.auth-penalty.ban-after"),
                         window=_seconds(get("smtp.auth-penalty.window")),
                         ban_time=_seconds(get("smtp.auth-penalty.ban-time"))))


def open_table(config: Any) -> LimitTable:
    """This worker's mapping of the shared table (``stalwart.limits.open_shared_table``)."""
    return open_shared_table(config, config.get("smtp.limits.table-slots"))


def listener_config(listener: Any, hostname: str,
                    settings: SmtpSettings = SmtpSettings()) -> SmtpConfig:
    lmtp = listener.protocol == "lmtp"
    submission = not lmtp and (listener.tls_implicit or listener.id.startswith("submission"))
    return SmtpConfig(hostname=hostname, lmtp=lmtp, submission=submission,
                      max_message_size=settings.max_message_size,
                      max_recipients=settings.max_recipients,
                      max_messages=settings.max_messages, max_errors=settings.max_errors,
                      max_auth_failures=settings.max_auth_failures,
                      max_pipeline=settings.max_pipeline,
                      max_line_length=settings.max_line_length)


def build_handler(listener: Any, hostname: str, store: Any,
                  tls_context: ssl.SSLContext | None,
                  settings: SmtpSettings = SmtpSettings(),
                  limits: ClientLimits | None = None) -> SmtpHandler:
    delivery_store = (DeduplicatingStore(store, settings.dedup_window)
                      if settings.dedup_window > 0 else store)
    return SmtpHandler(listener_config(listener, hostname, settings),
                       policy=StorePolicy(store), authenticator=StoreAuthenticator(store),
                       delivery=LocalDelivery(delivery_store, hostname),
                       tls_context=tls_context, implicit_tls=listener.tls_implicit,
                       idle_timeout=settings.idle_timeout, max_duration=settings.max_duration,
                       auth_delay=limits.auth.delay if limits is not None else 1.0,
                       limits=limits, dedup_window=settings.dedup_window)


async def serve(ctx: Any) -> None:
    from stalwart.store.api import Store

    config = ctx.config
    hostname = config.get("server.hostname")
    store = await Store.open(config)
    tls_context = None
    if config.certificates:
        from stalwart.http.tls import server_context

        tls_context = server_context(config.certificates, alpn=())
    settings = SmtpSettings.from_config(config)
    from stalwart.queue.control import SOCKET_NAME, QueueWaker
    waker = QueueWaker(config.run_dir / SOCKET_NAME)
    from stalwart.mailauth.inbound import InboundAuth
    from stalwart.mailauth.signopts import SignOptions
    inbound = InboundAuth.from_config(config)
    table = open_table(config)
    limits = client_limits(config, table)
    servers, handlers = [], []
    try:
        for listener, sock in ctx.sockets:
            if listener.protocol not in ("smtp", "lmtp"):
                continue
            handler = build_handler(listener, hostname, store, tls_context, settings, limits)
            handler.delivery.inbound = inbound      # SPF/DKIM/DMARC (stalwart.mailauth)
            handler.delivery.wake_queue = waker     # first attempt without waiting a poll
            handler.delivery.dkim_sign = SignOptions.from_config(config)   # auth.dkim.sign.*
            handler.delivery.hop_limit = config.get("smtp.hop-limit")  # RFC 5321 6.3
            handler.on_open = ctx.connection_opened
            handler.on_close = ctx.connection_closed
            handlers.append(handler)
            servers.append(await asyncio.start_server(
                handler, sock=sock,
                ssl=tls_context if listener.tls_implicit else None))
        # Replaced by a reload: stop accepting, keep the open sessions (ctx.retire).
        ctx.on_retire(lambda: [s.close() for s in servers])
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
            if pending:
                await asyncio.wait(pending, timeout=5)
        await store.close()
