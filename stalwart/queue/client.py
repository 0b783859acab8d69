"""An SMTP client over asyncio streams, for the queue (RFC 5321, 3207, 2920, 4954, 3461).

    client = await SmtpClient.connect("192.0.2.1", 25, timeouts=Timeouts())
    await client.ehlo("mail.example.org")
    if "STARTTLS" in client.capabilities:
        await client.starttls(context, "mx.example.net")   # then EHLO again (RFC 3207 4.2)
    result = await client.transaction("<a@example.org>", ["BODY=8BITMIME"],
                                      [("<b@example.net>", ["NOTIFY=FAILURE"])], message)
    result.rcpt[0]        # ServerReply for that recipient, or the DATA reply when accepted

The reply reader (``ReplyParser``) is sans-IO: fed bytes, it returns whole replies
(multi-line replies joined, RFC 5321 4.2.1), enforces limits on line length and line count,
and raises ``SmtpProtocolError`` for anything that is not a reply. The asyncio class only
moves bytes and applies the timeouts of ``Timeouts`` to each step.

Transaction rules
- With PIPELINING (RFC 2920 3.1) MAIL, every RCPT and DATA go in one write and the replies
  are read in order; without it, each command waits for its reply, and DATA is not sent
  when no recipient was accepted.
- A recipient's outcome is its RCPT reply when that was not 2xx, else the reply to the
  final dot (or to DATA when DATA itself was refused). If MAIL was refused, that reply is
  every recipient's outcome.
- If DATA got 354 although no recipient was accepted (possible only with pipelining), the
  body is not sent: a lone "." ends the transaction (RFC 2920 3.1).
- The message is sent with CRLF line endings (a bare CR or LF becomes CRLF: nothing we
  send can be read as a different end of data by the next hop, the "SMTP smuggling"
  class of bugs) and dot-stuffed (RFC 5321 4.5.2), ending with CRLF.CRLF.
- Errors are ``SmtpError`` with the stage it happened in and the reply if there was one;
  ``SmtpError.connection_lost`` says the connection is no longer usable.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from dataclasses import dataclass, field

from .settings import Timeouts

__all__ = ["ServerReply", "ReplyParser", "SmtpError", "SmtpProtocolError", "SmtpClient",
           "TransactionResult", "prepare_data"]

MAX_LINE = 8192          # RFC 5321 4.5.3.1.5 says 512; real servers send longer
MAX_LINES = 256
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")
_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerReply:
    code: int
    lines: tuple[str, ...]
    status: str = ""     # enhanced status code when the server gave one (RFC 3463)

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.status + ' ' if self.status else ''}{self.text}".rstrip()


class SmtpProtocolError(Exception):
    """The server sent something that is not an SMTP reply."""


class ReplyParser:
    """Bytes in, ``ServerReply`` objects out."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._code: int | None = None
        self._lines: list[str] = []

    def feed(self, data: bytes) -> list[ServerReply]:
        self._buf += data
        replies: list[ServerReply] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_LINE:
                    raise SmtpProtocolError("reply line too long")
                return replies
            raw = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[:end + 1]
            if len(raw) > MAX_LINE:
                raise SmtpProtocolError("reply line too long")
            reply = self._line(raw.decode("utf-8", "replace"))
            if reply is not None:
                replies.append(reply)

    def _line(self, line: str) -> ServerReply | None:
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
            raise SmtpProtocolError(f"malformed reply line {line[:80]!r}")
        code = int(line[:3])
        if not 200 <= code <= 599:
            raise SmtpProtocolError(f"reply code {code} out of range")
        if self._code is not None and code != self._code:
            raise SmtpProtocolError("reply code changed inside a multi-line reply")
        self._code = code
        self._lines.append(line[4:])
        if len(self._lines) > MAX_LINES:
            raise SmtpProtocolError("too many reply lines")
        if len(line) > 3 and line[3] == "-":
            return None
        lines, self._lines, self._code = self._lines, [], None
        status = ""
        m = _ENHANCED.match(lines[0])
        if m and m.group(1) == str(code)[0]:
            status = f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}"
            lines = [_ENHANCED.sub("", ln, count=1) if _ENHANCED.match(ln) else ln
                     for ln in lines]
        return ServerReply(code, tuple(lines), status)


