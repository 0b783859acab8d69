"""The queue's persistence contract (stalwart/queue/store.py), checked against both the
in-memory reference and the real store engine."""

from __future__ import annotations

import asyncio

import pytest

from stalwart.queue.store import MemoryQueueStore
from stalwart.store import Store, StoreError
from stalwart.store.blobs import blob_hash


def _record(blob: bytes, due: float, **extra) -> dict:
    return {"blob": blob, "size": 10, "due": due, "created": 1.0, "expires": 1e12,
            "return_path": "a@b.example", "recipients": [{"address": "x@y.example"}], **extra}


def _stores():
    def memory_ref():
        return MemoryQueueStore(), b"\x01" * 32

    def engine():
        s = Store.memory()
        return s, s.blobs.put(b"message bytes")
    return [memory_ref, engine]


@pytest.mark.parametrize("make", _stores(), ids=["reference", "store"])
def test_queue_contract(make):
    async def t():
        store, blob = make()
        a = await store.queue_put(_record(blob, 50.0))
        b = await store.queue_put(_record(blob, 10.0))
        c = await store.queue_put(_record(blob, 30.0, note="x"))
        assert (a, b, c) == (1, 2, 3)
        assert [r["id"] for r in store.queue_due(30.0, 10)] == [b, c]
        assert [r["id"] for r in store.queue_due(30.0, 1)] == [b]
        assert store.queue_next_due() == 10.0
        rec = store.queue_get(c)
        assert rec["note"] == "x" and rec["id"] == c
        rec["due"] = 5.0
        await store.queue_update(c, rec)
        assert [r["id"] for r in store.queue_due(5.0, 10)] == [c]
        assert store.queue_next_due() == 5.0
        await store.queue_delete(c)
        await store.queue_delete(c)  # missing id: not an error
        with pytest.raises(StoreError) as e:
            await store.queue_update(c, rec)
        assert e.value.code == "not_found"
        assert [r["id"] for r in store.queue_list()] == [a, b]
        assert [r["id"] for r in store.queue_list(limit=1, after=a)] == [b]
        await store.queue_delete(a)
        await store.queue_delete(b)
        assert store.queue_next_due() is None and store.queue_list() == []
    asyncio.run(t())


def test_queue_entries_hold_their_blob_reference():
    from stalwart.store import reader

    async def t():
        s = Store.memory()
        blob = s.blobs.put(b"queued")
        qid = await s.queue_put(_record(blob, 1.0))
        assert reader.blob_refcount(s.kv, blob) == 1
        await s.queue_delete(qid)
        assert reader.blob_refcount(s.kv, blob) == 0
        with pytest.raises(StoreError) as e:
            await s.queue_put(_record(blob_hash(b"never stored"), 1.0))
        assert e.value.code == "not_found"
        for bad in ({"blob": b"x", "due": 1.0}, {"blob": blob}, {"blob": blob, "due": -1},
                    {"blob": blob, "due": "soon"}, "not a map"):
            with pytest.raises(StoreError) as e:
                await s.queue_put(bad)
            assert e.value.code == "invalid"
        assert s.queue_list() == []
    asyncio.run(t())
