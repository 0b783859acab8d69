"""Ordered key-value views used by the engine (write side) and the reader (read side).

A *reader* is anything with ``get(key) -> bytes | None`` and
``scan(start, end, reverse=False) -> iterator of (key, value)`` over ``start <= key < end``
(``end=None``: no upper bound), in key order. Backends provide one (``MemoryKV``,
``backends.rocksdb.RocksReader``).

``Txn`` is one operation's transaction: it reads through the *pending layers* (the batch
being assembled and the batch being fsynced, newest first) and then the base reader, and
records its own writes. The engine merges a successful Txn's writes into the current batch;
a Txn whose operation raised is simply dropped, so a failed operation changes nothing.
"""

from __future__ import annotations

import bisect
from typing import Iterator, Mapping, Optional

#: A value of None in a layer is a tombstone (the key is deleted in that layer).
Layer = Mapping[bytes, Optional[bytes]]


class MemoryKV:
    """A sorted in-memory KV: the backend of ``Store.memory()`` for unit tests."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self.sequence = 0

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False):
        lo = bisect.bisect_left(self._keys, start)
        hi = len(self._keys) if end is None else bisect.bisect_left(self._keys, end)
        keys = self._keys[lo:hi]
        if reverse:
            keys.reverse()
        data = self._data
        for k in keys:
            v = data.get(k)
            if v is not None:
                yield k, v

    def apply(self, writes: Layer) -> int:
        for key, value in writes.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    i = bisect.bisect_left(self._keys, key)
                    del self._keys[i]
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value
        self.sequence += 1
        return self.sequence


class Txn:
    """One operation's view: own writes, then pending layers (newest first), then base."""

    __slots__ = ("_base", "_layers", "writes")

    def __init__(self, base, layers: tuple[Layer, ...] = ()) -> None:
        self._base = base
        self._layers = layers
        self.writes: dict[bytes, Optional[bytes]] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        for layer in self._layers:
            if key in layer:
                return layer[key]
        return self._base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Merge the base scan with every pending layer; newer layers win, tombstones hide."""
        pending: dict[bytes, Optional[bytes]] = {}
        for layer in (*reversed(self._layers), self.writes):
            for k, v in layer.items():
                if k >= start and (end is None or k < end):
                    pending[k] = v
        if not pending:
            yield from self._base.scan(start, end, reverse)
            return
        over = sorted(pending, reverse=reverse)
        i = 0
        n = len(over)
        for k, v in self._base.scan(start, end, reverse):
            while i < n and (over[i] < k if not reverse else over[i] > k):
                ov = pending[over[i]]
                if ov is not None:
                    yield over[i], ov
                i += 1
            if i < n and over[i] == k:
                ov = pending[k]
                i += 1
                if ov is not None:
                    yield k, ov
                continue
            yield k, v
        while i < n:
            ov = pending[over[i]]
            if ov is not None:
                yield over[i], ov
            i += 1
