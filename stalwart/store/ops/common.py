"""Helpers shared by the operation modules."""

from __future__ import annotations

from typing import Any

from .. import keys
from ..errors import StoreError
from ..engine import OpCtx, _int, unpack


def _load_mailbox(c: OpCtx, acc: int, mbox: Any) -> dict:
    _int(mbox, "mailbox id", maximum=2**32 - 1)
    record = c.load(keys.mailbox(acc, mbox))
    if record is None:
        raise StoreError("not_found", f"mailbox {mbox} does not exist")
    return record


def _mailboxes(c: OpCtx, acc: int):
    prefix = keys.account_prefix(keys.MAILBOX, acc)
    for k, raw in c.txn.scan(prefix, keys.prefix_end(prefix)):
        yield keys.mailbox_id_from_key(k), unpack(raw)


def _ref_blob(c: OpCtx, blob: bytes) -> None:
    raw = c.txn.get(keys.blob_ref(blob))
    c.txn.put(keys.blob_ref(blob), keys.u32((keys.read_u32(raw) if raw else 0) + 1))


def _unref_blob(c: OpCtx, blob: bytes) -> None:
    raw = c.txn.get(keys.blob_ref(blob))
    count = keys.read_u32(raw) - 1 if raw else 0
    if count > 0:
        c.txn.put(keys.blob_ref(blob), keys.u32(count))
    else:
        c.txn.delete(keys.blob_ref(blob))
