"""Operations on DMARC aggregate rows and received reports (``stalwart.mailauth.reports``).

``DMARC_ROW(id)`` holds one checked message's DMARC facts (``InboundVerdict.aggregate``),
appended by SMTP workers (``dmarc_record``) and taken by the scheduler's daily job:
``dmarc_pending(until, limit)`` lists the rows older than ``until`` in id order (a read
through the writer, so the scheduler needs no reader of its own), ``dmarc_delete(ids)``
removes them once their report is queued. ``REPORT_IN(id)`` holds a report someone sent
us, parsed (``report_store``); ``report_delete`` removes one.

Bounds: a row or report over ``MAX_RECORD`` bytes once packed is refused (``invalid``),
and at most ``MAX_ROWS`` rows are kept: past that the oldest are dropped as new ones
arrive, so a flood of forged mail cannot fill the disk with report rows.
"""

from __future__ import annotations

import struct
from typing import Any

from .. import keys
from ..engine import OpCtx, _int, _require, operation, pack

_U64 = struct.Struct(">Q")
MAX_RECORD = 64 * 1024
MAX_ROWS = 1_000_000
MAX_REPORTS = 100_000


def row_key(ident: int) -> bytes:
    return keys.DMARC_ROW + _U64.pack(ident)


def report_key(ident: int) -> bytes:
    return keys.REPORT_IN + _U64.pack(ident)


def _check(value: Any, what: str) -> dict:
    _require(isinstance(value, dict), f"{what} must be a map")
    _require(len(pack(value)) <= MAX_RECORD, f"{what} is larger than {MAX_RECORD} bytes")
    return value


def _append(c: OpCtx, counter: str, first_counter: str, key_of, value: dict,
            maximum: int) -> int:
    ident = c.meta_counter(counter, 1)
    c.store(key_of(ident), value)
    # Keep at most ``maximum``: drop the oldest (ids are dense from ``first``).
    first = c.load(keys.meta(first_counter)) or 1
    if ident - first + 1 > maximum:
        c.txn.delete(key_of(first))
        c.store(keys.meta(first_counter), first + 1)
    return ident


@operation
def dmarc_record(c: OpCtx, row: Any) -> int:
    row = _check(row, "DMARC row")
    _require(isinstance(row.get("domain"), str) and row["domain"], "row needs a domain")
    _require(isinstance(row.get("time"), int), "row needs a time")
    return _append(c, "next_dmarc_row", "first_dmarc_row", row_key, row, MAX_ROWS)


@operation
def dmarc_pending(c: OpCtx, until: Any, limit: Any = 100_000) -> list:
    """[[id, row], ...] of the rows with ``time < until``, oldest first."""
    until = _int(until, "until")
    limit = _int(limit, "limit", minimum=1, maximum=1_000_000)
    out = []
    for k, v in c.txn.scan(keys.DMARC_ROW, keys.prefix_end(keys.DMARC_ROW)):
        ident = _U64.unpack_from(k, 1)[0]
        row = c.load(k)
        if isinstance(row, dict) and row.get("time", 0) < until:
            out.append([ident, row])
            if len(out) >= limit:
                break
    return out


@operation
def dmarc_delete(c: OpCtx, ids: Any) -> int:
    _require(isinstance(ids, (list, tuple)) and len(ids) <= 1_000_000, "ids must be a list")
    removed = 0
    for ident in ids:
        key = row_key(_int(ident, "row id", minimum=1))
        if c.txn.get(key) is not None:
            c.txn.delete(key)
            removed += 1
    return removed


@operation
def report_store(c: OpCtx, report: Any) -> int:
    report = _check(report, "report")
    _require(report.get("kind") in ("dmarc", "tlsrpt"), "report kind must be dmarc or tlsrpt")
    report = dict(report, received=c.now)
    return _append(c, "next_report_in", "first_report_in", report_key, report, MAX_REPORTS)


@operation
def report_delete(c: OpCtx, id: Any) -> bool:
    key = report_key(_int(id, "report id", minimum=1))
    if c.txn.get(key) is None:
        return False
    c.txn.delete(key)
    return True


def list_reports(kv: Any, kind: str | None = None, limit: int = 1000) -> list[dict]:
    """Read side (``Store.list_reports``): received reports with their ``id``."""
    from ..engine import unpack

    out = []
    for k, v in kv.scan(keys.REPORT_IN, keys.prefix_end(keys.REPORT_IN)):
        report = unpack(v)
        if isinstance(report, dict) and (kind is None or report.get("kind") == kind):
            out.append(dict(report, id=_U64.unpack_from(k, 1)[0]))
    return out[-limit:] if limit else out
