"""The POP3 server session as a sans-IO state machine (RFC 1939, RFC 2449, RFC 2595,
RFC 5034, RFC 3206, RFC 6856).

Theory of operation
-------------------
The adapter feeds bytes (``receive_data``; ``b""`` is end of input) and pulls work with
``next_event()``, which returns:

- ``NEED_DATA``: send ``data_to_send()`` and read more (RFC 2449 6.6 PIPELINING: the
  replies to a pipeline are flushed when the input runs dry, not one by one);
- ``SEND``: output piled up (a message being streamed, a long listing): send it, wait
  for the transport to drain, and call ``next_event()`` again (backpressure);
- ``CLOSE``: send ``data_to_send()`` and close;
- a request from ``events`` (SASL lookup, maildrop, message content, expunge, STLS).
  The machine reads no input until ``answer(value)``; replies stay in command order.

Nothing here awaits, sleeps, logs or touches a socket. Message content arrives as an
iterable of chunks handed over in the answer to ``FetchMessage``; the machine pulls one
chunk per ``next_event()`` call and returns ``SEND`` after each, so at most one chunk
of a message is in memory whatever its size.

State table (RFC 1939 3; the machine enforces it with ``STATES``)::

    command        AUTHORIZATION                     TRANSACTION
    -------------  --------------------------------  ---------------------------------
    USER, PASS     plain-text login (TLS or local)   -ERR already authenticated
    AUTH           SASL (RFC 5034)                   -ERR already authenticated
    STLS           RFC 2595, before authentication   -ERR already authenticated
    CAPA, QUIT     yes                               yes (QUIT -> UPDATE -> closed)
    UTF8           RFC 6856                          RFC 6856
    STAT LIST RETR -ERR not allowed before auth      yes
    DELE NOOP RSET
    TOP UIDL

    AUTHORIZATION --USER/PASS or AUTH ok, maildrop loaded--> TRANSACTION
    TRANSACTION   --QUIT--> UPDATE (expunge the marked UIDs in one store call) --> closed
    any state     --end of input, timeout, shutdown--> closed, with NO update: messages
                  marked deleted stay (RFC 1939 6)

APOP is not offered (it needs the clear-text password on the server) and answers
"Unknown command" like any verb we do not have.

Rules enforced here, each with its reply
- A command line ends with CRLF (a bare LF is tolerated); NUL, CR or other control
  characters in it get ``-ERR`` and the line is not executed. Octets above 127 must be
  UTF-8 (``-ERR [UTF8]``); keywords are case-insensitive (RFC 1939 3).
- Line length: RFC 2449 4 allows 255 octets; we accept up to ``MAX_COMMAND_LINE``
  (passwords up to 1024 octets must fit in PASS), and ``MAX_SASL_LINE`` for AUTH and
  SASL responses (RFC 5034 4 lets them be longer). Longer lines are dropped as they
  arrive and answered with one ``-ERR`` in step with the pipeline.
- ``max_errors`` negative replies end the session; ``max_auth_failures`` failed logins
  end it with ``-ERR [AUTH]``. HTTP verbs (cross-protocol attacks) close at once.
- Plain-text mechanisms (USER/PASS, SASL PLAIN and LOGIN) need TLS, a loopback peer or
  ``allow_plaintext_without_tls`` (RFC 2595 4, RFC 5034 6): else ``-ERR [AUTH]``, and
  CAPA does not announce them.
- STLS only before authentication and only once; octets pipelined behind STLS were sent
  in clear text and are discarded, never executed (CVE-2011-0411 class, RFC 2595 4).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from stalwart import sasl
from stalwart.protocols.base import NEED_DATA, LineReader, LineTooLong, LocalProtocolError, Sentinel

from . import codes
from .codes import Reply
from .encoder import MessageEncoder
from .events import CLOSE, SEND, Event, Session
from .maildrop import Maildrop

# ---------------------------------------------------------------------- limits
#: RFC 2449 4 says 255 octets with CRLF; passwords (up to 1024 octets, stalwart.sasl)
#: must fit in PASS, so command lines may be this long.
MAX_COMMAND_LINE = 1100
#: AUTH with an initial response and SASL response lines (RFC 5034 4: not bound by 255).
MAX_SASL_LINE = 12288 + 2
#: Above this much queued output the machine returns ``SEND`` before going on.
FLUSH_THRESHOLD = 64 * 1024

# ---------------------------------------------------------------------- states
AUTHORIZATION, TRANSACTION, UPDATE = "AUTHORIZATION", "TRANSACTION", "UPDATE"
# Input phases.
P_COMMAND, P_SASL = "COMMAND", "SASL"

_AUTH_ONLY = {TRANSACTION: codes.NOT_IN_TRANSACTION}
_TRANSACTION_ONLY = {AUTHORIZATION: codes.NOT_IN_AUTHORIZATION}

#: verb -> {state: reply refusing it}; states not listed accept the verb.
STATES: dict[str, dict[str, Reply]] = {
    "USER": _AUTH_ONLY, "PASS": _AUTH_ONLY, "AUTH": _AUTH_ONLY, "STLS": _AUTH_ONLY,
    "CAPA": {}, "QUIT": {}, "UTF8": {},
    "STAT": _TRANSACTION_ONLY, "LIST": _TRANSACTION_ONLY, "RETR": _TRANSACTION_ONLY,
    "DELE": _TRANSACTION_ONLY, "NOOP": _TRANSACTION_ONLY, "RSET": _TRANSACTION_ONLY,
    "TOP": _TRANSACTION_ONLY, "UIDL": _TRANSACTION_ONLY,
}

#: Verbs of other protocols (HTTP from a browser <img> tag, proxy scanners): hang up.
FORBIDDEN_VERBS = frozenset({"GET", "POST", "PUT", "HEAD", "CONNECT", "OPTIONS"})


@dataclass(frozen=True)
class Pop3Config:
    """What one listener's sessions may do."""

    hostname: str = "localhost"
    starttls: bool = True                     # a certificate is available for STLS
    auth_mechanisms: tuple[str, ...] = sasl.MECHANISMS
    allow_plaintext_without_tls: bool = False
    max_errors: int = 10
    max_auth_failures: int = 3
    greeting: str = "Stalwart POP3 ready"


