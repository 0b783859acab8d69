"""The SMTP/LMTP server session as a sans-IO state machine (RFC 5321, RFC 2033).

Theory of operation
-------------------
The adapter feeds bytes (``receive_data``; ``b""`` is end of input) and pulls work with
``next_event()``, which returns:

- ``NEED_DATA``: send ``data_to_send()`` and read more (RFC 2920 4: replies to a pipeline
  are flushed when the input runs dry, not one by one);
- ``CLOSE``: send ``data_to_send()`` and close;
- a request from ``events`` (policy verdict, SASL lookup, STARTTLS, delivery). The
  machine stops reading input until ``answer(value)``; replies are queued in order, so a
  whole pipeline gets its replies in command order whatever the adapter awaited.

Nothing here awaits, sleeps, logs or touches a socket; policy lives in the objects the
adapter consults (``policy.py``), not here.

State table (rows: sequence state; the machine enforces it in ``SEQUENCE``)::

    state        EHLO/HELO/LHLO  MAIL         RCPT          DATA           BDAT           AUTH / STARTTLS
    ----------   --------------  -----------  ------------  -------------  -------------  ---------------
    CONNECTED    -> GREETED      503 helo     503 helo      503 helo       discard, 503   503 helo
    GREETED      -> GREETED      -> MAIL      503 need MAIL 503 need MAIL  discard, 503   ok
    MAIL         -> GREETED      503 nested   -> RCPT       503/554        discard, 503   503 in trans.
    RCPT         -> GREETED      503 nested   -> RCPT       354 -> data    -> CHUNKING    503 in trans.
    CHUNKING     -> GREETED      503 nested   503 sequence  503 after BDAT -> CHUNKING    503 in trans.

    RSET, NOOP, QUIT, VRFY, HELP are valid in every state; RSET and EHLO end the
    transaction (RFC 5321 4.1.1.5, 4.1.4). End of DATA, BDAT LAST, a refused message or
    a chunk error all return to GREETED. STARTTLS returns to CONNECTED (RFC 3207 4.2).

Input phases: COMMAND (lines), DATA (content until ``<CRLF>.<CRLF>``), BDAT (exactly the
announced octets, RFC 3030 2), SASL (base64 response lines, RFC 4954 4).

Rules enforced here, each with its reply
- A command line ends with CRLF; bare LF, bare CR or NUL in it gets 500 5.5.2 and the
  line is not executed (RFC 5321 2.3.8, 4.1.1). Octets above 127 must be UTF-8.
- Line length (RFC 5321 4.5.3.1.4): 512 octets with CRLF (``max_line_length``, which
  may only raise it); MAIL and RCPT get the
  allowances of the extensions we announce (RFC 1870 SIZE 26, RFC 3461 ENVID 107 and
  ORCPT 510 with NOTIFY 30, RFC 4954 AUTH= 500, BODY, SMTPUTF8, REQUIRETLS); AUTH and SASL
  responses 12288 (RFC 4954 4). Longer: 500 5.5.2 "line too long" and the line is dropped.
- Per session: ``max_errors`` negative replies then 421; ``max_messages`` then 421;
  ``max_auth_failures`` failed AUTH then 421; more than ``max_pipeline`` commands in
  one flight (input never running dry) then 421. Per message: ``max_recipients`` (452
  4.5.3, RFC 5321 4.5.3.1.10) and ``max_message_size`` (552 5.3.4, RFC 1870).
- 8-bit content needs BODY=8BITMIME or SMTPUTF8 (RFC 6152 3, RFC 6531 3.3): 554 5.6.0.
  NUL in content is refused too (it is only legal with BINARYMIME, not offered).
- Bytes pipelined behind STARTTLS are discarded, never executed (CVE-2011-0411).
- A connection the adapter refuses (``refuse=``: a client over a per-client limit or
  banned, see session.py) gets that reply (421 4.7.0) instead of the greeting and nothing
  it sends is read.
- LMTP (RFC 2033): LHLO instead of EHLO/HELO, and after the content one reply per
  accepted recipient, in RCPT order (4.2).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from stalwart.protocols.base import NEED_DATA, LineReader, LineTooLong, LocalProtocolError, Sentinel
from stalwart.sasl import MECHANISMS

from . import codes
from .codes import Reply
from .events import CLOSE, Envelope, Event, Session
from .params import Extensions

# The DATA/BDAT receivers (Cython; no pure-Python fallback at run time).
from ._data import BdatReceiver, DataReceiver

# ---------------------------------------------------------------------- limits
#: RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF (the default
#: of ``SmtpConfig.max_line_length``, setting ``smtp.session.max-line-length``).
MAX_COMMAND_LINE = 512
#: MAIL/RCPT may be longer by each announced extension's allowance (SIZE 26 RFC 1870 4;
#: ENVID 107 + RET 9 RFC 3461 4; AUTH= 500 RFC 4954 5; BODY=8BITMIME 14; SMTPUTF8 9;
#: REQUIRETLS 11; NOTIFY 30 + ORCPT 510 for RCPT, RFC 3461 4).
PARAM_ALLOWANCE = 26 + 107 + 9 + 500 + 14 + 9 + 11 + 30 + 510
MAX_PARAM_LINE = MAX_COMMAND_LINE + PARAM_ALLOWANCE
#: RFC 4954 4: AUTH command and SASL response lines up to 12288 octets.
MAX_SASL_LINE = 12288 + 2

# ---------------------------------------------------------------------- states
CONNECTED, GREETED, MAIL, RCPT, CHUNKING = "CONNECTED", "GREETED", "MAIL", "RCPT", "CHUNKING"
# Input phases.
P_COMMAND, P_DATA, P_BDAT, P_SASL = "COMMAND", "DATA", "BDAT", "SASL"

_IN_TRANSACTION = {MAIL: codes.NESTED_MAIL, RCPT: codes.NESTED_MAIL, CHUNKING: codes.NESTED_MAIL}

#: verb -> {state: reply refusing it}. States not listed accept the verb.
SEQUENCE: dict[str, dict[str, Reply]] = {
    "MAIL": {CONNECTED: codes.NEED_HELO, **_IN_TRANSACTION},
    "RCPT": {CONNECTED: codes.NEED_HELO, GREETED: codes.NEED_MAIL, CHUNKING: codes.BAD_SEQUENCE},
    # DATA in MAIL state is decided by commands/data.py (503 or 554, RFC 5321 3.3).
    "DATA": {CONNECTED: codes.NEED_HELO, GREETED: codes.NEED_MAIL, CHUNKING: codes.DATA_AFTER_BDAT},
    "AUTH": {CONNECTED: codes.NEED_HELO, MAIL: codes.AUTH_IN_TRANSACTION,
             RCPT: codes.AUTH_IN_TRANSACTION, CHUNKING: codes.AUTH_IN_TRANSACTION},
    "STARTTLS": {CONNECTED: codes.NEED_HELO, MAIL: codes.BAD_SEQUENCE, RCPT: codes.BAD_SEQUENCE,
                 CHUNKING: codes.BAD_SEQUENCE},
}

#: Verbs of other protocols sent to us by cross-protocol attacks (HTTP in an <img> tag,
#: open proxy scanners): hang up at once, as Postfix's smtpd_forbidden_commands does.
FORBIDDEN_VERBS = frozenset({"GET", "POST", "PUT", "HEAD", "CONNECT", "OPTIONS"})


@dataclass(frozen=True)
class SmtpConfig:
    """What one listener's sessions are allowed to do."""

    hostname: str = "localhost"
    lmtp: bool = False
    submission: bool = False                 # AUTH required before MAIL (RFC 6409)
    starttls: bool = True                    # a certificate is available for STARTTLS
    auth_mechanisms: tuple[str, ...] = MECHANISMS
    auth_without_tls: bool = False           # offer AUTH on a clear-text session
    max_message_size: int = 50 * 1024 * 1024
    max_recipients: int = 100
    max_messages: int = 100
    max_errors: int = 10
    max_auth_failures: int = 3
    max_pipeline: int = 500
    max_line_length: int = MAX_COMMAND_LINE  # octets with CRLF; MAIL/RCPT get more
    bare_newline: str = "reject"             # in content: "reject" or "normalize"
    reject_8bit_without_8bitmime: bool = True
    greeting: str = "ESMTP ready"


