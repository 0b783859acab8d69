"""The asyncio adapter: one POP3 connection driven through ``Pop3Machine``.

The adapter owns what the machine must not: the socket, TLS (implicit on 995, or STLS
via ``StreamWriter.start_tls``), the autologout timer, backpressure, the drain, and the
awaiting of the store (``StoreServices``).

Invariants
- The machine sees each byte once and in order; while a request is outstanding no input
  is fed (the loop reads only on ``NEED_DATA``), and at most one read (64 KiB) is
  buffered, so a client that pipelines without reading cannot grow memory: its replies
  wait in the transport until it reads, and we stop reading meanwhile.
- Backpressure for RETR: the machine hands out one encoded chunk per ``SEND``; the
  adapter writes it and awaits ``drain()`` before asking for the next, so a message of
  any size costs one chunk of memory per connection, and a client that stops reading
  stalls only its own session.
- Autologout (RFC 1939 3: "at least 10 minutes"): ``idle_timeout`` seconds without input
  closes the connection *without* a response and without the UPDATE state (messages
  marked deleted stay).
- STLS: the +OK is flushed before the handshake; octets the client sent before it are
  dropped from the stream's buffer and the machine's (CVE-2011-0411 class).
- Drain (``drain()``, on ``ctx.shutdown``): a session waiting for a command gets
  ``-ERR [SYS/TEMP] Server shutting down`` at once; one in the middle of a command gets it
  when the command is done (a RETR in flight completes). No UPDATE: a client that did
  not QUIT keeps its messages.
- Each failed login is logged on the stable fail2ban line (``stalwart.log.auth_failure``).
  Without ``limits`` (or from an exempt address) it is answered after ``auth_delay``
  seconds times the session's failure count. With ``limits`` (a
  ``stalwart.limits.ClientLimits`` over the table SMTP and IMAP share) it is counted per
  client address across processes and protocols: from the penalty's ``delay_after``-th
  failure the -ERR waits a growing delay, and the ``ban_after``-th bans the address.
  A banned address is greeted with ``-ERR [SYS/TEMP]`` (``codes.BANNED``) and closed; a
  session of it that tries to log in (opened before the ban) gets the same as the answer
  to that command and is closed, its credentials unchecked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import ssl
from typing import Any

from stalwart import log as stalwart_log
from stalwart.protocols.base import NEED_DATA

from . import codes
from .events import CLOSE, SEND, Authenticate, AuthOutcome, Session, StartTls
from .machine import Pop3Config, Pop3Machine

log = logging.getLogger("stalwart.pop3")

READ_SIZE = 64 * 1024
#: RFC 1939 3: the autologout timer is at least 10 minutes.
IDLE_TIMEOUT = 600.0
_TIMEOUT = object()
_DRAIN = object()


def is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class Pop3Handler:
    """Serves the connections of one listener (``asyncio.start_server`` callback)."""

    def __init__(self, config: Pop3Config, services: Any, *,
                 tls_context: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 idle_timeout: float = IDLE_TIMEOUT, auth_delay: float = 1.0,
                 ctx: Any = None, limits: Any = None) -> None:
        if tls_context is None and config.starttls:
            config = dataclasses.replace(config, starttls=False)
        self.config = config
        self.services = services
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.idle_timeout = idle_timeout
        self.auth_delay = auth_delay
        self.ctx = ctx
        self.limits = limits
        self.connections: set[asyncio.Task] = set()
        self.machines: set[Pop3Machine] = set()
        self.draining = False
        self._drain_event: asyncio.Event | None = None

    # ------------------------------------------------------------------ connections
    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        if self.ctx is not None:
            self.ctx.connection_opened()
        try:
            peer = writer.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            if self.limits is not None and self.limits.banned(ip) > 0:
                log.info("pop3 connection from %s refused: banned", ip)
                writer.write(codes.BANNED.to_bytes())
                await writer.drain()
                return
            await self.run(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.debug("pop3 connection ended: %s", exc)
        finally:
            if task is not None:
                self.connections.discard(task)
            if self.ctx is not None:
                self.ctx.connection_closed()
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError, OSError):
                pass

    def _session(self, writer: asyncio.StreamWriter) -> Session:
        peer = writer.get_extra_info("peername") or ("", 0)
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        port = int(peer[1]) if isinstance(peer, tuple) and len(peer) > 1 else 0
        session = Session(remote_ip=ip, remote_port=port, loopback=is_loopback(ip))
        if self.implicit_tls:
            self._tls_info(session, writer)
        return session

    @staticmethod
    def _tls_info(session: Session, writer: asyncio.StreamWriter) -> None:
        session.tls = True
        obj = writer.get_extra_info("ssl_object")
        if obj is not None:
            session.tls_version = obj.version() or ""

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        m = Pop3Machine(self.config, self._session(writer))
        if self.draining:
            m.shutdown()
        self.machines.add(m)
        try:
            await self._loop(m, reader, writer)
        finally:
            self.machines.discard(m)
            m.abort()

    async def _loop(self, m: Pop3Machine, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        while True:
            event = m.next_event()
            if event is NEED_DATA:
                await self._flush(m, writer)
                data = await self._read(reader)
                if data is _TIMEOUT:
                    log.info("pop3 autologout of %s after %.0f s idle",
                             m.session.remote_ip, self.idle_timeout)
                    m.abort()
                elif data is _DRAIN:
                    m.shutdown()
                else:
                    m.receive_data(data)
            elif event is SEND:
                await self._flush(m, writer)
            elif event is CLOSE:
                await self._flush(m, writer)
                return
            elif isinstance(event, StartTls):
                await self._flush(m, writer)
                _drop_buffered(reader)
                try:
                    await writer.start_tls(self.tls_context)
                except (ssl.SSLError, ConnectionError, OSError) as exc:
                    log.info("pop3 STLS from %s failed: %s", m.session.remote_ip, exc)
                    m.answer(False)
                    continue
                self._tls_info(m.session, writer)
                m.answer(True)
            elif isinstance(event, AuthOutcome):
                if not event.success and event.reason != "cancelled by the client":
                    await self._auth_failed(m, event)
            elif isinstance(event, Authenticate) and self.limits is not None and \
                    self.limits.banned(event.session.remote_ip) > 0:
                # Banned meanwhile (by this connection or another): no more guesses, the
                # credentials are not checked; the -ERR answers the command, then close.
                await self._flush(m, writer)
                writer.write(codes.BANNED.to_bytes())
                await writer.drain()
                return
            else:
                m.answer(await self.services.answer(event))

    async def _auth_failed(self, m: Pop3Machine, event: AuthOutcome) -> None:
        ip = event.session.remote_ip
        stalwart_log.auth_failure("pop3", ip or "-", event.authcid or "-", event.reason)
        limits = self.limits
        if limits is None or limits.is_exempt(ip):
            await asyncio.sleep(self.auth_delay * event.failures)
            return
        delay, banned = limits.auth_failed(ip)
        if delay > 0:
            await asyncio.sleep(delay)
        if banned:
            log.warning("pop3: %s banned for %ds after repeated failed logins", ip,
                        int(limits.auth.ban_time))
        if banned or limits.banned(ip) > 0:
            m.shutdown(codes.BANNED)

    @staticmethod
    async def _flush(m: Pop3Machine, writer: asyncio.StreamWriter) -> None:
        out = m.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()

    async def _read(self, reader: asyncio.StreamReader) -> Any:
        """The next bytes from the client, ``_TIMEOUT`` or ``_DRAIN``."""
        drain_event = self._drain()
        if drain_event.is_set():
            return _DRAIN
        read = asyncio.ensure_future(reader.read(READ_SIZE))
        drained = asyncio.ensure_future(drain_event.wait())
        try:
            done, _ = await asyncio.wait({read, drained}, timeout=self.idle_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            if not read.done():
                read.cancel()
        if read in done:
            return read.result()
        return _DRAIN if drain_event.is_set() else _TIMEOUT

    def _drain(self) -> asyncio.Event:
        if self._drain_event is None:
            self._drain_event = asyncio.Event()
        return self._drain_event

    # ------------------------------------------------------------------ shutdown
    def drain(self) -> None:
        """Tell every session to end after its current command (see the docstring)."""
        self.draining = True
        for m in list(self.machines):
            m.shutdown()
        self._drain().set()

    async def wait_closed(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the sessions to end, then cancel the rest."""
        tasks = set(self.connections)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)


def _drop_buffered(reader: asyncio.StreamReader) -> None:
    """Empty the stream's buffer before STLS: those octets came in clear text. asyncio has
    no public API for this; the buffer is a bytearray in CPython."""
    buffer = getattr(reader, "_buffer", None)
    if isinstance(buffer, bytearray):
        buffer.clear()
