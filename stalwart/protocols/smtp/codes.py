"""Named SMTP replies: the basic code (RFC 5321 4.2) with its enhanced status code
(RFC 3463, registry of RFC 5248), and the rule each one enforces.

Every reply the SMTP/LMTP core sends is built here, so that the text a client sees is the
same everywhere and a test can compare against a name instead of a string.

Invariants
- The first digit of the basic code and the class of the enhanced code agree
  (2xx <-> 2.x.x, 4xx <-> 4.x.x, 5xx <-> 5.x.x), as RFC 3463 section 2 requires. The
  replies to the greeting, EHLO/HELO/LHLO and the 334 SASL challenges carry no enhanced
  code (RFC 2034 section 3: not in the greeting or the EHLO response; RFC 4954 section 4:
  334 is a continuation).
- Text never contains CR or LF: a reply is one logical line, or several lines produced by
  ``Reply.lines`` with the ``-`` continuation of RFC 5321 4.2.1.

Wire form (RFC 5321 4.2.1)::

    250-first line
    250 last line
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: ``code`` (three digits), enhanced ``status`` ("" for none), ``lines``."""

    code: int
    status: str
    lines: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code {self.code} is not 2xx-5xx")
        if self.status and self.status[0] != str(self.code)[0]:
            raise ValueError(f"enhanced status {self.status} does not match {self.code}")
        for line in self.lines:
            if "\r" in line or "\n" in line:
                raise ValueError("reply text must not contain CR or LF")

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def to_bytes(self) -> bytes:
        out = []
        lines = self.lines or ("",)
        last = len(lines) - 1
        for i, line in enumerate(lines):
            sep = " " if i == last else "-"
            # RFC 2034 section 3: every line of a multi-line reply carries the status.
            # "334 " keeps its space even with no data (RFC 4954 4: "334" SP [base64]).
            text = f"{self.status} {line}" if self.status and line else self.status or line
            out.append(f"{self.code}{sep}{text}\r\n")
        return "".join(out).encode("utf-8")

    def with_text(self, *lines: str) -> "Reply":
        return Reply(self.code, self.status, tuple(lines))

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "replace").rstrip("\r\n")


def reply(code: int, status: str, *lines: str) -> Reply:
    return Reply(code, status, tuple(lines))


# ------------------------------------------------------------------ connection
#: RFC 5321 4.2.3 / 3.8: the server is shutting down or the session is being closed.
SHUTTING_DOWN = reply(421, "4.3.2", "Server shutting down, closing connection")
#: RFC 5321 4.5.3.2: a session that has been idle too long is closed with 421.
TIMEOUT = reply(421, "4.4.2", "Idle timeout, closing connection")
#: Our per-session error budget is spent (mox/Postfix "too many errors").
TOO_MANY_ERRORS = reply(421, "4.7.0", "Too many errors, closing connection")
#: RFC 2920 leaves the depth of a pipeline to the server; past our limit we close.
PIPELINE_TOO_DEEP = reply(421, "4.7.0", "Too many pipelined commands, closing connection")
#: Session lasted longer than allowed.
SESSION_TOO_LONG = reply(421, "4.4.2", "Session too long, closing connection")
#: RFC 5321 4.1.1.10: QUIT gets 221 and the server closes.
BYE = reply(221, "2.0.0", "Bye")