class Pop3Machine:
    """One POP3 server session, sans-IO. See the module docstring."""

    def __init__(self, config: Pop3Config | None = None, session: Session | None = None) -> None:
        self.config = config or Pop3Config()
        self.session = session if session is not None else Session()
        self.state = AUTHORIZATION
        self.phase = P_COMMAND
        self.maildrop: Maildrop | None = None
        self.user: str | None = None          # from USER, waiting for PASS
        self.errors = 0
        self.auth_failures = 0
        self._reader = LineReader(MAX_SASL_LINE, reply_code="-ERR")
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._waiting: tuple[Event, Callable[[Any], None]] | None = None
        self._asked = False                   # the waiting request was handed out
        self._closing = False
        self._closed = False
        self._eof = False
        self._drain_pending = False
        # Message content being streamed (RETR/TOP).
        self._source: Any = None
        self._chunks: Any = None
        self._encoder: MessageEncoder | None = None
        # SASL exchange in progress (commands/auth.py).
        self.sasl: Any = None
        self.sasl_name = ""
        self.sasl_final: Any = None           # Success waiting for the client's empty line
        self.reply(codes.ok(f"{self.config.hostname} {self.config.greeting}".strip()))

    # ================================================================== adapter API
    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means the client closed its side."""
        if self._closed:
            return
        if not data:
            self._eof = True
        else:
            self._reader.feed(data)

    def data_to_send(self) -> bytes:
        """Replies queued so far, in order; clears the buffer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def waiting(self) -> Event | None:
        return self._waiting[0] if self._waiting else None

    @property
    def busy(self) -> bool:
        """A command is being carried out (a request is pending or content streams)."""
        return self._waiting is not None or self._source is not None

    def next_event(self) -> Event | Sentinel:
        if self._waiting is not None and self._asked:
            raise LocalProtocolError(f"answer {type(self._waiting[0]).__name__} first")
        while True:
            if self._events:
                # Informational events queued before a request go out first.
                return self._events.popleft()
            if self._closed:
                return CLOSE
            if self._source is not None:
                self._stream_chunk()
                return SEND
            if self._closing:
                self._close_now()
                return CLOSE
            if self._waiting is not None:
                self._asked = True
                return self._waiting[0]
            if len(self._out) >= FLUSH_THRESHOLD:
                return SEND
            if self._drain_pending:
                self._drain_pending = False
                self.close(codes.SHUTTING_DOWN)
                continue
            if not self._step():
                if self._eof:
                    self._close_now()
                    return CLOSE
                return NEED_DATA

    def answer(self, value: Any) -> None:
        """The adapter's answer to the request ``next_event`` returned."""
        if self._waiting is None:
            raise LocalProtocolError("no request is waiting for an answer")
        _, on_answer = self._waiting
        self._waiting = None
        self._asked = False
        on_answer(value)

    def shutdown(self, reply: Reply = codes.SHUTTING_DOWN) -> None:
        """End the session after the command in progress (server drain). No UPDATE."""
        if self._closed or self._closing:
            return
        if self.busy:
            self._drain_pending = True
        else:
            self.close(reply)

    def abort(self) -> None:
        """The connection is gone (timeout, reset): close without UPDATE or reply."""
        self._close_now()

    def tls_started(self) -> None:
        """TLS is up after STLS: forget everything learnt in clear text (RFC 2595 4)."""
        self._reader.drain()
        self.user = None
        self.session.tls = True

    # ================================================================== for commands
    def reply(self, reply: Reply) -> None:
        self._out += reply.to_bytes()

    def send_raw(self, data: bytes) -> None:
        """A multi-line response already formatted (``codes.multiline``)."""
        self._out += data

    def fail(self, reply: Reply) -> None:
        """A negative reply to a client error; too many of them end the session."""
        self.reply(reply)
        self.errors += 1
        if self.errors >= self.config.max_errors and not self._closing:
            self.close(codes.TOO_MANY_ERRORS)

    def close(self, reply: Reply | None = None) -> None:
        if reply is not None:
            self.reply(reply)
        self._closing = True

    def request(self, event: Event, on_answer: Callable[[Any], None]) -> None:
        """Ask the adapter for something; ``on_answer(value)`` runs with its answer."""
        if self._waiting is not None:
            raise LocalProtocolError("a request is already waiting")
        self._waiting = (event, on_answer)

    def notify(self, event: Event) -> None:
        """An informational event (no answer expected)."""
        self._events.append(event)

    def begin_sasl(self) -> None:
        self.phase = P_SASL

    def end_sasl(self) -> None:
        self.phase = P_COMMAND
        self.sasl = None
        self.sasl_name = ""
        self.sasl_final = None

    def plaintext_allowed(self) -> bool:
        """USER/PASS and PLAIN/LOGIN may be used here (RFC 2595 4, RFC 5034 6)."""
        s = self.session
        return s.tls or s.loopback or self.config.allow_plaintext_without_tls

    def starttls_offered(self) -> bool:
        return self.config.starttls and not self.session.tls and self.state == AUTHORIZATION

    def mechanisms_offered(self) -> list[str]:
        return [name for name in self.config.auth_mechanisms
                if sasl.server_mechanism(name) is not None
                and (self.plaintext_allowed() or not sasl.is_plaintext(name))]

    def enter_transaction(self, maildrop: Maildrop) -> None:
        self.maildrop = maildrop
        self.state = TRANSACTION
        self.user = None

    def enter_update(self) -> None:
        self.state = UPDATE

    def start_content(self, source: Any, encoder: MessageEncoder) -> None:
        """Stream ``source`` (an iterable of chunks) through ``encoder`` after the +OK
        already queued; the next ``next_event`` calls produce it chunk by chunk."""
        self._source = source
        self._chunks = iter(source)
        self._encoder = encoder

    # ================================================================== internals
    def _stream_chunk(self) -> None:
        encoder = self._encoder
        try:
            chunk = next(self._chunks, None)
        except OSError:
            # The +OK is out and part of the content may be: the only honest way left
            # to tell the client is to end the session without the terminator.
            self._end_content()
            self._close_now()
            return
        if chunk is not None and not encoder.done:
            self._out += encoder.feed(chunk)
            if not encoder.done:
                return
        self._out += encoder.finish()
        self._end_content()

    def _end_content(self) -> None:
        source = self._source
        self._source = self._chunks = self._encoder = None
        close = getattr(source, "close", None)
        if close is not None:
            close()

    def _close_now(self) -> None:
        if self._source is not None:
            self._end_content()
        self._closed = True
        self._closing = True

    def _step(self) -> bool:
        """Handle one input line; False when more input is needed."""
        try:
            line = self._reader.next_line()
        except LineTooLong:
            if self.phase == P_SASL:
                from .commands import auth
                auth.abort(self, codes.LINE_TOO_LONG)
            else:
                self.fail(codes.LINE_TOO_LONG)
            return True
        if line is NEED_DATA:
            return False
        if self.phase == P_SASL:
            from .commands import auth
            text = line.rstrip(b"\r\n")
            auth.on_response(self, text)
            return True
        self._command(line)
        return True

    def _command(self, raw: bytes) -> None:
        body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        if len(raw) > MAX_COMMAND_LINE and body[:5].upper() != b"AUTH ":
            self.fail(codes.LINE_TOO_LONG)
            return
        if any(b < 0x20 and b != 0x09 or b == 0x7F for b in body):
            self.fail(codes.BAD_CHARACTERS)
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(codes.BAD_UTF8)
            return
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb in FORBIDDEN_VERBS:
            self.close(codes.FORBIDDEN_VERB)
            return
        refusals = STATES.get(verb)
        if refusals is None:
            self.fail(codes.UNKNOWN_COMMAND)
            return
        refusal = refusals.get(self.state)
        if refusal is not None:
            self.fail(refusal)
            return
        from .commands import HANDLERS
        HANDLERS[verb](self, verb, arg)
