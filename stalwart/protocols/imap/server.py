"""``serve(ctx)``: the imap pool's worker entry point, and the asyncio adapter.

The adapter is an ``asyncio.Protocol`` (no StreamReader/StreamWriter pair: ten thousand
idle connections must stay small) that drives one ``ImapSession`` per connection:

- **Listeners.** Every ``ctx.sockets`` entry whose protocol is ``imap``: implicit TLS when
  the listener says so (993, RFC 8314), else clear text with STARTTLS offered when a
  certificate is configured (143). TLS contexts come from ``stalwart.http.tls``
  (ALPN "imap", RFC 7301 / IANA). An implicit-TLS listener without certificates is
  refused at start with an error in the log; the other listeners still serve.
- **Plaintext authentication** (LOGIN, AUTH=PLAIN) needs TLS, except from a loopback
  address, which cannot be sniffed on the wire (Dovecot treats it the same way).
- **Failed logins and bans** are shared with SMTP and POP3: the worker maps the daemon's
  limit table (``stalwart.limits.open_shared_table``, the same file and the same
  ``smtp.auth-penalty.*`` / ``smtp.limits.exempt`` settings as SMTP), so failures of one
  address add up over every protocol and process, and a ban covers them all. A banned
  address gets ``* BYE [UNAVAILABLE]`` as its greeting and is closed; the delays and the
  ban on a failing connection are in ``commands/login.py``.
- **One runner per connection.** Input is fed to the session as it arrives; a single task
  runs the commands one at a time (``session.step()``) and writes each command's
  responses before the next one starts. Store change events only set a flag and wake the
  runner, which then asks the session for the unsolicited updates (IDLE).
- **Backpressure** (a client that pipelines without reading must not grow memory): the
  transport's write buffer has a high-water mark; above it the runner stops before the
  next command until ``resume_writing``. Unparsed input is bounded too: when more than
  ``INPUT_HIGH`` octets wait (beyond a literal being collected) reading pauses until the
  runner consumed them. The session's own limits bound single commands and literals.
- **Timeouts** (RFC 9051 5.4): 30 minutes of silence once authenticated (IDLE included:
  clients re-issue IDLE within 29 minutes), ``PREAUTH_TIMEOUT`` before login. Expiry
  sends ``* BYE`` and closes. One timer per connection, re-armed lazily (no timer churn
  per packet).
- **COMPRESS=DEFLATE** (RFC 4978) happens inside the session, above TLS: the adapter
  moves octets and counts the session's still-compressed input (``session.buffered()``)
  in the input backpressure, so a small compressed burst cannot grow memory either.
- **NOTIFY** (RFC 5465): a session with NOTIFY on asks to be woken by store changes even
  when it is not in IDLE; the runner then calls ``idle_poll`` between commands and the
  notifications go out at once.
- **Drain.** When ``ctx.shutdown`` is set: stop accepting; a session with no command in
  progress (IDLE included) gets ``* BYE Server shutting down`` at once; the others get it
  after their current command; whatever is still open after ``server.shutdown-timeout``
  is aborted.
- **STARTTLS**: the tagged OK is flushed, then ``loop.start_tls`` upgrades the transport;
  octets the client pipelined behind STARTTLS were fed in clear text and are discarded by
  ``session.tls_started()`` (CVE-2011-0411 class). A failed handshake closes.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
import time
from typing import Any

from .session import ImapSession, State

log = logging.getLogger("stalwart.imap")

#: Autologout once authenticated: RFC 9051 5.4 requires at least 30 minutes.
AUTH_TIMEOUT = 30 * 60.0
#: Before authentication a shorter timer is allowed (RFC 9051 5.4); long enough for a
#: human typing at a test terminal, short enough to shed idle scanners.
PREAUTH_TIMEOUT = 120.0
#: Transport write buffer limits: above HIGH the runner stops taking commands.
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024
#: Unparsed input above this (and not part of a literal being read) pauses reading.
INPUT_HIGH = 256 * 1024


def _seconds(value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def _is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host == ""  # a Unix socket peer
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class ImapConnection(asyncio.Protocol):
    """One client connection; see the module docstring for what it guarantees."""

    def __init__(self, server: "ImapServer", implicit_tls: bool) -> None:
        self.server = server
        self.implicit_tls = implicit_tls
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.session: ImapSession | None = None
        self.remote_ip = ""
        self._runner: asyncio.Task | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False
        self._last_activity = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._eof = False
        self._closed = asyncio.Event()

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        peer = transport.get_extra_info("peername")
        self.remote_ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        server = self.server
        self.session = ImapSession(
            server.store, tls_active=self.implicit_tls,
            tls_available=server.tls_context is not None,
            allow_plain_without_tls=_is_loopback(self.remote_ip),
            limits=server.limits, server_name=server.server_name, remote_ip=self.remote_ip,
            penalty=server.penalty)
        self.session.on_wakeup = self._wake
        server.opened(self)
        if server.draining:
            transport.write(b"* BYE Server shutting down\r\n")
            transport.close()
            return
        if server.penalty is not None and server.penalty.banned(self.remote_ip) > 0:
            log.info("imap connection from %s refused: banned", self.remote_ip)
            transport.write(f"* BYE [UNAVAILABLE] Too many failed logins from "
                            f"{self.remote_ip}, try again later\r\n".encode())
            transport.close()
            return
        transport.write(self.session.greeting())
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or session.closed:
            return
        self._last_activity = time.monotonic()
        session.receive_data(data)
        if session.buffered() > INPUT_HIGH and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        # The client will send nothing more; answer what it did send, then close (IMAP
        # has no half-closed state). Over TLS asyncio closes at once whatever we return.
        self._eof = True
        self._wake()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.session is not None:
            self.session.close()
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
        self._writable.set()
        self._closed.set()
        self.server.closed(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._last_activity = time.monotonic()  # the client is reading: it is alive
        self._writable.set()

    # ------------------------------------------------------------------ the runner
    @property
    def busy(self) -> bool:
        """A command is being executed (not merely waiting in IDLE or for input)."""
        return self._runner is not None and not self._runner.done() and \
            self.session is not None and not self.session.idling

    def _wake(self) -> None:
        """Input arrived or the store changed: make sure the runner looks at it."""
        if self._runner is None or self._runner.done():
            if self.transport is None or self.transport.is_closing():
                return
            self._runner = self.loop.create_task(self._run())

    async def _run(self) -> None:
        session = self.session
        try:
            while not session.closed:
                await self._writable.wait()
                if session.idling or session.notify is not None:
                    await session.idle_poll()   # IDLE, or NOTIFY between commands
                progressed = await session.step()
                self._flush()
                if session.want_starttls:
                    await self._start_tls()
                    continue
                if self._draining and not session.idling and not session.closed:
                    session.bye("Server shutting down")
                    self._flush()
                if not progressed:
                    break
            if self._eof and not session.closed:
                session.close()
            if self._reading_paused and not session.closed and \
                    session.buffered() <= INPUT_HIGH:
                self._reading_paused = False
                self.transport.resume_reading()
        except asyncio.CancelledError:
            raise
        except Exception:  # the session answers its own errors; this is a bug here
            log.exception("imap connection from %s failed", self.remote_ip)
            session.close()
        if session.closed:
            self._flush()
            self.transport.close()
        elif (session.idling or session.notify is not None) and session._dirty:
            # An event arrived while the last poll was being written: look again.
            self.loop.call_soon(self._wake)

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    async def _start_tls(self) -> None:
        session = self.session
        context = self.server.tls_context
        try:
            transport = await self.loop.start_tls(self.transport, self, context,
                                                  server_side=True)
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            log.info("imap STARTTLS from %s failed: %s", self.remote_ip, exc)
            session.close()
            if self.transport is not None:
                self.transport.abort()
            return
        if transport is None:  # the connection was lost during the handshake
            session.close()
            return
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        session.tls_started()

    # ------------------------------------------------------------------ timers, drain
    def _arm_timer(self) -> None:
        timeout = AUTH_TIMEOUT if self.session.state is not State.NOT_AUTHENTICATED \
            else self.server.preauth_timeout
        due = self._last_activity + timeout
        self._timer = self.loop.call_at(self.loop.time() + max(0.0, due - time.monotonic()),
                                        self._check_idle)

    def _check_idle(self) -> None:
        self._timer = None
        session = self.session
        if session.closed or self.transport.is_closing():
            return
        timeout = AUTH_TIMEOUT if session.state is not State.NOT_AUTHENTICATED \
            else self.server.preauth_timeout
        if time.monotonic() - self._last_activity < timeout or \
                (self.busy and self._writable.is_set()):
            self._arm_timer()
            return
        if not self._writable.is_set():
            # Neither sending nor reading for the whole timeout: a BYE would only sit in
            # the full buffer, so drop the connection.
            log.info("imap client %s stopped reading; connection dropped", self.remote_ip)
            self.transport.abort()
            return
        session.bye("Autologout; idle for too long")
        self._flush()
        self.transport.close()

    def drain(self) -> None:
        """The worker is shutting down: BYE now if nothing is in progress, else after."""
        self._draining = True
        session = self.session
        if session is None or session.closed or self.transport.is_closing():
            return
        if not self.busy:
            session.bye("Server shutting down")
            self._flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class ImapServer:
    """The connections of one worker, over one store; ``listen`` adds a listener."""

    def __init__(self, store: Any, *, tls_context: ssl.SSLContext | None = None,
                 limits: Any = None, server_name: str = "Stalwart",
                 preauth_timeout: float = PREAUTH_TIMEOUT, ctx: Any = None,
                 penalty: Any = None) -> None:
        self.store = store
        self.penalty = penalty          # stalwart.limits.ClientLimits (failed logins, bans)
        self.tls_context = tls_context
        self.limits = limits
        self.server_name = server_name
        self.preauth_timeout = preauth_timeout
        self.ctx = ctx
        self.connections: set[ImapConnection] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.draining = False

    async def listen(self, sock: Any, *, implicit_tls: bool) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: ImapConnection(self, implicit_tls), sock=sock,
            ssl=self.tls_context if implicit_tls else None,
            ssl_handshake_timeout=30.0 if implicit_tls else None)
        self.servers.append(server)
        return server

    def opened(self, conn: ImapConnection) -> None:
        self.connections.add(conn)
        if self.ctx is not None:
            self.ctx.connection_opened()

    def closed(self, conn: ImapConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            if self.ctx is not None:
                self.ctx.connection_closed()

    async def drain(self, timeout: float) -> None:
        """Stop accepting, say BYE, wait up to ``timeout`` seconds, abort the rest."""
        self.draining = True
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.drain()
        waiting = [asyncio.ensure_future(c.wait_closed()) for c in list(self.connections)]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=timeout)
            for task in pending:
                task.cancel()
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)  # let connection_lost run for the aborted ones


def limits_from_config(config: Any):
    """The session limits: ``imap.append-limit`` is APPENDLIMIT (RFC 7889); a MULTIAPPEND
    may carry at least one message of that size."""
    from .grammar_ref import Limits

    default = Limits()
    append = int(config.get("imap.append-limit"))
    return Limits(max_append=append, max_append_total=max(default.max_append_total, append))


class _Defaults:
    """``config`` with the declared default for a setting it does not know (a partial
    config object built by an embedding program or a test harness)."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self.run_dir = config.run_dir

    def get(self, key: str) -> Any:
        try:
            return self._config.get(key)
        except KeyError:
            import stalwart.config.settings  # noqa: F401  (the declarations)
            from stalwart.config.keys import parse_key
            from stalwart.config.registry import REGISTRY

            found = REGISTRY.find(parse_key(key))
            if found is None:
                raise
            setting, params = found
            return setting.default_value(params)


