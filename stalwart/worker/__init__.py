"""What every process forked by the master runs: the context, the kinds, the process loop.

- ``WorkerContext`` (context.py): what ``serve(ctx)`` of a kind receives.
- ``registry``: ``kind -> "module:function"``; pools and singletons; preloading.
- ``process.run``: the child's life after ``fork`` (signals, privileges, uvloop,
  heartbeats, exit status).
- ``Heartbeat`` (heartbeat.py): the shared-memory record the master watches.

See docs/architecture.md, "Process kinds and the worker contract".
"""

from __future__ import annotations

from .context import WorkerContext
from .heartbeat import Heartbeat
from .registry import KINDS, POOLS, SINGLETONS, RegistryError, preload, resolve

__all__ = ["WorkerContext", "Heartbeat", "KINDS", "POOLS", "SINGLETONS", "RegistryError",
           "preload", "resolve"]
