"""Local delivery with duplicate suppression: ``deliver_once``.

A client that resends a message (after a 451 that followed a committed delivery, after a
connection lost before our 250 reached it) must not make a second copy. ``deliver_once``
is ``deliver`` plus, in the same transaction, one record per account that received the
message: ``DEDUP(account, key) -> expiry``. An account holding a live record for the key
is skipped (its result says ``{"duplicate": True}``, a success: the copy is there). Because
the records commit with the delivery, "delivered" and "recorded" cannot diverge: a crash
loses both or neither, so suppression never drops a message that was not delivered.

The key (16 bytes) is chosen by the caller; SMTP uses the Message-ID together with a hash
of the content (``stalwart.protocols.smtp.session.dedup_key``), so only a byte-identical
resend is suppressed. Records expire after ``window`` seconds; each call purges a bounded
number of expired ones through the ``DEDUP_EXP`` index, so the purge keeps pace with the
deliveries that create them without a background job.
"""

from __future__ import annotations

import struct
from typing import Any

from .. import keys
from ..engine import OPERATIONS, OpCtx, _int, _require, operation

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
#: Expired records purged per call at least (plus two per recipient).
PURGE_BATCH = 16
MAX_WINDOW = 366 * 86400


def _dedup_key(acc: int, key: bytes) -> bytes:
    return keys.DEDUP + _U32.pack(acc) + key


def _exp_key(expiry: int, acc: int, key: bytes) -> bytes:
    return keys.DEDUP_EXP + _U64.pack(expiry) + _U32.pack(acc) + key


def _purge(c: OpCtx, limit: int) -> int:
    """Delete up to ``limit`` records expired by now."""
    end = keys.DEDUP_EXP + _U64.pack(c.now + 1)
    doomed = []
    for k, _ in c.txn.scan(keys.DEDUP_EXP, end):
        doomed.append(k)
        if len(doomed) >= limit:
            break
    for k in doomed:
        expiry = _U64.unpack_from(k, 1)[0]
        acc = _U32.unpack_from(k, 9)[0]
        record = _dedup_key(acc, k[13:])
        raw = c.txn.get(record)
        # The record may have been renewed with a later expiry: leave that one alone.
        if raw is not None and _U64.unpack(raw)[0] == expiry:
            c.txn.delete(record)
        c.txn.delete(k)
    return len(doomed)


@operation
def deliver_once(c: OpCtx, recipients: Any, blob: Any, size: Any, dedup: Any, window: Any,
                 received: Any = None, thread_keys: Any = None, meta: Any = None) -> list:
    """``deliver`` skipping the accounts that got message ``dedup`` within ``window``
    seconds (see the module docstring). Results in recipient order: the new email,
    ``{"duplicate": True, "account": id}``, or ``{"error": code, "message": ...}``."""
    _require(isinstance(dedup, bytes) and 8 <= len(dedup) <= 32,
             "dedup must be a key of 8 to 32 bytes")
    window = _int(window, "window", minimum=1, maximum=MAX_WINDOW)
    _require(isinstance(recipients, (list, tuple)) and recipients, "recipients must be a list")
    results: list[Any] = [None] * len(recipients)
    fresh: list[int] = []
    seen: dict[int, int] = {}
    for i, rcpt in enumerate(recipients):
        acc = rcpt.get("account") if isinstance(rcpt, dict) else None
        if isinstance(acc, int) and not isinstance(acc, bool) and 0 <= acc < 2**32:
            raw = c.txn.get(_dedup_key(acc, dedup))
            if raw is not None and _U64.unpack(raw)[0] > c.now:
                results[i] = {"duplicate": True, "account": acc}
                continue
            if acc in seen and not rcpt.get("mailbox"):
                # The same account twice in one call: one copy.
                results[i] = {"duplicate": True, "account": acc}
                continue
            seen[acc] = i
        fresh.append(i)
    if fresh:
        # Through the registry, so a wrapper another module put around ``deliver`` runs.
        delivered = OPERATIONS["deliver"](c, recipients=[recipients[i] for i in fresh], blob=blob,
                                     size=size, received=received, thread_keys=thread_keys,
                                     meta=meta)
        expiry = c.now + window
        for i, result in zip(fresh, delivered):
            results[i] = result
            if isinstance(result, dict) and "error" not in result:
                acc = recipients[i]["account"]
                old = c.txn.get(_dedup_key(acc, dedup))
                if old is not None:
                    c.txn.delete(_exp_key(_U64.unpack(old)[0], acc, dedup))
                c.txn.put(_dedup_key(acc, dedup), _U64.pack(expiry))
                c.txn.put(_exp_key(expiry, acc, dedup), b"")
    _purge(c, PURGE_BATCH + 2 * len(recipients))
    return results
