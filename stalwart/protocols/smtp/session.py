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
  (``stalwart.log.auth_failure``, as every protocol does). With ``limits`` (a
  ``stalwart.limits.ClientLimits`` over the table every worker shares) the failure is
  counted per client address across processes: from the penalty's ``delay_after``-th
  failure the answer waits, doubling each time, and the ``ban_after``-th bans the address
  (this connection gets ``421 4.7.0`` and is closed). Without ``limits``, or for an
  exempt address (loopback by default: a webmail's users all come from there), the delay
  is ``auth_delay`` seconds times this session's failure count, and nothing is banned.

Per-client limits (``limits``; not on LMTP): at connect a banned client, one over its
concurrent connections or over its connection rate gets ``421 4.7.0`` instead of the
greeting and is closed (Postfix's answer); an allowed connection holds one concurrency
unit until it closes. At MAIL FROM the client's message rate and, once authenticated, the
account's are counted: over them ``451 4.7.1`` (RFC 5321 4.3.2 lists 451 for MAIL; 4.7.1
"delivery not authorized", temporary: the client retries later). A client banned while
connected is refused further AUTH attempts (``454 4.7.0``, then ``421``).

Duplicate suppression (``dedup_window`` > 0): the ``Deliver`` request is answered with the
``dedup_key`` of the message in the context variable ``DEDUP_KEY``; the store wrapper
``DeduplicatingStore`` (built by server.py around the store given to the delivery) turns
the local delivery into ``Store.deliver_once``, which in the same store commit skips the
accounts that already received that key within the window and records it for the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
import ssl
import time
from typing import Any

from stalwart import log as stalwart_log
from stalwart import sasl
from stalwart.limits import Refusal, client_key
from stalwart.protocols.base import NEED_DATA
from stalwart.store.errors import StoreError

from . import codes
from .codes import Reply
from .events import (CLOSE, TEMPFAIL, Authenticate, AuthOutcome, CheckRecipient, CheckSender,
                     Deliver, Session, StartTls, Verdict)
from .machine import SmtpConfig, SmtpMachine

log = logging.getLogger("stalwart.smtp")
READ_SIZE = 64 * 1024
#: Messages up to this size are hashed for the dedup key on the event loop.
HASH_INLINE = 256 * 1024


# ---------------------------------------------------------------------- limit replies
def refusal_reply(refusal: Any, hostname: str, ip: str) -> Reply:
    """The reply for a ``stalwart.limits.Refusal`` (Postfix's wording where it has one)."""
    reason = refusal.reason
    if reason == "banned":
        return codes.reply(421, "4.7.0", f"{hostname} Error: too many failed logins from "
                                         f"{ip}, try again later")
    if reason == "connections":
        return codes.reply(421, "4.7.0", f"{hostname} Error: too many connections from {ip}")
    if reason == "connection-rate":
        return codes.reply(421, "4.7.0", f"{hostname} Error: too many connections from {ip}, "
                                         f"try again in {max(1, round(refusal.retry_after))}s")
    if reason == "account-message-rate":
        return codes.reply(451, "4.7.1", "Error: too much mail from this account, try again "
                                         "later")
    return codes.reply(451, "4.7.1", f"Error: too much mail from {ip}, try again later")


def banned_reply(hostname: str, ip: str) -> Reply:
    return refusal_reply(Refusal("banned", client_key(ip)), hostname, ip)


# ---------------------------------------------------------------------- duplicates
#: The dedup key of the message being delivered by the current task (see module doc).
DEDUP_KEY: contextvars.ContextVar[bytes | None] = contextvars.ContextVar(
    "stalwart_smtp_dedup_key", default=None)

_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*((?:[^\r\n]|\r?\n[ \t])*)",
                         re.IGNORECASE | re.MULTILINE)


def dedup_key(message: bytes) -> bytes | None:
    """A digest naming one message for duplicate suppression: its Message-ID and the
    SHA-256 of its content (as the client sent it, before our trace headers). None when
    the header section has no Message-ID: such messages are never deduplicated."""
    end = message.find(b"\r\n\r\n")
    header = message if end < 0 else message[:end + 2]
    if header.startswith(b"\r\n"):
        return None
    m = _MESSAGE_ID.search(header)
    if m is None:
        return None
    message_id = b" ".join(m.group(1).split())
    if not message_id:
        return None
    return hashlib.sha256(b"stalwart-dedup\x00" + message_id + b"\x00"
                          + hashlib.sha256(message).digest()).digest()[:16]


class DeduplicatingStore:
    """The store as ``LocalDelivery`` sees it: ``deliver`` becomes ``deliver_once`` when
    the current task set ``DEDUP_KEY``; everything else passes through."""

    def __init__(self, store: Any, window: float) -> None:
        self._store = store
        self.window = window

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def deliver(self, recipients: list[dict], message: bytes, **kwargs: Any) -> list:
        key = DEDUP_KEY.get()
        if key is None or self.window <= 0:
            return await self._store.deliver(recipients, message, **kwargs)
        return await self._store.deliver_once(recipients, message, dedup=key,
                                              window=int(self.window), **kwargs)


