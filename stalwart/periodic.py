"""``every(period, fn, stop, first=..., name=...)``: run a coroutine function periodically.

The loop the long-running jobs share (the scheduler's housekeeping, DMARC aggregate
reports, TLS-RPT reports): wait ``first`` seconds, then call ``fn()`` every ``period``
seconds until ``stop`` is set (waking at once when it is). A failure is logged and retried
at the next period: a housekeeping error never ends the process. ``fn`` logs its own
results.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from stalwart.store.errors import StoreError

__all__ = ["every"]

log = logging.getLogger("stalwart.periodic")


async def every(period: float, fn: Callable[[], Awaitable[Any]], stop: asyncio.Event, *,
                first: float | None = None, name: str = "job") -> None:
    delay = period if first is None else first
    while True:
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return
        except asyncio.TimeoutError:
            pass
        delay = period
        try:
            await fn()
        except (StoreError, OSError) as exc:          # the store or the network: expected
            log.warning("%s failed, will retry: %s", name, exc)
        except Exception:                             # a bug: keep the traceback
            log.exception("%s failed, will retry", name)