def merge_replies(replies: list[Reply]) -> Reply:
    """SMTP has one reply for the whole message (RFC 5321 4.1.1.4). All accepted: the
    first acceptance. None accepted: the first transient failure if any (the client
    retries), else the first permanent one. Mixed: accepted; the deliverer has taken
    responsibility for the failed recipients (queue or DSN), as RFC 5321 6.1 requires."""
    positive = [r for r in replies if r.is_positive]
    if positive:
        return positive[0]
    transient = [r for r in replies if r.is_transient]
    return (transient or replies or [codes.TEMP_DELIVERY])[0]


class SmtpMachine:
    """One SMTP or LMTP server session, sans-IO. See the module docstring."""

    def __init__(self, config: SmtpConfig, session: Session | None = None, *,
                 refuse: Reply | None = None) -> None:
        """``refuse``: answer the connection with this reply (``421 4.7.0``, a client over
        a limit or banned) instead of the greeting, and close (RFC 5321 3.1, 4.2.2)."""
        self.config = config
        self.session = session if session is not None else Session()
        self.session.lmtp = config.lmtp
        self.session.submission = config.submission
        self.state = CONNECTED
        self.phase = P_COMMAND
        self.envelope: Envelope | None = None
        self.rcpt_attempts = 0
        self.messages = 0
        self.errors = 0
        self.auth_failures = 0
        self._line_limit = max(MAX_COMMAND_LINE, config.max_line_length)
        self._param_limit = self._line_limit + PARAM_ALLOWANCE
        self._reader = LineReader(max(MAX_SASL_LINE, self._param_limit),
                                  reply_code="500 5.5.2")
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._waiting: tuple[Event, Callable[[Any], None]] | None = None
        self._closing = False
        self._closed = False
        self._eof = False
        self._depth = 0
        # Content reception.
        self._data: DataReceiver | None = None
        self._bdat: BdatReceiver | None = None
        self._bdat_last = False
        self._discard = 0              # octets of a refused BDAT chunk still to drop
        self._discard_reply: Reply | None = None
        self._sink = bytearray()
        # SASL exchange in progress (commands/auth.py).
        self.sasl: Any = None
        self.sasl_name = ""
        self.sasl_final = False
        self.sasl_final_identity: Any = None
        if refuse is not None:
            self.close(refuse)
            return
        self.reply(codes.reply(220, "", f"{config.hostname} {config.greeting}".strip()))

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
    def waiting(self) -> Event | None:
        return self._waiting[0] if self._waiting else None

    @property
    def closed(self) -> bool:
        return self._closed

    def next_event(self) -> Event | Sentinel:
        if self._waiting is not None:
            raise LocalProtocolError(f"answer {type(self._waiting[0]).__name__} first")
        while True:
            if self._events:
                return self._events.popleft()
            if self._closed:
                return CLOSE
            if self._closing:
                self._close_now()
                return CLOSE
            if self._waiting is not None:
                return self._waiting[0]
            if not self._step():
                if self._eof:
                    # Mid-DATA or mid-BDAT end of input: nothing is delivered.
                    self._close_now()
                    return CLOSE
                self._depth = 0
                return NEED_DATA

    def answer(self, value: Any) -> None:
        """The adapter's answer to the request ``next_event`` returned."""
        if self._waiting is None:
            raise LocalProtocolError("no request is waiting for an answer")
        _, on_answer = self._waiting
        self._waiting = None
        on_answer(value)

    def shutdown(self, reply: Reply = codes.SHUTTING_DOWN) -> None:
        """Close the session with ``reply`` (server drain, idle timeout, a ban); nothing
        when it is closing already (its last reply is queued)."""
        if not self._closing:
            self.reply(reply)
            self._closing = True

    # ================================================================== for commands
    def reply(self, reply: Reply) -> None:
        self._out += reply.to_bytes()

    def fail(self, reply: Reply) -> None:
        """A negative reply to a client error; too many of them end the session."""
        self.reply(reply)
        self.errors += 1
        if self.errors >= self.config.max_errors and not self._closing:
            self.reply(codes.TOO_MANY_ERRORS)
            self._closing = True

    def close(self, reply: Reply) -> None:
        self.reply(reply)
        self._closing = True

    def close_silently(self) -> None:
        """End the session without a reply (the stream is no longer usable)."""
        self._closing = True

    def request(self, event: Event, on_answer: Callable[[Any], None]) -> None:
        """Ask the adapter; ``on_answer(value)`` runs when it answers."""
        if self._waiting is not None:
            raise LocalProtocolError("a request is already waiting")
        self._waiting = (event, on_answer)

    def notify(self, event: Event) -> None:
        self._events.append(event)

    def extensions(self) -> Extensions:
        esmtp = self.session.esmtp
        return Extensions(size=esmtp, eight_bit=esmtp, smtputf8=esmtp, dsn=esmtp, auth=esmtp,
                          requiretls=esmtp and self.session.tls)

    def auth_offered(self) -> tuple[str, ...]:
        """Mechanisms we offer now (none on clear text unless configured, RFC 4954 4)."""
        if not self.session.tls and not self.config.auth_without_tls:
            return ()
        return self.config.auth_mechanisms

    def reset_transaction(self) -> None:
        self.envelope = None
        self.rcpt_attempts = 0
        self._data = None
        self._bdat = None
        self._sink = bytearray()
        if self.state != CONNECTED:
            self.state = GREETED

    def reset_session(self) -> None:
        """RFC 3207 4.2: after STARTTLS forget everything the client told us."""
        self.reset_transaction()
        self.state = CONNECTED
        self.session.helo = ""
        self.session.esmtp = False

    def start_data(self) -> None:
        self._sink = bytearray()
        self._data = DataReceiver(self._sink, max_size=self.config.max_message_size,
                                  bare_newline=self.config.bare_newline)
        self.phase = P_DATA

    def start_chunk(self, size: int, last: bool) -> None:
        """Read a BDAT chunk into the transaction's receiver."""
        if self._bdat is None:
            self._sink = bytearray()
            self._bdat = BdatReceiver(self._sink, max_size=self.config.max_message_size,
                                      bare_newline=self.config.bare_newline)
        self._bdat.start_chunk(size, last)
        self._bdat_last = last
        self.state = CHUNKING
        self.phase = P_BDAT
        if size == 0:
            self._chunk_done()

    def discard_chunk(self, size: int, reply: Reply) -> None:
        """RFC 3030 2: a refused BDAT's octets are still read (and dropped), then
        ``reply`` is sent."""
        self._discard = size
        self._discard_reply = reply
        self.phase = P_BDAT
        if size == 0:
            self._discard_done()

    def begin_sasl(self) -> None:
        """The next lines are SASL responses, not commands (RFC 4954 4)."""
        self.phase = P_SASL

    def end_sasl(self) -> None:
        self.sasl = None
        self.sasl_name = ""
        self.sasl_final = False
        self.sasl_final_identity = None
        self.phase = P_COMMAND

    def pending_input(self) -> bytes:
        """Remove and return buffered, unprocessed input (STARTTLS drops it)."""
        return self._reader.drain()

    # ================================================================== internals
    def _close_now(self) -> None:
        self._closed = True
        self._closing = True
        if not self._reader.discarding:
            self._reader.drain()
        self.reset_transaction()

    def _step(self) -> bool:
        """Make progress on buffered input; False when more input is needed."""
        if self.phase == P_DATA:
            return self._step_data()
        if self.phase == P_BDAT:
            return self._step_bdat()
        try:
            line = self._reader.next_line()
        except LineTooLong:
            self._count_command()
            if self.phase == P_SASL:
                self.end_sasl()
                self.fail(codes.AUTH_LINE_TOO_LONG)
            else:
                self.fail(codes.LINE_TOO_LONG)
            return True
        if line is NEED_DATA:
            return False
        self._on_line(line)
        return True

    def _count_command(self) -> None:
        self._depth += 1
        if self._depth > self.config.max_pipeline and not self._closing:
            self.close(codes.PIPELINE_TOO_DEEP)

    def _on_line(self, raw: bytes) -> None:
        self._count_command()
        if self._closing:
            return
        if not raw.endswith(b"\r\n"):
            self.fail(codes.BARE_LF)
            return
        body = raw[:-2]
        if b"\r" in body:
            self.fail(codes.BARE_LF.with_text("Bare CR in command, lines must end with CRLF"))
            return
        if b"\x00" in body:
            self.fail(codes.NUL_IN_COMMAND)
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(codes.BAD_UTF8_COMMAND)
            return
        if self.phase == P_SASL:
            from .commands import auth

            auth.on_response(self, text)
            return
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        limit = (max(MAX_SASL_LINE, self._line_limit) if verb == "AUTH"
                 else self._param_limit if verb in ("MAIL", "RCPT") else self._line_limit)
        if len(raw) > limit:
            self.fail(codes.LINE_TOO_LONG)
            return
        if verb in FORBIDDEN_VERBS:
            self.close(codes.FORBIDDEN_COMMAND)
            return
        handler = COMMANDS.get(verb)
        if handler is None:
            self.fail(codes.UNKNOWN_COMMAND)
            return
        refusals = SEQUENCE.get(verb)
        if refusals and self.state in refusals:
            self.fail(refusals[self.state])
            return
        handler(self, arg)

    # ------------------------------------------------------------------ content
    def _step_data(self) -> bool:
        chunk = self._reader.drain()
        if not chunk:
            return False
        receiver = self._data
        assert receiver is not None
        rest = receiver.feed(chunk)
        if rest is NEED_DATA:
            return False
        self._reader.feed(rest)
        self.phase = P_COMMAND
        from .commands import data

        data.finish(self, receiver, self._sink, chunked=False)
        return True

    def _step_bdat(self) -> bool:
        if self._discard_reply is not None:
            dropped = self._reader.take(self._discard)
            if not dropped:
                return False
            self._discard -= len(dropped)
            if self._discard == 0:
                self._discard_done()
            return True
        receiver = self._bdat
        assert receiver is not None
        chunk = self._reader.take(receiver.chunk_remaining)
        if not chunk:
            return False
        receiver.feed(chunk)
        if not receiver.in_chunk:
            self._chunk_done()
        return True

    def _discard_done(self) -> None:
        reply = self._discard_reply
        self._discard_reply = None
        self._discard = 0
        self.phase = P_COMMAND
        assert reply is not None
        self.fail(reply)

    def _chunk_done(self) -> None:
        from .commands import bdat

        self.phase = P_COMMAND
        receiver = self._bdat
        assert receiver is not None
        bdat.chunk_done(self, receiver, self._sink, self._bdat_last)


def _commands() -> dict[str, Callable[[SmtpMachine, str], None]]:
    from .commands import auth, bdat, data, hello, mail, misc, rcpt, starttls

    return {
        "EHLO": hello.ehlo, "HELO": hello.helo, "LHLO": hello.lhlo,
        "MAIL": mail.handle, "RCPT": rcpt.handle, "DATA": data.handle, "BDAT": bdat.handle,
        "AUTH": auth.handle, "STARTTLS": starttls.handle,
        "RSET": misc.rset, "NOOP": misc.noop, "QUIT": misc.quit, "VRFY": misc.vrfy,
        "EXPN": misc.expn, "HELP": misc.help,
    }


COMMANDS = _commands()
