"""What the queue needs from the store, and an in-memory implementation of it.

The store (``stalwart.store``) persists queue entries as the plain dicts of
``QueuedMessage.to_record()``; it never interprets them beyond the fields named below.
The operations (to be provided by ``stalwart.store.api.Store``)::

    await store.queue_put(record: dict) -> int
        Durably add an entry; allocates and returns its id (also written into the record
        as "id"). Adds a reference to record["blob"] (BLOB_REF) in the same batch.
    await store.queue_update(id: int, record: dict) -> None
        Replace the entry (same id). StoreError("not_found") if it is gone (cancelled).
    await store.queue_delete(id: int) -> None
        Remove the entry and drop its blob reference. Deleting a missing id is not an error.
    store.queue_get(id: int) -> dict | None
    store.queue_due(now: float, limit: int) -> list[dict]
        Entries with record["due"] <= now, earliest first, at most ``limit``.
    store.queue_next_due() -> float | None
        The smallest record["due"] of all entries (None when the queue is empty).
    store.queue_list(limit: int = 1000, after: int = 0) -> list[dict]
        Entries in id order, ids greater than ``after`` (paging for the CLI and API).

Index: the store keeps ``(due, id)`` so ``queue_due``/``queue_next_due`` are range scans.

Durability contract: a message's blob is written (fsynced) before ``queue_put``;
``queue_put`` returns only once the entry is durable. The queue process is the only writer
of existing entries (the SMTP workers only ``queue_put``), so no compare-and-set is needed.
"""

from __future__ import annotations

import bisect
import copy
from typing import Protocol

from stalwart.store.errors import StoreError

__all__ = ["QueueStore", "MemoryQueueStore"]


class QueueStore(Protocol):
    async def queue_put(self, record: dict) -> int: ...
    async def queue_update(self, id: int, record: dict) -> None: ...
    async def queue_delete(self, id: int) -> None: ...
    def queue_get(self, id: int) -> dict | None: ...
    def queue_due(self, now: float, limit: int) -> list[dict]: ...
    def queue_next_due(self) -> float | None: ...
    def queue_list(self, limit: int = 1000, after: int = 0) -> list[dict]: ...


class MemoryQueueStore:
    """The operations over a dict and a sorted due index; for tests and the memory store.
    Records are copied in and out, as a real store serialises them."""

    def __init__(self) -> None:
        self._records: dict[int, dict] = {}
        self._due: list[tuple[float, int]] = []
        self._next_id = 1
        self.writes = 0

    @staticmethod
    def _copy(record: dict) -> dict:
        return copy.deepcopy(record)

    def _index_remove(self, id: int) -> None:
        old = self._records.get(id)
        if old is not None:
            i = bisect.bisect_left(self._due, (old["due"], id))
            if i < len(self._due) and self._due[i] == (old["due"], id):
                del self._due[i]

    async def queue_put(self, record: dict) -> int:
        id = self._next_id
        self._next_id += 1
        record = self._copy(record)
        record["id"] = id
        self._records[id] = record
        bisect.insort(self._due, (record["due"], id))
        self.writes += 1
        return id

    async def queue_update(self, id: int, record: dict) -> None:
        if id not in self._records:
            raise StoreError("not_found", f"queue entry {id} does not exist")
        self._index_remove(id)
        record = self._copy(record)
        record["id"] = id
        self._records[id] = record
        bisect.insort(self._due, (record["due"], id))
        self.writes += 1

    async def queue_delete(self, id: int) -> None:
        self._index_remove(id)
        self._records.pop(id, None)
        self.writes += 1

    def queue_get(self, id: int) -> dict | None:
        record = self._records.get(id)
        return self._copy(record) if record is not None else None

    def queue_due(self, now: float, limit: int) -> list[dict]:
        end = bisect.bisect_right(self._due, (now, float("inf")))
        return [self._copy(self._records[id]) for _, id in self._due[:min(end, limit)]]

    def queue_next_due(self) -> float | None:
        return self._due[0][0] if self._due else None

    def queue_list(self, limit: int = 1000, after: int = 0) -> list[dict]:
        ids = sorted(i for i in self._records if i > after)[:limit]
        return [self._copy(self._records[i]) for i in ids]
