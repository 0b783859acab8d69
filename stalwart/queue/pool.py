"""Connection reuse: idle SMTP sessions kept per destination for the next message.

Delivering many messages to one host over one session saves the TCP and TLS handshakes
and the EHLO round trips (Postfix's ``scache``, mox's per-host connection reuse). A session
is returned after a completed transaction and taken again for the next message to the same
key, where the key names everything the session's state depends on: the address and port,
the host name it was opened for (TLS server name), the route (smarthost credentials) and
whether it runs TLS.

Invariants
- A session is handed out to one delivery at a time; the pool holds only idle ones.
- A taken session is checked with RSET first (the server may have timed it out); a failed
  check closes it and the caller connects afresh.
- Sessions idle longer than ``idle`` seconds, or that carried ``max_messages`` messages,
  are closed (QUIT) instead of kept.
- ``limit(key)`` bounds concurrent sessions per destination address
  (``max_connections_per_host``), idle or busy.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Callable, Hashable

from .client import SmtpClient

__all__ = ["ConnectionPool"]


class ConnectionPool:
    def __init__(self, *, idle: float = 10.0, max_messages: int = 100, per_host: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.max_messages = max_messages
        self.per_host = per_host
        self.clock = clock
        self._idle: dict[Hashable, list[tuple[float, SmtpClient]]] = defaultdict(list)
        self._limits: dict[str, asyncio.Semaphore] = {}
        self.reused = 0
        self.opened = 0

    def limit(self, ip: str) -> asyncio.Semaphore:
        sem = self._limits.get(ip)
        if sem is None:
            sem = self._limits[ip] = asyncio.Semaphore(self.per_host)
        return sem

    async def take(self, key: Hashable) -> SmtpClient | None:
        """An idle session for ``key`` that answered RSET, or None."""
        entries = self._idle.get(key)
        while entries:
            since, client = entries.pop()
            if self.clock() - since > self.idle or not client.usable:
                await client.quit()
                continue
            if await client.rset():
                self.reused += 1
                return client
            client.close()
        return None

    async def give(self, key: Hashable, client: SmtpClient) -> None:
        """Keep ``client`` for reuse, or close it when it is spent."""
        if not client.usable or client.messages >= self.max_messages or self.idle <= 0:
            await client.quit()
            return
        self._idle[key].append((self.clock(), client))

    async def expire(self) -> None:
        """Close sessions idle for too long (called from the queue loop)."""
        now = self.clock()
        for key in list(self._idle):
            keep = []
            for since, client in self._idle[key]:
                if now - since > self.idle or not client.usable:
                    await client.quit()
                else:
                    keep.append((since, client))
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    async def close(self) -> None:
        entries = [c for lst in self._idle.values() for _, c in lst]
        self._idle.clear()
        await asyncio.gather(*(c.quit() for c in entries), return_exceptions=True)

    def __len__(self) -> int:
        return sum(len(v) for v in self._idle.values())
