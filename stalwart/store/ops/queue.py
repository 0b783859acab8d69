"""Operations on the outbound queue's entries (the queue process is their only updater).

Records are the plain maps of ``stalwart.queue.model.QueuedMessage.to_record()``; the store
reads only ``blob`` (a reference is held while the entry exists) and ``due`` (epoch seconds,
indexed in ``QUEUE_DUE`` so the queue finds due mail with one range scan). The contract is
written out in ``stalwart/queue/store.py``.
"""

from __future__ import annotations

from typing import Any

from .. import keys
from ..engine import OpCtx, _int, _require, operation
from ..errors import StoreError
from .common import _ref_blob, _unref_blob

MAX_DUE = 2**63 // 1000


def _due_ms(record: dict) -> int:
    due = record.get("due")
    _require(isinstance(due, (int, float)) and not isinstance(due, bool) and 0 <= due < MAX_DUE,
             "queue record needs a due time in epoch seconds")
    return int(due * 1000)


def _check(record: Any) -> dict:
    _require(isinstance(record, dict), "queue record must be a map")
    blob = record.get("blob")
    _require(isinstance(blob, bytes) and len(blob) == 32, "queue record needs a 32-byte blob")
    _due_ms(record)
    return record


@operation
def queue_put(c: OpCtx, record: Any) -> int:
    record = dict(_check(record))
    if not c.engine.blob_exists(record["blob"]):
        raise StoreError("not_found", f"blob {record['blob'].hex()} has not been stored")
    qid = c.meta_counter("next_queue_id", 1)
    record["id"] = qid
    c.store(keys.queue(qid), record)
    c.txn.put(keys.queue_due(_due_ms(record), qid), b"")
    _ref_blob(c, record["blob"])
    return qid


@operation
def queue_update(c: OpCtx, id: Any, record: Any) -> None:
    qid = _int(id, "queue id", minimum=1)
    record = dict(_check(record))
    old = c.load(keys.queue(qid))
    if old is None:
        raise StoreError("not_found", f"queue entry {qid} does not exist")
    _require(old["blob"] == record["blob"], "a queue entry keeps its message blob")
    record["id"] = qid
    c.txn.delete(keys.queue_due(_due_ms(old), qid))
    c.txn.put(keys.queue_due(_due_ms(record), qid), b"")
    c.store(keys.queue(qid), record)


@operation
def queue_delete(c: OpCtx, id: Any) -> None:
    qid = _int(id, "queue id", minimum=1)
    old = c.load(keys.queue(qid))
    if old is None:
        return
    c.txn.delete(keys.queue_due(_due_ms(old), qid))
    c.txn.delete(keys.queue(qid))
    _unref_blob(c, old["blob"])
