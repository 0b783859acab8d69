"""The asyncio adapter: one SMTP/LMTP connection driven through ``SmtpMachine``.

The adapter owns what the machine must not: the socket, TLS (implicit, or STARTTLS via
``StreamWriter.start_tls``), timeouts, and the awaiting of policy, SASL and delivery. It
flushes queued replies whenever the machine needs more input (RFC 2920: one write per
pipeline), before STARTTLS and before closing.

Invariants
- The machine sees each byte once and in order; while a request is outstanding no input
  is fed (the read loop only reads on ``NEED_DATA``).
- Idle timeout (``idle_timeout`` between reads, RFC 5321 4.5.3.2 suggests minutes) and
  total session time (``max_duration``) end the session with 421.
- After STARTTLS, bytes the client sent before the handshake are dropped (CVE-2011-0411):
  the machine drops its own buffer and the adapter empties the stream's.
- Each failed AUTH is logged on the one stable line fail2ban matches
  (``stalwart.log.auth_failure``, as every protocol does) and delayed by
  ``auth_delay`` seconds times the session's failure count.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

from stalwart import log as stalwart_log
from stalwart import sasl
from stalwart.protocols.base import NEED_DATA
from stalwart.store.errors import StoreError

from . import codes
from .events import (CLOSE, TEMPFAIL, Authenticate, AuthOutcome, CheckRecipient, CheckSender,
                     Deliver, Session, StartTls, Verdict)
from .machine import SmtpConfig, SmtpMachine

log = logging.getLogger("stalwart.smtp")
READ_SIZE = 64 * 1024


class SmtpHandler:
    """Serves connections for one listener; shared by all of its connections."""

    def __init__(self, config: SmtpConfig, *, policy: Any, authenticator: Any, delivery: Any,
                 tls_context: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 idle_timeout: float = 300.0, max_duration: float = 3600.0,
                 auth_delay: float = 1.0) -> None:
        self.config = config
        self.policy = policy
        self.authenticator = authenticator
        self.delivery = delivery
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self.auth_delay = auth_delay
        self.connections: set[asyncio.Task] = set()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            await self.run(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("smtp connection ended: %s", exc)
        finally:
            if task is not None:
                self.connections.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

    def _session(self, writer: asyncio.StreamWriter) -> Session:
        peer = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        session = Session(remote_ip=str(peer[0]), remote_port=int(peer[1]),
                          local_ip=str(local[0]), local_port=int(local[1]))
        if self.implicit_tls:
            self._tls_info(session, writer)
        return session

    @staticmethod
    def _tls_info(session: Session, writer: asyncio.StreamWriter) -> None:
        obj = writer.get_extra_info("ssl_object")
        session.tls = True
        if obj is not None:
            session.tls_version = obj.version() or ""
            cipher = obj.cipher()
            session.tls_cipher = cipher[0] if cipher else ""

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = self.config
        if self.tls_context is None and config.starttls:
            config = _replace(config, starttls=False)
        m = SmtpMachine(config, self._session(writer))
        deadline = time.monotonic() + self.max_duration
        while True:
            event = m.next_event()
            if event is NEED_DATA:
                writer.write(m.data_to_send())
                await writer.drain()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    m.shutdown(codes.SESSION_TOO_LONG)
                    continue
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE),
                                                  min(self.idle_timeout, remaining))
                except asyncio.TimeoutError:
                    m.shutdown(codes.TIMEOUT if remaining > self.idle_timeout
                               else codes.SESSION_TOO_LONG)
                    continue
                m.receive_data(data)
            elif event is CLOSE:
                out = m.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
                return
            elif isinstance(event, StartTls):
                writer.write(m.data_to_send())
                await writer.drain()
                _drop_buffered(reader)
                try:
                    await writer.start_tls(self.tls_context)
                except (ssl.SSLError, ConnectionError, OSError) as exc:
                    log.info("smtp STARTTLS failed from %s: %s", m.session.remote_ip, exc)
                    m.answer(False)
                    continue
                self._tls_info(m.session, writer)
                m.answer(True)
            else:
                await self.handle(m, event)

    async def handle(self, m: SmtpMachine, event: Any) -> None:
        if isinstance(event, CheckSender):
            m.answer(await self._verdict(self.policy.check_sender(event.session, event.path,
                                                                  event.params)))
        elif isinstance(event, CheckRecipient):
            m.answer(await self._verdict(self.policy.check_recipient(
                event.session, event.envelope, event.path, event.params)))
        elif isinstance(event, Authenticate):
            req = event.request
            try:
                if isinstance(req, sasl.VerifyPassword):
                    value = await self.authenticator.verify_password(req.authcid, req.password,
                                                                     req.authzid)
                else:
                    value = await self.authenticator.scram_credentials(req.authcid, req.authzid)
            except StoreError:
                value = TEMPFAIL
            m.answer(value)
        elif isinstance(event, Deliver):
            m.answer(await self.delivery.deliver(event))
        elif isinstance(event, AuthOutcome):
            if not event.success and event.reason != "cancelled by the client":
                stalwart_log.auth_failure("smtp", event.session.remote_ip, event.authcid or "",
                                          f"{event.mechanism}: {event.reason}")
                await asyncio.sleep(self.auth_delay * event.failures)
        else:  # pragma: no cover - every event type is handled above
            raise AssertionError(f"unhandled SMTP event {event!r}")

    @staticmethod
    async def _verdict(coro) -> Verdict:
        try:
            return await coro
        except StoreError:
            return Verdict(codes.TEMP_LOOKUP)


def _drop_buffered(reader: asyncio.StreamReader) -> None:
    """Empty the stream's buffer before STARTTLS: those octets came in clear text.
    asyncio has no public API for this; the buffer is a bytearray in CPython."""
    buffer = getattr(reader, "_buffer", None)
    if isinstance(buffer, bytearray):
        buffer.clear()


def _replace(config: SmtpConfig, **changes: Any) -> SmtpConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)
