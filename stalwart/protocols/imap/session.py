"""The IMAP session machine (sans-IO): bytes in, responses out, the store behind it.

    s = ImapSession(store, tls_active=True)
    out = s.greeting()
    s.receive_data(data); await s.process(); send(s.data_to_send())
    if s.want_starttls: start TLS, then s.tls_started()
    if s.closed: close the connection
    s.on_wakeup = callback   # called when the store changed while the client IDLEs;
                             # the adapter then calls  await s.idle_poll()

The adapter owns the socket, TLS, timeouts and backpressure; this class never does I/O
other than awaiting the store (an injected dependency, like every policy object).

State table (RFC 9051 section 3; commands per state in section 6):

    state               commands allowed                           next state
    NOT_AUTHENTICATED   any-state, STARTTLS, LOGIN, AUTHENTICATE   AUTHENTICATED on success
    AUTHENTICATED       any-state, authenticated-state             SELECTED after SELECT/EXAMINE
    SELECTED            any-state, authenticated, selected-state   AUTHENTICATED after
                                                                   CLOSE/UNSELECT/failed SELECT
    LOGOUT              none                                       (connection closed)

A command in the wrong state gets BAD. Rules enforced here for every command:

- Unsolicited updates (EXISTS, FETCH FLAGS, EXPUNGE/VANISHED) are sent just before a
  tagged response, and while IDLE; EXPUNGE/VANISHED never during FETCH, STORE or SEARCH
  (RFC 9051 7.5, RFC 7162 3.2.10); they wait for the next command that allows them.
- Every handler error becomes a tagged NO/BAD with a response code; an unexpected
  exception is answered ``NO [SERVERBUG]`` and logged, never a dropped connection.
- Bytes pipelined behind STARTTLS are discarded, not executed (CVE-2011-0411 class).
- Before authentication literals are limited to ``PREAUTH_LITERAL`` octets.
- Message literals (APPEND, REPLACE, UID REPLACE) are streamed (``Parser.stream_append``):
  each chunk goes to a spool (a blob writer, ``commands/append.Spool``) as it arrives, so
  a message of any size holds one input burst in memory; the spools of a command are
  handed to it in order (``append.items_for``), and whatever a command did not commit (an
  error, a refused command, a client gone mid-literal: ``close()``) is deleted.
- ``penalty`` (a ``stalwart.limits.ClientLimits``, optional): failed logins counted per
  client address across processes and protocols, delays and bans (``commands/login.py``);
  ``sleep`` is the delay's awaitable (injectable for tests).
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Callable

from ...store import StoreError
from ..base import NEED_DATA, ProtocolError
from . import encode
from .grammar import Limits, Parser
from .message import ImapMessage
from .selected import SelectedMailbox
from .types import Command, Continuation, IdleDone, ImapError, LiteralChunk, SaslResponse

log = logging.getLogger("stalwart.imap")

PREAUTH_LITERAL = 8192
#: Commands whose literal is a message (limited by APPENDLIMIT, RFC 7889).
APPEND_COMMANDS = frozenset({"APPEND", "REPLACE", "UID REPLACE"})
MESSAGE_CACHE = 16


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


class Reply(Exception):
    """Raised by a handler to end its command: ``tag status [code] text``."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.code = status, text, code


def No(text: str, code: str | None = None) -> Reply:
    return Reply("NO", text, code)


def Bad(text: str, code: str | None = None) -> Reply:
    return Reply("BAD", text, code)


#: StoreError codes -> IMAP response codes (RFC 5530 / RFC 9051 7.1).
STORE_CODES = {"not_found": "NONEXISTENT", "exists": "ALREADYEXISTS", "in_use": "INUSE",
               "over_quota": "OVERQUOTA", "unavailable": "UNAVAILABLE", "invalid": "CANNOT",
               "conflict": "CANNOT", "forbidden": "NOPERM"}


