"""``every(period, fn, stop, first=..., name=...)``: run a coroutine function periodically.

The loop the long-running jobs share (the scheduler's housekeeping, DMARC aggregate
reports, TLS-RPT reports): wait ``first`` seconds, then call ``fn()`` every ``period``
seconds until ``stop`` is set (waking at once when it is). A failure is logged and retried
at the next period: a housekeeping error never ends the process. ``fn`` logs its own
results.

A process that comes and goes (the scheduler started on demand, stalwart.scheduler)
installs a ``Schedule`` (``install(Schedule(path))``): every job then records, in that
JSON file, when it is due next, so a new process continues the rhythm instead of running
each job ``first`` seconds after every start; a job whose time has come while no process
ran starts at once. ``Schedule.next_due()`` is the earliest wall-clock time a job of this
process wants to run (now while one runs), which the scheduler hands to the master when
it leaves. Without a schedule installed, ``every`` behaves as described first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from stalwart.store.errors import StoreError

__all__ = ["every", "Schedule", "install", "current"]

log = logging.getLogger("stalwart.periodic")


class Schedule:
    """When each named job wants to run next (wall clock), kept in a JSON file."""

    def __init__(self, path: str | os.PathLike | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.due: dict[str, float] = {}          # name -> next start (wall clock)
        self.running: set[str] = set()
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text())
                self.due = {str(k): float(v) for k, v in data.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)}
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("schedule %s unreadable, starting afresh: %s", self.path, exc)

    def first_delay(self, name: str, period: float, first: float) -> float:
        """Seconds before ``name``'s first run in this process: what an earlier process
        recorded (at once if that time has passed), else ``first``."""
        due = self.due.get(name)
        delay = first if due is None else max(0.0, min(due - self.clock(), period))
        self.due[name] = self.clock() + delay
        self._save()
        return delay

    def started(self, name: str) -> None:
        self.running.add(name)

    def finished(self, name: str, period: float) -> None:
        self.running.discard(name)
        self.due[name] = self.clock() + period
        self._save()

    def stopped(self, name: str) -> None:
        self.running.discard(name)

    def next_due(self) -> float | None:
        """The earliest time a job wants to start (now while one runs); None: no job."""
        if self.running:
            return self.clock()
        return min(self.due.values()) if self.due else None

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(self.due, f)
            os.replace(tmp, self.path)
        except OSError as exc:                 # the rhythm is lost, the jobs still run
            log.warning("schedule %s not saved: %s", self.path, exc)


_current: Schedule | None = None


def install(schedule: Schedule | None) -> None:
    """Make ``schedule`` the one ``every`` uses in this process (None: none)."""
    global _current
    _current = schedule


def current() -> Schedule | None:
    return _current


async def every(period: float, fn: Callable[[], Awaitable[Any]], stop: asyncio.Event, *,
                first: float | None = None, name: str = "job") -> None:
    schedule = _current
    delay = period if first is None else first
    if schedule is not None:
        delay = schedule.first_delay(name, period, delay)
    try:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return
            except asyncio.TimeoutError:
                pass
            delay = period
            if schedule is not None:
                schedule.started(name)
            try:
                await fn()
            except (StoreError, OSError) as exc:          # the store or the network: expected
                log.warning("%s failed, will retry: %s", name, exc)
            except Exception:                             # a bug: keep the traceback
                log.exception("%s failed, will retry", name)
            finally:
                if schedule is not None:
                    schedule.finished(name, period)
    finally:
        if schedule is not None:
            schedule.stopped(name)
