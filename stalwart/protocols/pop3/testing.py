"""Drive a ``Pop3Machine`` like a transcript, without sockets (STYLE.md habit 10).

    t = Transcript(store)                              # StoreServices over the store
    t.cmd("USER alice", "+OK")
    t.cmd("PASS secret", "+OK Maildrop has 2")
    t.cmd("RETR 1", "+OK")                             # t.last holds the whole response

Requests are answered the way the asyncio adapter answers them: by ``StoreServices``
(the same code), STLS succeeds at once (``tls_ok=False`` makes the handshake fail),
``AuthOutcome`` is recorded in ``outcomes``; ``SEND`` is a flush. ``split`` chooses how
input is cut before feeding: "whole", "lines", "bytes" or "random" (seeded), so one
transcript exercises every way a TCP stream can arrive (STYLE.md habit 2).

Responses come back as strings: a single-line reply, or a multi-line one (everything up
to and including its ".") joined with "\\n" and still dot-stuffed.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from stalwart.protocols.base import NEED_DATA

from .events import CLOSE, SEND, AuthOutcome, Session, StartTls
from .machine import Pop3Config, Pop3Machine
from .services import StoreServices

#: Verbs whose +OK starts a multi-line response (with or without arguments, see below).
_MULTI_ALWAYS = {"CAPA", "RETR", "TOP"}
_MULTI_NO_ARG = {"LIST", "UIDL", "AUTH"}


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
            n = rng.randint(1, 9)
            out.append(data[i:i + n])
            i += n
        return out
    raise ValueError(f"unknown split {how!r}")


class Transcript:
    def __init__(self, store: Any = None, config: Pop3Config | None = None, *,
                 services: Any = None, session: Session | None = None,
                 split: str = "whole", seed: int = 0, tls_ok: bool = True,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self._own_loop = loop is None
        self.services = services if services is not None else StoreServices(store)
        self.m = Pop3Machine(config or Pop3Config(hostname="pop.test"),
                             session or Session(remote_ip="192.0.2.1"))
        self.split = split
        self.rng = random.Random(seed)
        self.tls_ok = tls_ok
        self.outcomes: list[AuthOutcome] = []
        self.closed = False
        self.raw = bytearray()               # everything the server sent
        self.requests: list[Any] = []        # every request the machine made
        self.sends = 0                       # SEND flushes seen (streaming, backpressure)
        self._pending: list[str] = []        # commands whose responses are not parsed yet
        self._buffer = b""
        self.last = ""
        self.greeting = self._responses()[0] if self._responses_ready() else ""

    def close(self) -> None:
        if self._own_loop:
            self.loop.close()

    # ------------------------------------------------------------------ driving
    def _drain(self) -> None:
        m = self.m
        while True:
            event = m.next_event()
            if event is NEED_DATA:
                break
            if event is CLOSE:
                self.closed = True
                break
            if event is SEND:
                self.sends += 1
                self.raw += m.data_to_send()
                continue
            self.requests.append(event)
            if isinstance(event, AuthOutcome):
                self.outcomes.append(event)
            elif isinstance(event, StartTls):
                self.raw += m.data_to_send()
                m.answer(self.tls_ok)
            else:
                m.answer(self.loop.run_until_complete(self.services.answer(event)))
        self.raw += m.data_to_send()

    def _responses_ready(self) -> bool:
        self._drain()
        return bool(self.raw)

    def _responses(self) -> list[str]:
        """Parse the output received so far into responses, in command order."""
        data = self._buffer + bytes(self.raw)
        self.raw.clear()
        out: list[str] = []
        while data:
            end = data.find(b"\r\n")
            if end < 0:
                break
            first = data[:end].decode("utf-8", "replace")
            verb = self._pending[0] if self._pending else ""
            multi = first.startswith("+OK") and self._is_multi(verb)
            if not multi:
                out.append(first)
                data = data[end + 2:]
            else:
                stop = data.find(b"\r\n.\r\n", end)
                if stop < 0:
                    break
                out.append(data[:stop + 3].decode("utf-8", "replace").replace("\r\n", "\n"))
                data = data[stop + 5:]
            if self._pending:
                self._pending.pop(0)
        self._buffer = data
        return out

    @staticmethod
    def _is_multi(command: str) -> bool:
        verb, _, arg = command.partition(" ")
        verb = verb.upper()
        return verb in _MULTI_ALWAYS or (verb in _MULTI_NO_ARG and not arg.strip())

    def send(self, data: bytes | str, commands: list[str] | None = None) -> list[str]:
        """Feed raw input (cut as ``split`` says); return the complete responses.
        ``commands``: the command lines in ``data``, to know which answers are
        multi-line (default: the lines of ``data`` itself)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if commands is None:
            commands = [ln.decode("utf-8", "replace").rstrip("\r\n")
                        for ln in data.splitlines(keepends=True) if ln.endswith(b"\n")]
        self._pending += commands
        for piece in _split(data, self.split, self.rng):
            if self.closed:
                break
            self.m.receive_data(piece)
            self._drain()
        return self._responses()

    def eof(self) -> list[str]:
        self.m.receive_data(b"")
        self._drain()
        return self._responses()

    def cmd(self, line: str, *expected: str) -> list[str]:
        """Send one command line (CRLF added) and check the responses' prefixes."""
        responses = self.expect(self.send(line + "\r\n"), expected)
        self.last = responses[-1] if responses else ""
        return responses

    def sasl(self, line: str, *expected: str) -> list[str]:
        """A SASL response line (never multi-line on our side)."""
        responses = self.expect(self.send(line + "\r\n", commands=[""]), expected)
        self.last = responses[-1] if responses else ""
        return responses

    @staticmethod
    def expect(responses: list[str], expected: tuple[str, ...] | list[str]) -> list[str]:
        if len(responses) != len(expected) or not all(
                r.startswith(e) for r, e in zip(responses, expected)):
            raise AssertionError(f"expected {list(expected)!r}, got {responses!r}")
        return responses
