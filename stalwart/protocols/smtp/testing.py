"""Drive an ``SmtpMachine`` like a transcript, without sockets (STYLE.md habit 10).

    t = Transcript(store=store)                       # StorePolicy over the store
    t.cmd("EHLO client.example", "250")
    t.cmd("RCPT TO:<a@example.com>", "250 2.1.5")
    t.data("Subject: hi\\r\\n\\r\\nbody\\r\\n", "250 2.0.0")

Every request the machine makes is answered the way the asyncio adapter would: policy
verdicts from ``policy``, SASL lookups from ``authenticator``, STARTTLS succeeds at once,
``Deliver`` is recorded in ``delivered`` and answered by ``deliver`` (default: 250 per
recipient). ``split`` chooses how input is cut before feeding: "whole", "lines",
"bytes" or "random" (seeded), so one transcript exercises every way a TCP stream can
arrive (STYLE.md habit 2).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Callable

from stalwart import sasl
from stalwart.protocols.base import NEED_DATA

from . import codes
from .events import (CLOSE, TEMPFAIL, Authenticate, AuthOutcome, CheckRecipient, CheckSender,
                     Deliver, Session, StartTls, Verdict)
from .machine import SmtpConfig, SmtpMachine
from .policy import StoreAuthenticator, StorePolicy


class MemoryAuthenticator:
    """Users with a password (and the SCRAM credentials derived from it)."""

    def __init__(self, users: dict[str, str] | None = None, *, iterations: int = 4096) -> None:
        self.users = {}
        for login, password in (users or {}).items():
            self.add(login, password, iterations=iterations)

    def add(self, login: str, password: str, *, iterations: int = 4096) -> None:
        creds = sasl.ScramCredentials.from_password(password, iterations=iterations)
        self.users[login] = (password, creds, {"id": len(self.users) + 1, "name": login,
                                               "emails": [login] if "@" in login else []})

    async def verify_password(self, authcid: str, password: str, authzid: str = "") -> Any:
        entry = self.users.get(authcid)
        if entry is None or entry[0] != password or authzid not in ("", authcid):
            return None
        return entry[2]

    async def scram_credentials(self, authcid: str, authzid: str = "") -> Any:
        entry = self.users.get(authcid)
        if entry is None or authzid not in ("", authcid):
            return None
        return entry[1], entry[2]


def _split(data: bytes, how: str, rng: random.Random) -> list[bytes]:
    if how == "whole" or not data:
        return [data] if data else []
    if how == "bytes":
        return [data[i:i + 1] for i in range(len(data))]
    if how == "lines":
        return data.splitlines(keepends=True)
    if how == "random":
        out, i = [], 0
        while i < len(data):
            n = rng.randint(1, 7)
            out.append(data[i:i + n])
            i += n
        return out
    raise ValueError(f"unknown split {how!r}")


class Transcript:
    def __init__(self, config: SmtpConfig | None = None, *, store: Any = None,
                 policy: Any = None, authenticator: Any = None, session: Session | None = None,
                 split: str = "whole", seed: int = 0,
                 deliver: Callable[[Deliver], list] | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self._own_loop = loop is None
        self.store = store
        self.policy = policy if policy is not None else (StorePolicy(store) if store else None)
        self.authenticator = authenticator if authenticator is not None else (
            StoreAuthenticator(store) if store else MemoryAuthenticator())
        self.m = SmtpMachine(config or SmtpConfig(hostname="mx.test"), session)
        self.split = split
        self.rng = random.Random(seed)
        self.delivered: list[Deliver] = []
        self.auth_outcomes: list[AuthOutcome] = []
        self.deliver = deliver
        self.closed = False
        self.greeting = self._drain()

    def close(self) -> None:
        if self._own_loop:
            self.loop.close()

    # ------------------------------------------------------------------ driving
    def _run(self, coro) -> Any:
        return self.loop.run_until_complete(coro)

    def _answer(self, event: Any) -> None:
        m = self.m
        if isinstance(event, CheckSender):
            m.answer(self._run(self.policy.check_sender(event.session, event.path, event.params))
                     if self.policy else Verdict(codes.SENDER_OK))
        elif isinstance(event, CheckRecipient):
            m.answer(self._run(self.policy.check_recipient(event.session, event.envelope,
                                                           event.path, event.params))
                     if self.policy else Verdict(codes.RECIPIENT_OK))
        elif isinstance(event, Authenticate):
            req = event.request
            if self.authenticator == "tempfail":
                m.answer(TEMPFAIL)
            elif isinstance(req, sasl.VerifyPassword):
                m.answer(self._run(self.authenticator.verify_password(
                    req.authcid, req.password, req.authzid)))
            else:
                m.answer(self._run(self.authenticator.scram_credentials(req.authcid, req.authzid)))
        elif isinstance(event, StartTls):
            event.session.tls_version = "TLSv1.3"
            m.answer(True)
        elif isinstance(event, Deliver):
            self.delivered.append(event)
            replies = (self.deliver(event) if self.deliver else
                       [codes.MESSAGE_ACCEPTED] * len(event.envelope.recipients))
            m.answer(replies)
        elif isinstance(event, AuthOutcome):
            self.auth_outcomes.append(event)
        else:  # pragma: no cover - a new event type without a test driver
            raise AssertionError(f"unexpected event {event!r}")

    def _drain(self) -> list[str]:
        while True:
            event = self.m.next_event()
            if event is NEED_DATA:
                break
            if event is CLOSE:
                self.closed = True
                break
            self._answer(event)
        return replies_of(self.m.data_to_send())

    def send(self, data: bytes | str) -> list[str]:
        """Feed raw input (cut as ``split`` says); return the replies, one string each
        (multi-line replies joined with newlines)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        replies: list[str] = []
        for piece in _split(data, self.split, self.rng):
            if self.closed:
                break
            self.m.receive_data(piece)
            replies += self._drain()
        return replies

    def eof(self) -> list[str]:
        self.m.receive_data(b"")
        return self._drain()

    def cmd(self, line: str, *expected: str) -> list[str]:
        """Send one command line (CRLF added) and check the replies' prefixes."""
        return self.expect(self.send(line + "\r\n"), expected)

    def data(self, content: str | bytes, *expected: str) -> list[str]:
        """DATA, the content (dot-stuffed here) and the terminator; check replies."""
        self.cmd("DATA", "354")
        if isinstance(content, str):
            content = content.encode("utf-8")
        stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln
                               for ln in content.split(b"\r\n"))
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        return self.expect(self.send(stuffed + b".\r\n"), expected)

    @staticmethod
    def expect(replies: list[str], expected: tuple[str, ...] | list[str]) -> list[str]:
        if len(replies) != len(expected) or not all(
                r.startswith(e) for r, e in zip(replies, expected)):
            raise AssertionError(f"expected replies {list(expected)!r}, got {replies!r}")
        return replies


def replies_of(raw: bytes) -> list[str]:
    """Split server output into replies; a multi-line reply is one string with "\\n"."""
    replies, current = [], []
    for line in raw.decode("utf-8").split("\r\n"):
        if not line:
            continue
        current.append(line)
        if len(line) < 4 or line[3] != "-":
            replies.append("\n".join(current))
            current = []
    if current:
        replies.append("\n".join(current))
    return replies