class SmtpError(Exception):
    """A step failed. ``reply`` is the server's answer, if any; ``stage`` names the step
    ("connect", "greeting", "ehlo", "starttls", "tls", "auth", "mail", "data", ...)."""

    def __init__(self, stage: str, message: str, reply: ServerReply | None = None, *,
                 connection_lost: bool = False) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.message = message
        self.reply = reply
        self.connection_lost = connection_lost

    @property
    def permanent(self) -> bool:
        return self.reply is not None and self.reply.permanent


@dataclass
class TransactionResult:
    mail: ServerReply
    rcpt: list[ServerReply]                 # the outcome per recipient, in order
    data: ServerReply | None = None         # the final reply, when DATA was attempted
    accepted: list[int] = field(default_factory=list)   # indexes delivered (2xx end to end)


def prepare_data(message: bytes) -> bytes:
    """The DATA payload: CRLF line endings, dot-stuffed, terminated by CRLF.CRLF."""
    data = _LINE_ENDINGS.sub(b"\r\n", message)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class SmtpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeouts: Timeouts, *, peer: tuple[str, int], tls: bool = False) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = ReplyParser()
        self._pending: list[ServerReply] = []
        self.timeouts = timeouts
        self.peer = peer
        self.tls = tls
        self.greeting: ServerReply | None = None
        self.ehlo_reply: ServerReply | None = None
        self.capabilities: dict[str, str] = {}
        self.esmtp = False
        self.authenticated = False
        self.closed = False
        self.messages = 0                   # transactions completed on this connection

    # ----------------------------------------------------------------- connection
    @classmethod
    async def connect(cls, ip: str, port: int, *, timeouts: Timeouts,
                      tls_context: ssl.SSLContext | None = None,
                      server_hostname: str | None = None) -> "SmtpClient":
        """Connect (implicit TLS with ``tls_context``) and read the greeting; a greeting
        other than 220 raises ``SmtpError("greeting", ...)`` after a polite QUIT."""
        try:
            async with asyncio.timeout(timeouts.connect + (timeouts.tls if tls_context else 0)):
                reader, writer = await asyncio.open_connection(
                    ip, port, ssl=tls_context, limit=MAX_LINE * 2,
                    server_hostname=(server_hostname or ip) if tls_context else None,
                    ssl_handshake_timeout=timeouts.tls if tls_context else None)
        except (TimeoutError, asyncio.TimeoutError):
            raise SmtpError("connect", f"timed out connecting to [{ip}]:{port}",
                            connection_lost=True) from None
        except ssl.SSLError as exc:
            raise SmtpError("tls", f"TLS handshake with [{ip}]:{port} failed: {exc}",
                            connection_lost=True) from None
        except OSError as exc:
            raise SmtpError("connect", f"cannot connect to [{ip}]:{port}: "
                            f"{exc.strerror or exc}", connection_lost=True) from None
        client = cls(reader, writer, timeouts, peer=(ip, port), tls=tls_context is not None)
        try:
            client.greeting = await client._read(timeouts.greeting, "greeting")
        except SmtpError:
            client.close()
            raise
        if client.greeting.code != 220:
            await client.quit()
            raise SmtpError("greeting", "server refused the session", client.greeting,
                            connection_lost=True)
        return client

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    async def quit(self) -> None:
        """QUIT politely (RFC 5321 4.1.1.10) and close, ignoring what goes wrong."""
        if self.closed:
            return
        try:
            self._writer.write(b"QUIT\r\n")
            async with asyncio.timeout(5):
                await self._writer.drain()
                await self._read(5, "quit")
        except (SmtpError, OSError, TimeoutError, asyncio.TimeoutError, ssl.SSLError):
            pass
        self.close()
        try:
            async with asyncio.timeout(2):
                await self._writer.wait_closed()
        except (OSError, TimeoutError, asyncio.TimeoutError, ssl.SSLError):
            pass

    @property
    def usable(self) -> bool:
        return not self.closed and not self._reader.at_eof() and not self._writer.is_closing()

    # ----------------------------------------------------------------- I/O
    async def _send(self, data: bytes, timeout: float, stage: str) -> None:
        if self.closed:
            raise SmtpError(stage, "connection closed", connection_lost=True)
        try:
            self._writer.write(data)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except (TimeoutError, asyncio.TimeoutError):
            self.close()
            raise SmtpError(stage, "timed out sending", connection_lost=True) from None
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise SmtpError(stage, f"connection lost: {exc}", connection_lost=True) from None

    async def _read(self, timeout: float, stage: str) -> ServerReply:
        try:
            async with asyncio.timeout(timeout):
                while not self._pending:
                    chunk = await self._reader.read(65536)
                    if not chunk:
                        self.close()
                        raise SmtpError(stage, "connection closed by the server",
                                        connection_lost=True)
                    self._pending.extend(self._parser.feed(chunk))
        except (TimeoutError, asyncio.TimeoutError):
            self.close()
            raise SmtpError(stage, "timed out waiting for the reply",
                            connection_lost=True) from None
        except SmtpProtocolError as exc:
            self.close()
            raise SmtpError(stage, str(exc), connection_lost=True) from None
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise SmtpError(stage, f"connection lost: {exc}", connection_lost=True) from None
        return self._pending.pop(0)

    async def command(self, line: str, stage: str, timeout: float | None = None) -> ServerReply:
        await self._send(line.encode("utf-8") + b"\r\n", self.timeouts.command, stage)
        return await self._read(timeout or self.timeouts.command, stage)

    # ----------------------------------------------------------------- session
    async def ehlo(self, name: str) -> None:
        """EHLO, falling back to HELO when EHLO is refused (RFC 5321 3.2)."""
        reply = await self.command(f"EHLO {name}", "ehlo")
        if reply.code == 250:
            self.esmtp = True
            self.ehlo_reply = reply
            caps: dict[str, str] = {}
            for line in reply.lines[1:]:
                keyword, _, params = line.strip().partition(" ")
                if keyword.upper().startswith("AUTH="):      # pre-RFC 4954 servers
                    keyword, params = "AUTH", keyword[5:] + " " + params
                caps[keyword.upper()] = (caps.get(keyword.upper(), "") + " " + params).strip()
            self.capabilities = caps
            return
        if reply.code in (500, 502, 504, 550):
            helo = await self.command(f"HELO {name}", "helo")
            if helo.code == 250:
                self.esmtp = False
                self.capabilities = {}
                return
            reply = helo
        raise SmtpError("ehlo", "server refused EHLO/HELO", reply)

    def supports(self, keyword: str) -> bool:
        return keyword.upper() in self.capabilities

    @property
    def max_size(self) -> int | None:
        value = self.capabilities.get("SIZE", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def auth_mechanisms(self) -> set[str]:
        return {m.upper() for m in self.capabilities.get("AUTH", "").split()}

    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """STARTTLS (RFC 3207); the caller sends EHLO again afterwards."""
        reply = await self.command("STARTTLS", "starttls")
        if reply.code != 220:
            raise SmtpError("starttls", "server refused STARTTLS", reply)
        if self._pending or self._parser._buf:
            # Bytes after the 220 and before the handshake were injected in clear text
            # (CVE-2011-0411 class): refuse to go on.
            self.close()
            raise SmtpError("starttls", "data received before the TLS handshake",
                            connection_lost=True)
        try:
            await self._writer.start_tls(context, server_hostname=server_hostname,
                                         ssl_handshake_timeout=self.timeouts.tls)
        except (ssl.SSLError, ssl.CertificateError, OSError, TimeoutError,
                asyncio.TimeoutError, ConnectionError) as exc:
            self.close()
            raise SmtpError("tls", f"TLS handshake failed: {exc}", connection_lost=True) from None
        self.tls = True
        self.capabilities = {}
        self.esmtp = False

    @property
    def tls_version(self) -> str:
        obj = self._writer.get_extra_info("ssl_object")
        return obj.version() if obj is not None else ""

    async def authenticate(self, username: str, password: str) -> None:
        """AUTH PLAIN, else AUTH LOGIN (RFC 4954, RFC 4616); ``SmtpError("auth")`` if refused."""
        mechanisms = self.auth_mechanisms
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode("utf-8")).decode()
            reply = await self.command(f"AUTH PLAIN {token}", "auth")
        elif "LOGIN" in mechanisms:
            reply = await self.command("AUTH LOGIN", "auth")
            for secret in (username, password):
                if reply.code != 334:
                    break
                reply = await self.command(base64.b64encode(secret.encode("utf-8")).decode(),
                                           "auth")
        else:
            raise SmtpError("auth", "server offers neither AUTH PLAIN nor AUTH LOGIN")
        if reply.code != 235:
            raise SmtpError("auth", "authentication failed", reply)
        self.authenticated = True

    async def rset(self) -> bool:
        try:
            return (await self.command("RSET", "rset")).code == 250
        except SmtpError:
            return False

    async def transaction(self, mail_from: str, mail_params: list[str],
                          rcpts: list[tuple[str, list[str]]], message: bytes) -> TransactionResult:
        """One mail transaction; see the module docstring for how outcomes are assigned."""
        def line(verb: str, path: str, params: list[str]) -> bytes:
            return (" ".join([f"{verb}:{path}", *params]) + "\r\n").encode("utf-8")

        mail_line = line("MAIL FROM", mail_from, mail_params)
        rcpt_lines = [line("RCPT TO", path, params) for path, params in rcpts]
        replies: list[ServerReply] = []
        if self.supports("PIPELINING"):
            await self._send(mail_line + b"".join(rcpt_lines) + b"DATA\r\n",
                             self.timeouts.command, "mail")
            mail = await self._read(self.timeouts.command, "mail")
            for _ in rcpt_lines:
                replies.append(await self._read(self.timeouts.command, "rcpt"))
            data_reply = await self._read(self.timeouts.data_init, "data")
        else:
            mail = await self.command(mail_line.decode("utf-8").rstrip("\r\n"), "mail")
            if mail.code != 250:
                return TransactionResult(mail, [mail] * len(rcpts))
            for raw in rcpt_lines:
                replies.append(await self.command(raw.decode("utf-8").rstrip("\r\n"), "rcpt"))
            if not any(r.code in (250, 251) for r in replies):
                await self.rset()
                return TransactionResult(mail, replies)
            data_reply = await self.command("DATA", "data", self.timeouts.data_init)
        if mail.code != 250:
            # Pipelined: the RCPTs and DATA were answered in a transaction that never began.
            if data_reply.code == 354:
                await self._send(b".\r\n", self.timeouts.data_block, "data")
                await self._read(self.timeouts.data_end, "data")
            return TransactionResult(mail, [mail] * len(rcpts))
        accepted = [i for i, r in enumerate(replies) if r.code in (250, 251)]
        if data_reply.code != 354:
            outcome = [data_reply if i in accepted else r for i, r in enumerate(replies)]
            return TransactionResult(mail, outcome, data_reply)
        if not accepted:
            await self._send(b".\r\n", self.timeouts.data_block, "data")
            await self._read(self.timeouts.data_end, "data")
            return TransactionResult(mail, replies, data_reply)
        payload = prepare_data(message)
        for start in range(0, len(payload), 1 << 16):
            await self._send(payload[start:start + (1 << 16)], self.timeouts.data_block, "data")
        final = await self._read(self.timeouts.data_end, "data-end")
        self.messages += 1
        outcome = [final if i in accepted else r for i, r in enumerate(replies)]
        return TransactionResult(mail, outcome, final,
                                 accepted if final.code == 250 else [])
