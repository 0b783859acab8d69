"""A bounded, TTL-respecting cache of DNS outcomes, positive and negative.

Keys are ``(name, rdtype)``. A positive entry lives for the answer's TTL; a negative one
(``NxDomain``/``NoData``) for the negative TTL the server gave (RFC 2308 5: the SOA's
MINIMUM or its TTL, whichever is smaller), both clamped to ``[min_ttl, max_ttl]`` and
``[min_ttl, max_negative_ttl]``. Temporary failures are never cached: the next caller asks
again. When full, the least recently used entry goes first; expired entries are dropped
when met. The clock is injectable (``time.monotonic`` by default), so tests move time
instead of sleeping.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

from .records import Answer, DnsError

__all__ = ["DnsCache"]

Key = tuple[str, str]


class DnsCache:
    def __init__(self, max_entries: int = 10_000, *, min_ttl: int = 0, max_ttl: int = 86_400,
                 max_negative_ttl: int = 3_600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.clock = clock
        self._entries: OrderedDict[Key, tuple[float, Answer | DnsError]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Answer | DnsError | None:
        """The cached outcome (an ``Answer`` or a permanent ``DnsError``), or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Key, value: Answer | DnsError) -> None:
        if isinstance(value, DnsError):
            if not value.permanent:
                return
            ttl = min(max(value.ttl, self.min_ttl), self.max_negative_ttl)
        else:
            ttl = min(max(value.ttl, self.min_ttl), self.max_ttl)
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (self.clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
