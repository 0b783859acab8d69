"""``WorkerContext``: everything a process kind's ``serve(ctx)`` receives from the master.

The contract (docs/architecture.md, "Process kinds and the worker contract")::

    async def serve(ctx: WorkerContext) -> None

``serve`` starts serving ``ctx.sockets`` (already bound and listening, owned by this slot;
the master keeps its own copy so that queued connections survive this process), waits for
``ctx.shutdown``, then stops accepting, lets open connections finish for up to
``server.shutdown-timeout`` seconds, and returns. Protocol servers report their open
connections with ``connection_opened()`` / ``connection_closed()``: the count goes into the
process title (``stalwart: imap worker 2 [34 conns]``) and to the master with the heartbeat.

A worker of an on-demand slot (``idle_exit`` set, ``server.on-demand``) is stopped by the
worker loop once ``idle_for()`` reaches ``idle_exit``: like a drain, with
``idle_exited`` set so the process exits with ``EXIT_IDLE`` instead of ``EXIT_OK``. The
connection counts are what tell it apart from a busy worker, so every protocol server
must report them.

An on-demand singleton (the queue, the scheduler: ``idle_exit`` set too) serves the
Unix socket the master owns for it (``control_socket``: ``run/queue.sock``,
``run/scheduler.sock``; the master polls it while the singleton is dormant). Its serve()
says when it is busy: ``touch()`` on each piece of work, and ``may_leave`` (a callable
returning whether nothing is due soon); before it returns after an idle exit it records
with ``set_wake_at(t)`` when the master must start it again.

``heartbeat()`` is called by the worker loop (stalwart.worker.process), never by ``serve``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .heartbeat import DRAINING, SERVING, Heartbeat

if TYPE_CHECKING:
    from stalwart.config import Config, Listener

__all__ = ["WorkerContext"]


@dataclass(eq=False)
class WorkerContext:
    kind: str                                          # "imap", "store", ...
    slot: int                                          # stable index within the pool
    generation: int                                    # bumped by each config reload
    config: "Config"
    sockets: list[tuple["Listener", socket.socket]] = field(default_factory=list)
    admin_socket: socket.socket | None = None          # run/admin.sock, http workers only
    control_socket: socket.socket | None = None        # on-demand singleton's wake socket
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0                               # open client connections
    idle_exit: float | None = None                     # on-demand slot: leave when idle
    last_activity: float = field(default_factory=time.monotonic)
    idle_exited: bool = False                          # it left because it was idle
    retiring: bool = False                             # replaced: no new connections
    may_leave: Callable[[], bool] | None = None        # singleton: nothing due soon
    _retire_hooks: list = field(default_factory=list, repr=False)
    _heartbeat: Heartbeat | None = field(default=None, repr=False)

    @property
    def singleton(self) -> bool:
        from .registry import SINGLETONS
        return self.kind in SINGLETONS

    @property
    def title(self) -> str:
        """The process title: ``stalwart: imap worker 2 [34 conns]`` or ``stalwart: store``."""
        if self.singleton:
            text = f"stalwart: {self.kind}"
        else:
            text = f"stalwart: {self.kind} worker {self.slot} [{self.connections} conns]"
        if self.shutdown.is_set():
            text += " (draining)"
        elif self.retiring:
            text += " (retiring)"
        return text

    @property
    def label(self) -> str:
        """The name of this process in log lines: ``imap.2``, ``store``."""
        return self.kind if self.singleton else f"{self.kind}.{self.slot}"

    def connection_opened(self) -> None:
        self.connections += 1
        self.last_activity = time.monotonic()

    def connection_closed(self) -> None:
        if self.connections > 0:
            self.connections -= 1
        self.last_activity = time.monotonic()

    def touch(self) -> None:
        """Work was done now (a singleton's idle time starts again)."""
        self.last_activity = time.monotonic()

    def set_wake_at(self, when: float | None) -> None:
        """After an idle exit: start this process again at wall-clock ``when`` (None:
        only when someone connects to its control socket)."""
        if self._heartbeat is not None:
            self._heartbeat.set_wake_at(when)

    def on_retire(self, hook) -> None:
        """``hook()`` stops accepting new connections (a reload replaced this worker);
        a serve() that registers one keeps its open connections through a reload."""
        self._retire_hooks.append(hook)

    def retire(self) -> None:
        """Stop accepting and leave once the open connections have ended (SIGUSR2). A
        serve() without retire hooks cannot do that: it drains at once instead."""
        if self.retiring or self.shutdown.is_set():
            return
        if not self._retire_hooks:
            self.shutdown.set()
            return
        self.retiring = True
        for hook in self._retire_hooks:
            hook()

    def idle_for(self, now: float) -> float:
        """Seconds without any open connection (0 while one is open)."""
        return 0.0 if self.connections else max(now - self.last_activity, 0.0)

    def heartbeat(self) -> None:
        """Tell the master this process is alive (called by the worker loop)."""
        if self._heartbeat is not None:
            self._heartbeat.beat(DRAINING if self.shutdown.is_set() else SERVING,
                                 self.connections)
