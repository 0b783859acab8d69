"""The heartbeat record a worker shares with the master: one page of anonymous shared memory.

The master creates a ``Heartbeat`` just before it forks a process; both sides keep the
mapping (``MAP_SHARED | MAP_ANONYMOUS`` survives ``fork``). The worker writes, from its
event loop, the time of its last beat (``CLOCK_MONOTONIC``, the same clock in every
process), its state and its number of open connections; the master reads it once per loop
turn. Beating costs no system call, and because the beat comes from the worker's event
loop, a loop blocked by a runaway handler stops beating exactly like a stopped process:
both are "hung" to the master (gunicorn's WorkerTmp and Dovecot's status pipe serve the
same purpose with a file's ctime and a pipe).

Only the worker writes and only the master reads. A read racing a write could see a mix
of two records, so the reader takes two copies and retries until they agree.

A singleton started on demand (the queue, the scheduler) that leaves when idle also writes
``wake_at`` there before it exits: the wall-clock time at which it wants to run again (the
next queue entry due, the next periodic job), read by the master when it reaps it.
"""

from __future__ import annotations

import mmap
import struct
import time
from typing import NamedTuple

__all__ = ["Heartbeat", "Beat", "BOOTING", "SERVING", "DRAINING", "STATE_NAMES"]

#: Worker states, as written in the record.
BOOTING, SERVING, DRAINING = 0, 1, 2
STATE_NAMES = {BOOTING: "booting", SERVING: "serving", DRAINING: "draining"}

_RECORD = struct.Struct("=dII")        # last beat (monotonic s), state, connections
_WAKE = struct.Struct("=d")            # wake_at (wall clock s; 0.0: nothing to wake for)
_WAKE_OFFSET = 64


class Beat(NamedTuple):
    at: float            # monotonic time of the last beat; 0.0 before the first one
    state: int
    connections: int


class Heartbeat:
    """One process's status record in a shared page."""

    __slots__ = ("_map",)

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)

    def beat(self, state: int = SERVING, connections: int = 0) -> None:
        """Worker side: record that the loop is alive now."""
        _RECORD.pack_into(self._map, 0, time.monotonic(), state, connections)

    def read(self) -> Beat:
        """Master side: the last record (a consistent copy)."""
        first = _RECORD.unpack_from(self._map, 0)
        for _ in range(8):
            second = _RECORD.unpack_from(self._map, 0)
            if second == first:
                break
            first = second
        return Beat(*first)

    def set_wake_at(self, when: float | None) -> None:
        """Worker side: the wall-clock time at which the master should start this process
        again after an idle exit (None: only when a client asks)."""
        _WAKE.pack_into(self._map, _WAKE_OFFSET, float(when or 0.0))

    def wake_at(self) -> float | None:
        """Master side: what ``set_wake_at`` recorded (None when nothing)."""
        (when,) = _WAKE.unpack_from(self._map, _WAKE_OFFSET)
        return when if when > 0.0 else None

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()

    @property
    def closed(self) -> bool:
        return self._map.closed