# ------------------------------------------------------------------ syntax (RFC 5321 4.2.2)
#: RFC 5321 4.2.2 500: command not recognised.
UNKNOWN_COMMAND = reply(500, "5.5.1", "Command unrecognized")
#: RFC 5321 4.5.3.1.4/4.5.3.1.5: command line over 512 octets (plus extension allowance).
LINE_TOO_LONG = reply(500, "5.5.2", "Line too long")
#: RFC 5321 2.3.8 / 4.1.1: commands end with CRLF; bare LF is not a line end.
BARE_LF = reply(500, "5.5.2", "Bare LF in command, lines must end with CRLF")
#: RFC 5321 4.1.1: a NUL octet is never part of a command.
NUL_IN_COMMAND = reply(500, "5.5.2", "NUL octet in command")
#: RFC 6531 3.3 / RFC 5321 2.4: 8-bit octets in a command need SMTPUTF8 and UTF-8.
BAD_UTF8_COMMAND = reply(500, "5.5.2", "Command is not valid UTF-8")
#: RFC 5321 4.2.2 501: syntax error in parameters or arguments.
SYNTAX = reply(501, "5.5.4", "Syntax error in parameters or arguments")
#: RFC 5321 4.1.2 path syntax.
BAD_PATH = reply(501, "5.1.3", "Bad address syntax")
#: RFC 5321 4.5.3.1.3: path over 256 octets.
PATH_TOO_LONG = reply(501, "5.1.3", "Path too long")
#: RFC 5321 4.5.3.1.1: local part over 64 octets.
LOCAL_TOO_LONG = reply(501, "5.1.3", "Local part too long")
#: RFC 5321 4.5.3.1.2: domain over 255 octets.
DOMAIN_TOO_LONG = reply(501, "5.1.3", "Domain too long")
#: RFC 5321 4.1.4: HELO/EHLO require a domain or address literal.
HELO_NEEDS_DOMAIN = reply(501, "5.5.4", "Syntax: EHLO domain-or-address-literal")
#: RFC 5321 4.2.2 502: command recognised but not implemented (or disabled).
NOT_IMPLEMENTED = reply(502, "5.5.1", "Command not implemented")
#: RFC 5321 4.1.4: order of commands.
BAD_SEQUENCE = reply(503, "5.5.1", "Bad sequence of commands")
NEED_HELO = reply(503, "5.5.1", "Send EHLO first")
NEED_MAIL = reply(503, "5.5.1", "Need MAIL before RCPT")
NEED_RCPT = reply(503, "5.5.1", "Need RCPT before DATA")
NESTED_MAIL = reply(503, "5.5.1", "Nested MAIL command")
#: RFC 3030 3: DATA and BDAT cannot be mixed within one transaction.
DATA_AFTER_BDAT = reply(503, "5.5.1", "DATA not allowed after BDAT")
#: RFC 4954 4: AUTH is not allowed during a mail transaction, nor twice.
AUTH_IN_TRANSACTION = reply(503, "5.5.1", "AUTH not allowed during a mail transaction")
ALREADY_AUTHENTICATED = reply(503, "5.5.1", "Already authenticated")
#: RFC 3207 4: STARTTLS once only.
ALREADY_TLS = reply(503, "5.5.1", "TLS already active")
#: RFC 5321 4.2.2 504: command parameter not implemented.
PARAM_NOT_IMPLEMENTED = reply(504, "5.5.4", "Command parameter not implemented")
#: RFC 4954 4: unknown SASL mechanism.
UNKNOWN_MECHANISM = reply(504, "5.5.4", "Unrecognized authentication mechanism")
#: RFC 5321 4.5.3.1.10 / RFC 1869: MAIL/RCPT parameter not recognised.
UNKNOWN_PARAM = reply(555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented")
#: LMTP (RFC 2033 4.1): HELO/EHLO are not LMTP commands.
LMTP_NEEDS_LHLO = reply(500, "5.5.1", "This is LMTP: use LHLO")
SMTP_NO_LHLO = reply(500, "5.5.1", "This is SMTP: use EHLO")

# ------------------------------------------------------------------ positive
OK = reply(250, "2.0.0", "OK")
RESET = reply(250, "2.0.0", "Reset state")
NOOP = reply(250, "2.0.0", "OK")
SENDER_OK = reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = reply(250, "2.1.5", "Recipient OK")
#: RFC 5321 3.5.3: VRFY may answer 252 when the server will not verify.
VRFY_CANNOT = reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
START_DATA = reply(354, "", "Start mail input; end with <CRLF>.<CRLF>")
MESSAGE_ACCEPTED = reply(250, "2.0.0", "Message accepted for delivery")
#: RFC 3030 2: each non-final BDAT chunk is acknowledged.
CHUNK_OK = reply(250, "2.0.0", "Chunk accepted")
READY_TLS = reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = reply(235, "2.7.0", "Authentication succeeded")
HELP = reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP")

# ------------------------------------------------------------------ MAIL / RCPT
#: RFC 1870 6: SIZE declared above the limit (permanent, 5.3.4).
MESSAGE_TOO_BIG = reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
#: RFC 5321 4.5.3.1.8: too many recipients: 452 (transient) so the client retries the rest.
TOO_MANY_RECIPIENTS = reply(452, "4.5.3", "Too many recipients")
#: Messages per session exhausted: close, the client reconnects (as Postfix and Exim do).
TOO_MANY_MESSAGES = reply(421, "4.7.0", "Too many messages in this session, reconnect")
#: Too many failed AUTH attempts in one session (the adapter also delays each failure).
TOO_MANY_AUTH_FAILURES = reply(421, "4.7.0", "Too many authentication failures, closing connection")
#: HTTP or proxy requests sent to the SMTP port (cross-protocol attacks): hang up.
FORBIDDEN_COMMAND = reply(421, "4.7.0", "This is an SMTP server, closing connection")
#: RFC 5321 3.6.2 / 7.1: we do not relay for unauthenticated clients.
RELAY_DENIED = reply(550, "5.7.1", "Relaying denied")
#: Sender-specified routing (percent hack, bang path, quoted @) never forwards.
ROUTING_DENIED = reply(550, "5.7.1", "Sender-specified routing is not allowed")
#: RFC 3463 5.1.1: the mailbox does not exist.
NO_SUCH_USER = reply(550, "5.1.1", "Mailbox does not exist")
#: RFC 3463 5.1.8: the sender's address is not acceptable.
BAD_SENDER = reply(553, "5.7.1", "Sender address not allowed for this account")
#: RFC 6409 4.3 / RFC 4954 6: submission requires authentication.
AUTH_REQUIRED = reply(530, "5.7.0", "Authentication required")
#: RFC 3207 4 / RFC 4954 4: the mechanism (or AUTH altogether) needs TLS first.
TLS_REQUIRED = reply(530, "5.7.0", "Must issue a STARTTLS command first")
#: RFC 8689 4.1: REQUIRETLS on a session without TLS.
REQUIRETLS_NEEDS_TLS = reply(530, "5.7.10", "REQUIRETLS needs a TLS session")
#: RFC 6531 3.4: a UTF-8 address without SMTPUTF8 on MAIL.
NEED_SMTPUTF8 = reply(553, "5.6.7", "Address needs SMTPUTF8")
#: RFC 3461 4: DSN parameter bad.
BAD_DSN = reply(501, "5.5.4", "Bad DSN parameter")
#: Temporary failure talking to the directory or store.
TEMP_LOOKUP = reply(451, "4.3.0", "Temporary lookup failure, try again later")

# ------------------------------------------------------------------ DATA / BDAT
#: RFC 6152 3: 8-bit data when BODY=8BITMIME was not declared.
EIGHT_BIT_WITHOUT_8BITMIME = reply(554, "5.6.0", "8-bit data without BODY=8BITMIME")
#: RFC 3030 2: BDAT size too large etc.
BAD_BDAT = reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")
#: Data (or a BDAT chunk) ended without a valid terminator / bare LF smuggling guard.
BAD_DATA = reply(550, "5.6.0", "Message contains bare CR or LF, refused")
#: A transaction refused before its data: BDAT chunks are read and discarded (RFC 3030 2).
NO_VALID_RECIPIENTS = reply(554, "5.5.1", "No valid recipients")
TEMP_DELIVERY = reply(451, "4.3.0", "Temporary delivery failure, try again later")
MAILBOX_FULL = reply(552, "5.2.2", "Mailbox full")
MAILBOX_FULL_TEMP = reply(452, "4.2.2", "Mailbox full, try again later")
MAILBOX_DISABLED = reply(550, "5.2.1", "Mailbox disabled")

# ------------------------------------------------------------------ AUTH (RFC 4954 6)
AUTH_FAILED = reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_CANCELLED = reply(501, "5.7.0", "Authentication cancelled")
AUTH_BAD_BASE64 = reply(501, "5.5.2", "Cannot decode base64 response")
AUTH_TEMP = reply(454, "4.7.0", "Temporary authentication failure")
AUTH_TOO_WEAK = reply(534, "5.7.9", "Authentication mechanism is too weak")
AUTH_LINE_TOO_LONG = reply(500, "5.5.6", "Authentication exchange line is too long")

# ------------------------------------------------------------------ TLS
TLS_NOT_AVAILABLE = reply(454, "4.7.0", "TLS not available")