class ImapSession:
    def __init__(self, store, *, tls_active: bool = False, tls_available: bool = True,
                 allow_plain_without_tls: bool = False, limits: Limits | None = None,
                 server_name: str = "Stalwart", remote_ip: str = "",
                 penalty=None) -> None:
        self.store = store
        self.remote_ip = remote_ip
        self.tls_active = tls_active
        self.tls_available = tls_available
        self.allow_plain_without_tls = allow_plain_without_tls
        self.limits = limits or Limits()
        self.server_name = server_name
        self.parser = Parser(self.limits, literal_limit=self._literal_limit)
        self.parser.stream_append = True
        self.penalty = penalty                # failed-login delays and bans (login.py)
        self.sleep = asyncio.sleep
        self.spools: list = []                # message literals of the current command
        self._spool = None                    # the one being received
        self.state = State.NOT_AUTHENTICATED
        self.account: dict | None = None
        self.selected: SelectedMailbox | None = None
        self.rev2 = False
        self.utf8 = False
        self.condstore = False
        self.qresync = False
        self.want_starttls = False
        self.closed = False
        self.idling: str | None = None        # tag of the IDLE command in progress
        self.sasl = None                      # (command, mechanism) during AUTHENTICATE
        self.auth_failures = 0
        self.on_wakeup: Callable[[], None] | None = None
        self._dirty = False
        self._unsubscribe: Callable[[], None] | None = None
        self._out: list[bytes] = []
        self._messages: dict[tuple[int, int], ImapMessage] = {}
        self.compression = None               # COMPRESS=DEFLATE layer (commands/compress.py)
        self._plain = b""                     # sent before the compressed stream starts
        self.notify = None                    # NOTIFY state (commands/notify.py)

    # ------------------------------------------------------------------ adapter API
    def greeting(self) -> bytes:
        return b"* OK [CAPABILITY " + self.capabilities().encode() + b"] " + \
            self.server_name.encode() + b" IMAP4rev2 ready\r\n"

    def receive_data(self, data: bytes) -> None:
        if self.compression is not None:
            data = self.compression.inflate(data)
        self.parser.receive_data(data)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        if self.compression is not None:
            head, self._plain = self._plain, b""
            return head + self.compression.deflate(out)
        return out

    def start_compression(self, layer) -> None:
        """COMPRESS succeeded: what is written so far goes out as is, the rest deflated;
        input the client pipelined behind the command is compressed already."""
        self._plain = b"".join(self._out)
        self._out.clear()
        self.compression = layer
        try:
            pipelined = self.parser.discard_buffer()
        except ProtocolError:   # part of it was dropped as an over-long "line": no resync
            layer.broken = True
            return
        self.parser.receive_data(layer.inflate(pipelined))

    def buffered(self) -> int:
        """Input octets received and not consumed yet (compressed ones included)."""
        pending = self.compression.pending() if self.compression is not None else 0
        return self.parser.buffered() + pending

    def tls_started(self) -> None:
        """The adapter finished the TLS handshake after STARTTLS."""
        self.want_starttls = False
        self.tls_active = True
        self.parser.discard_buffer()

    def close(self) -> None:
        """Release store subscriptions (the adapter calls this when the connection ends)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.drop_spools()
        self.closed = True

    def drop_spools(self) -> None:
        """Delete the message literals (APPEND, REPLACE) not committed (the command ended
        or failed, or the connection is gone in the middle of one)."""
        if self._spool is not None:
            self._spool.abort()
            self._spool = None
        for spool in self.spools:
            spool.abort()
        self.spools.clear()

    def _literal_chunk(self, event: LiteralChunk) -> None:
        from .commands.append import Spool
        if self._spool is None:
            self._spool = Spool(self.store)
        self._spool.write(event.data)
        if event.last:
            self.spools.append(self._spool)
            self._spool = None

    async def process(self) -> None:
        """Run every complete command buffered so far, writing the responses."""
        while await self.step():
            pass

    async def step(self) -> bool:
        """Run the next complete command (or IDLE/SASL line) buffered, if there is one.

        Returns False when nothing more can be done now: more input is needed, the session
        is closed, or TLS must start first. The adapter calls this in a loop and sends
        ``data_to_send()`` between steps, so a client that pipelines many commands without
        reading the answers is held back by the transport's buffer, not by memory here.
        """
        from .commands import authenticate
        if self.closed or self.want_starttls:
            return False
        try:
            event = self.parser.next_event()
        except ImapError as exc:
            self.drop_spools()
            self.write(exc.response())
            if exc.close:
                self.close()
            return not self.closed
        if event is NEED_DATA:
            if self.compression is not None:
                if self.compression.broken:
                    self.bye("Invalid or ended DEFLATE stream")
                    return False
                if self.compression.pending():
                    self.parser.receive_data(self.compression.inflate(b""))
                    return True
            return False
        if isinstance(event, LiteralChunk):
            self._literal_chunk(event)
        elif isinstance(event, Continuation):
            self._continuation(event)
        elif isinstance(event, SaslResponse):
            await authenticate.respond(self, event.data)
        elif isinstance(event, IdleDone):
            await self._end_idle()
        elif isinstance(event, Command):
            try:
                await self.dispatch(event)
            finally:
                if self.spools or self._spool is not None:
                    self.drop_spools()
        return not self.closed and not self.want_starttls

    def bye(self, text: str) -> None:
        """End the session from the server side (shutdown, autologout): BYE, closed."""
        if not self.closed:
            self.untagged(f"BYE {text}")
            self.close()

    async def idle_poll(self) -> None:
        """While IDLE, or between commands with NOTIFY on: report what changed in the store
        (call after ``on_wakeup``)."""
        if self._dirty and (self.idling or self.notify is not None):
            self._dirty = False
            await self.claim_recent()
            if self.notify is not None:
                from .commands import notify
                self.write_all(notify.poll(self))
            if self.idling and (self.notify is None or not self.notify.push_selected):
                self.write_all(self.sync_updates(allow_expunge=True))

    async def claim_recent(self) -> None:
        """IMAP4rev1: claim \\Recent of what arrived in the selected mailbox (selected.py)."""
        if self.selected is not None and not self.rev2 and not self.closed:
            try:
                await self.selected.claim_recent()
            except StoreError as exc:  # the next command tries again
                log.info("IMAP \\Recent claim failed: %s", exc.message)

    # ------------------------------------------------------------------ output helpers
    def write(self, data: bytes) -> None:
        self._out.append(data)

    def write_all(self, chunks: list[bytes]) -> None:
        self._out.extend(chunks)

    def untagged(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self._out.append(b"* " + data + b"\r\n")

    def tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        code_part = f"[{code}] " if code else ""
        self._out.append(f"{tag} {status} {code_part}{text}\r\n".encode())

    # ------------------------------------------------------------------ capabilities
    def plaintext_allowed(self) -> bool:
        return self.tls_active or self.allow_plain_without_tls

    def capabilities(self) -> str:
        caps = ["IMAP4rev2", "IMAP4rev1", "LITERAL+", "ID", "ENABLE", "SASL-IR"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.tls_available and not self.tls_active:
                caps.append("STARTTLS")
            caps.append("AUTH=SCRAM-SHA-256")
            if self.plaintext_allowed():
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
            return " ".join(caps)
        caps += ["IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "ESEARCH",
                 "SEARCHRES", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED",
                 "LIST-STATUS", "CHILDREN", "UNSELECT", "BINARY", "MULTIAPPEND",
                 "STATUS=SIZE", "WITHIN", "UTF8=ACCEPT", "PREVIEW",
                 f"APPENDLIMIT={self.limits.max_append}", "SORT", "SORT=DISPLAY",
                 "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "QUOTA", "QUOTA=RES-STORAGE",
                 "REPLACE", "ACL", "RIGHTS=texk", "LIST-MYRIGHTS"]
        from .commands.capability import extensions
        caps += extensions(self)
        return " ".join(caps)

    # ------------------------------------------------------------------ dispatch
    def _literal_limit(self, name: str) -> int:
        if self.state is State.NOT_AUTHENTICATED:
            return min(PREAUTH_LITERAL, self.limits.max_literal)
        return self.limits.max_append if name in APPEND_COMMANDS else self.limits.max_literal

    def _continuation(self, event: Continuation) -> None:
        from .commands import REGISTRY
        spec = REGISTRY.get(event.name)
        if spec is None or self.state not in spec.states:
            self.parser.refuse_literal()
            what = "Unknown command" if spec is None else \
                f"{event.name} is not allowed in the {self.state.value} state"
            self.tagged(event.tag, "BAD", what)
            return
        self.write(b"+ Ready for literal data\r\n")

    async def dispatch(self, cmd: Command) -> None:
        from .commands import REGISTRY
        spec = REGISTRY.get(cmd.name)
        if spec is None:
            self.tagged(cmd.tag, "BAD", f"Unknown command {cmd.name}")
            return
        if self.state not in spec.states:
            self.tagged(cmd.tag, "BAD", f"{cmd.name} is not allowed in the {self.state.value} state")
            return
        try:
            result = await spec.run(self, cmd)
        except Reply as reply:
            self._finish(cmd, spec, reply.status, reply.text, reply.code)
            return
        except StoreError as exc:
            self._finish(cmd, spec, "NO", exc.message, STORE_CODES.get(exc.code))
            return
        except Exception:  # a bug here must not cost the client its connection
            log.exception("IMAP %s failed", cmd.name)
            self._finish(cmd, spec, "NO", "Internal error, the command was not completed",
                         "SERVERBUG")
            return
        await self.claim_recent()
        if result is None:
            return  # the handler answered itself (IDLE, AUTHENTICATE, LOGOUT)
        text, code = result if isinstance(result, tuple) else (result, None)
        self._finish(cmd, spec, "OK", text, code)

    def _finish(self, cmd: Command, spec, status: str, text: str, code: str | None) -> None:
        if self.selected is not None and status != "BAD" and not self.closed:
            self.write_all(self.sync_updates(allow_expunge=spec.allows_expunge,
                                             uid_command=cmd.name.startswith("UID ")))
        self.tagged(cmd.tag, status, text, code)

    # ------------------------------------------------------------------ store and view
    def login(self, account: dict) -> None:
        self.account = account
        self.state = State.AUTHENTICATED
        self._unsubscribe = self.store.subscribe(self._on_change)

    def _on_change(self, account: int, change: int, types: list) -> None:
        # The selected mailbox may be another account's (ACL, commands/acl.py): its
        # owner's changes concern this session too.
        if self.account is not None and (account == self.account["id"] or (
                self.selected is not None and account == self.selected.account)):
            self._dirty = True
            if (self.idling or self.notify is not None) and self.on_wakeup is not None:
                self.on_wakeup()

    def sync_updates(self, *, allow_expunge: bool, uid_command: bool = False) -> list[bytes]:
        if self.selected is None:
            return []
        self.store.refresh()
        return self.selected.sync(allow_expunge=allow_expunge, condstore=self.condstore,
                                  qresync=self.qresync, uid_in_fetch=uid_command,
                                  utf8=self.utf8)

    def message(self, email_id: int, blob_email: dict | None = None) -> ImapMessage:
        """The parsed message ``email_id`` (a few recent ones are kept)."""
        # The selected mailbox's owner: another account for a shared mailbox (ACL).
        acc = self.selected.account if self.selected is not None else self.account["id"]
        cached = self._messages.get((acc, email_id))
        if cached is not None:
            return cached
        raw = self.store.read_message(acc, email_id)
        parsed = ImapMessage(raw)
        if len(self._messages) >= MESSAGE_CACHE:
            self._messages.pop(next(iter(self._messages)))
        self._messages[(acc, email_id)] = parsed
        return parsed

    def deselect(self) -> None:
        self.selected = None
        self.state = State.AUTHENTICATED

    async def _end_idle(self) -> None:
        tag = self.idling
        if tag is None:
            self.write(b"* BAD DONE without IDLE\r\n")
            return
        self.idling = None
        self.parser.expect_command()
        await self.claim_recent()
        self.write_all(self.sync_updates(allow_expunge=True))
        self.tagged(tag, "OK", "IDLE terminated")

    def mailbox_name(self, name: str) -> bytes:
        return encode.mailbox(name, self.utf8)
