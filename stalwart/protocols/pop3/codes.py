"""Named POP3 replies: the status indicator, the extended response code, and the rule each
one enforces.

Wire form (RFC 1939 3, RFC 2449 8)::

    +OK text CRLF
    -ERR [RESP-CODE] text CRLF
    +OK text CRLF  line CRLF ... "." CRLF        (multi-line, dot-stuffed)

Extended response codes (RESP-CODES, RFC 2449 8; the IANA "POP3 Extended Response Codes"
registry). We send:

- ``[AUTH]`` (RFC 3206 5, announced by AUTH-RESP-CODE): the credentials were refused, or
  authentication is not allowed here (plain text without TLS, too many failures).
- ``[SYS/TEMP]`` (RFC 3206 4): a temporary failure of the system (store unreachable,
  server shutting down); the client may try again later.
- ``[UTF8]`` (RFC 6856): the request needs UTF-8 mode and the client has not enabled it.

``[IN-USE]`` and ``[LOGIN-DELAY]`` (RFC 2449 8.1, 8.2) are never sent: maildrops are not
locked (several sessions may read the same INBOX; deletions are by UID, see maildrop.py)
and no login delay is imposed.

Invariants
- Text never contains CR, LF or NUL; a reply is one line. ``Reply.to_bytes`` refuses
  anything else, so text echoed from a client can never inject a second reply line.
- A reply line stays within RFC 2449 4's 512 octets: echoed text is cut short first.
"""

from __future__ import annotations

from dataclasses import dataclass

#: RFC 2449 4: a response line is at most 512 octets including the CRLF.
MAX_REPLY_LINE = 512

# Extended response codes (RFC 2449 8, RFC 3206, RFC 6856).
AUTH = "AUTH"
SYS_TEMP = "SYS/TEMP"
UTF8 = "UTF8"


@dataclass(frozen=True, slots=True)
class Reply:
    """One single-line reply: positive (``+OK``) or negative (``-ERR``)."""

    ok: bool
    text: str = ""
    code: str = ""

    def __post_init__(self) -> None:
        for value in (self.text, self.code):
            if "\r" in value or "\n" in value or "\0" in value:
                raise ValueError("reply text must not contain CR, LF or NUL")
        if self.ok and self.code:
            raise ValueError("extended response codes go with -ERR only (RFC 2449 8)")

    def to_bytes(self) -> bytes:
        head = "+OK" if self.ok else "-ERR"
        if self.code:
            head += f" [{self.code}]"
        line = f"{head} {self.text}" if self.text else head
        raw = line.encode("utf-8")
        if len(raw) > MAX_REPLY_LINE - 2:
            raw = raw[:MAX_REPLY_LINE - 2].decode("utf-8", "ignore").encode("utf-8")
        return raw + b"\r\n"

    def with_text(self, text: str) -> "Reply":
        return Reply(self.ok, text, self.code)

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8").rstrip("\r\n")


def ok(text: str = "") -> Reply:
    return Reply(True, text)


def err(text: str, code: str = "") -> Reply:
    return Reply(False, text, code)


def multiline(first: Reply, lines: list[str] | tuple[str, ...]) -> bytes:
    """A positive reply followed by ``lines`` (dot-stuffed, RFC 1939 3) and the ".".

    Used for CAPA, LIST, UIDL and the AUTH mechanism list, whose lines we build ourselves;
    message content goes through ``encoder.MessageEncoder`` instead."""
    if not first.ok:
        raise ValueError("a multi-line response starts with +OK")
    out = [first.to_bytes()]
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError("a response line must not contain CR or LF")
        out.append((("." + line) if line.startswith(".") else line).encode("utf-8") + b"\r\n")
    out.append(b".\r\n")
    return b"".join(out)


def syntax(detail: str) -> Reply:
    """A syntax error with what was expected: ``-ERR Syntax error: <detail>``."""
    return err(f"Syntax error: {detail}")


def summary(count: int, octets: int) -> str:
    """ "2 messages (640 octets)", the text of PASS, RSET and LIST replies."""
    return f"{count} message{'' if count == 1 else 's'} ({octets} octets)"


# --------------------------------------------------------------------- greetings, CAPA
CAPA_FOLLOWS = ok("Capability list follows")                      # RFC 2449 5
SASL_FOLLOWS = ok("SASL mechanisms follow")
STLS_BEGIN = ok("Begin TLS negotiation")                           # RFC 2595 4
UTF8_ON = ok("UTF8 enabled")                                       # RFC 6856 2
NOOP = ok("")                                                      # RFC 1939 5
BYE = ok("Stalwart POP3 signing off")                              # RFC 1939 6

# --------------------------------------------------------------------- syntax, sequence
UNKNOWN_COMMAND = err("Unknown command")
BAD_CHARACTERS = err("Invalid characters in command line")       # NUL, CR, controls
BAD_UTF8 = err("Command line is not valid UTF-8", UTF8)
LINE_TOO_LONG = err("Line too long")
NOT_IN_AUTHORIZATION = err("Not allowed before authentication")   # RFC 1939 table
NOT_IN_TRANSACTION = err("Already authenticated")
TOO_MANY_ERRORS = err("Too many errors, closing connection")
FORBIDDEN_VERB = err("This is a POP3 server")                    # cross-protocol attacks
SHUTTING_DOWN = err("Server shutting down", SYS_TEMP)

# --------------------------------------------------------------------- authentication
USER_FIRST = err("USER first")                                    # RFC 1939 7 PASS
TLS_REQUIRED = err("Plain-text authentication requires TLS (issue STLS first)", AUTH)
AUTH_FAILED = err("Authentication failed", AUTH)                  # RFC 3206 5
AUTH_TOO_MANY = err("Too many authentication failures", AUTH)
AUTH_CANCELLED = err("Authentication cancelled")                  # RFC 5034 4 "*"
AUTH_BAD_BASE64 = err("Invalid base64 data", AUTH)                # RFC 5034 4
AUTH_UNKNOWN_MECHANISM = err("Unsupported authentication mechanism")
AUTH_TEMP = err("Authentication service unavailable, try again later", SYS_TEMP)
#: The client address is banned after repeated failed logins (stalwart.limits): at the
#: greeting, or when a session of it tries again; the connection is then closed.
BANNED = err("Too many failed logins from this address, try again later", SYS_TEMP)
MAILDROP_TEMP = err("Maildrop unavailable, try again later", SYS_TEMP)
STLS_ACTIVE = err("TLS already active")                           # RFC 2595 4
STLS_UNAVAILABLE = err("TLS not available")

# --------------------------------------------------------------------- transaction
NO_SUCH_MESSAGE = err("No such message")                          # RFC 1939 5 LIST etc.
MESSAGE_DELETED = err("Message already deleted")                  # RFC 1939 5 DELE
MESSAGE_GONE = err("Message was removed by another session")
MESSAGE_TEMP = err("Message unavailable, try again later", SYS_TEMP)
UPDATE_FAILED = err("Some deleted messages not removed", SYS_TEMP)  # RFC 1939 6 QUIT