class SmtpHandler:
    """Serves connections for one listener; shared by all of its connections."""

    def __init__(self, config: SmtpConfig, *, policy: Any, authenticator: Any, delivery: Any,
                 tls_context: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 idle_timeout: float = 300.0, max_duration: float = 3600.0,
                 auth_delay: float = 1.0, limits: Any = None,
                 dedup_window: float = 0.0) -> None:
        self.config = config
        self.policy = policy
        self.authenticator = authenticator
        self.delivery = delivery
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self.auth_delay = auth_delay
        self.limits = limits if not config.lmtp else None
        self.dedup_window = dedup_window
        self.connections: set[asyncio.Task] = set()
        #: Observers of connection counts (the worker's ``connection_opened/closed``).
        self.on_open: Any = None
        self.on_close: Any = None

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        if self.on_open is not None:
            self.on_open()
        ip, admitted = "", False
        try:
            peer = writer.get_extra_info("peername") or ("", 0)
            ip = str(peer[0])
            if self.limits is not None:
                refusal = self.limits.connect(ip)
                if refusal is not None:
                    log.info("smtp connection from %s refused: %s (%s)", ip, refusal.reason,
                             refusal.key)
                    await self.refuse(writer, refusal_reply(refusal, self.config.hostname, ip))
                    return
                admitted = True
            await self.run(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("smtp connection ended: %s", exc)
        finally:
            if admitted:
                self.limits.disconnect(ip)
            if self.on_close is not None:
                self.on_close()
            if task is not None:
                self.connections.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

    async def refuse(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        """Answer a connection with ``reply`` instead of the greeting, through the
        machine (so the wire form is the machine's), and close."""
        m = SmtpMachine(self.config, self._session(writer), refuse=reply)
        writer.write(m.data_to_send())
        await writer.drain()

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
            refused = self._message_refusal(event.session)
            if refused is not None:
                m.answer(Verdict(refused))
                return
            m.answer(await self._verdict(self.policy.check_sender(event.session, event.path,
                                                                  event.params)))
        elif isinstance(event, CheckRecipient):
            m.answer(await self._verdict(self.policy.check_recipient(
                event.session, event.envelope, event.path, event.params)))
        elif isinstance(event, Authenticate):
            req = event.request
            ip = event.session.remote_ip
            if self.limits is not None and self.limits.banned(ip) > 0:
                # Banned meanwhile (by this connection or another): no more guesses.
                m.answer(TEMPFAIL)
                m.shutdown(banned_reply(self.config.hostname, ip))
                return
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
            key = None
            if self.dedup_window > 0:
                # Hashing a large message would stall every session of this worker.
                key = (dedup_key(event.message) if len(event.message) < HASH_INLINE
                       else await asyncio.to_thread(dedup_key, event.message))
            token = DEDUP_KEY.set(key)
            try:
                m.answer(await self.delivery.deliver(event))
            finally:
                DEDUP_KEY.reset(token)
        elif isinstance(event, AuthOutcome):
            if not event.success and event.reason != "cancelled by the client":
                ip = event.session.remote_ip
                stalwart_log.auth_failure("smtp", ip, event.authcid or "",
                                          f"{event.mechanism}: {event.reason}")
                if self.limits is None or self.limits.is_exempt(ip):
                    # Not counted per address (exempt: a webmail's users share it).
                    await asyncio.sleep(self.auth_delay * event.failures)
                    return
                delay, banned = self.limits.auth_failed(ip)
                if delay > 0:
                    await asyncio.sleep(delay)
                if banned:
                    log.warning("smtp: %s banned for %ds after repeated failed logins", ip,
                                int(self.limits.auth.ban_time))
                if banned or self.limits.banned(ip) > 0:
                    m.shutdown(banned_reply(self.config.hostname, ip))
        else:  # pragma: no cover - every event type is handled above
            raise AssertionError(f"unhandled SMTP event {event!r}")

    def _message_refusal(self, session: Session) -> Reply | None:
        """The message rates (per client address, per account) at MAIL FROM."""
        if self.limits is None:
            return None
        account = None
        if session.authenticated:
            identity = session.identity
            name = identity.get("name") if isinstance(identity, dict) else None
            account = str(name or session.authcid)
        refusal = self.limits.message(session.remote_ip, account)
        if refusal is None:
            return None
        log.info("smtp MAIL from %s refused: %s (%s)", session.remote_ip, refusal.reason,
                 refusal.key)
        return refusal_reply(refusal, self.config.hostname, session.remote_ip)

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