def penalty_from_config(config: Any, name: str = "imap"):
    """The failed-login policy over this worker's mapping of the table SMTP uses: the same
    file and settings (``smtp.auth-penalty.*``, ``smtp.limits.exempt``), so one ban covers
    every protocol. Only its failure counts and bans are used here."""
    from stalwart.protocols.smtp.server import client_limits, open_table

    config = _Defaults(config)
    penalty = client_limits(config, open_table(config))
    penalty.name = name
    return penalty


def tls_context_for(config: Any) -> ssl.SSLContext | None:
    if not getattr(config, "certificates", None):
        return None
    from stalwart.http.tls import server_context

    return server_context(config.certificates, alpn=("imap",))


async def serve(ctx: Any) -> None:
    """Serve every imap listener of ``ctx.sockets`` until ``ctx.shutdown`` is set."""
    from stalwart.store.api import Store

    config = ctx.config
    store = await Store.open(config, subscribe=True)
    try:
        server = ImapServer(store, tls_context=tls_context_for(config), ctx=ctx,
                            limits=limits_from_config(config),
                            penalty=penalty_from_config(config))
        for listener, sock in ctx.sockets:
            if listener.protocol != "imap":
                continue
            if listener.tls_implicit and server.tls_context is None:
                log.error("imap listener %r needs TLS but no [certificate] is configured; "
                          "it is not served", listener.id)
                continue
            await server.listen(sock, implicit_tls=listener.tls_implicit)
        # Replaced by a reload: stop accepting, keep the open sessions (ctx.retire).
        ctx.on_retire(lambda: [s.close() for s in server.servers])
        await ctx.shutdown.wait()
        await server.drain(_seconds(config.get("server.shutdown-timeout")))
    finally:
        await store.close()
