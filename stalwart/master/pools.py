"""What the master supervises: services (a pool or a singleton), their slots, their workers.

A *service* is one process kind with a fixed number of *slots*: a pool has
``server.workers.<protocol>`` slots, a singleton one. A slot keeps what outlives the
process in it: its index (stable: a replacement takes the same one), its listening sockets,
and its respawn throttle. A *worker* is one forked process in a slot.

``plan(config, kinds, table)`` derives the services of a config: the singletons first
(store, then queue and scheduler, which need the store process), then one pool per
protocol that has listeners, each slot with one socket per bound address of each of the
pool's listeners (taken from the ``SocketTable``, so an address kept across a reload keeps
its sockets).

With ``server.on-demand`` a pool's slots start empty (*dormant*): the arbiter polls a
dormant slot's sockets and forks its worker when a connection waits; a worker that stayed
``server.idle-exit`` without a connection exits with ``EXIT_IDLE`` and the slot is dormant
again. The queue and the scheduler (``ON_DEMAND_SINGLETONS``) are on demand too: they
start at boot, leave when idle with nothing due soon, and are started again by the master
when someone connects to their control socket (owned by the master, like a listener) or
at the wall-clock time they recorded when they left (``Slot.wake_at``). The store always
runs.

The respawn throttle (``Slot.crashed``): the first crash of a slot waits
``server.respawn-throttle``; each further crash of a worker that ran less than
``STABLE_AFTER`` seconds doubles the delay, up to ``server.respawn-throttle-max``; a
worker that ran longer resets it.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from stalwart.config import Config, Listener
from stalwart.worker.heartbeat import Heartbeat
from stalwart.worker.registry import POOLS, SINGLETONS

from .sockets import SocketTable

__all__ = ["Worker", "Slot", "Service", "plan", "STABLE_AFTER", "ON_DEMAND_SINGLETONS"]

log = logging.getLogger("stalwart.master")

#: A worker that ran this long before exiting was not crash-looping.
STABLE_AFTER = 60.0
#: Singletons that ``server.on-demand`` also starts on demand (the store always runs).
ON_DEMAND_SINGLETONS = ("queue", "scheduler")


@dataclass(eq=False)
class Worker:
    pid: int
    kind: str
    slot: int
    generation: int
    heartbeat: Heartbeat
    started: float                      # monotonic
    ready: bool = False                 # its loop runs serve() and beats
    retiring: bool = False              # told to drain (SIGTERM)
    superseded_at: float | None = None  # a reload replaced it; retires once its successor is up
    kill_at: float | None = None        # SIGKILL deadline while retiring
    term_at: float | None = None        # retiring gently (SIGUSR2): SIGTERM deadline
    killed: bool = False                # SIGKILL sent

    @property
    def name(self) -> str:
        return f"{self.kind} {self.slot} (pid {self.pid}, generation {self.generation})"


@dataclass(eq=False)
class Slot:
    index: int
    sockets: list[tuple[Listener, socket.socket]] = field(default_factory=list)
    worker: Worker | None = None
    delay: float | None = None          # respawn delay after the last crash
    crashes: int = 0                    # crashes in a row, each within STABLE_AFTER of start
    not_before: float = 0.0             # monotonic time before which no respawn
    wake_at: float | None = None        # on-demand singleton: start at this wall-clock time

    def crashed(self, now: float, ran_for: float, base: float, cap: float) -> float:
        """Record a crash; return the delay before the next start."""
        if self.delay is None or ran_for >= STABLE_AFTER:
            self.delay, self.crashes = base, 1
        else:
            self.delay = min(max(self.delay, 0.05) * 2, max(cap, base))
            self.crashes += 1
        self.not_before = now + self.delay
        return self.delay

    def inherit(self, old: "Slot", singleton: bool = False) -> None:
        """Keep the throttle of the slot this one replaces in a reload; a singleton's
        slot also its wake-up time when dormant (a running one is replaced by a new one
        as soon as it has left). A pool slot's worker starts with a client, as before."""
        self.delay, self.crashes, self.not_before = old.delay, old.crashes, old.not_before
        if singleton:
            self.wake_at = old.wake_at if old.worker is None else 0.0


@dataclass(eq=False)
class Service:
    kind: str
    singleton: bool
    serve: Callable[[Any], Any]
    listeners: list[Listener]
    slots: list[Slot]
    on_demand: bool = False             # slots start dormant, filled when a client connects

    @property
    def size(self) -> int:
        return len(self.slots)

    def ready(self) -> bool:
        """Every slot is served, or crashing (then systemd must not wait for it forever:
        the crash is logged and the slot keeps being restarted with its throttle)."""
        if self.on_demand:       # a dormant slot is ready: its sockets are listening
            return all(s.worker is None or s.worker.ready or s.crashes > 0
                       for s in self.slots)
        return all((s.worker is not None and s.worker.ready) or s.crashes > 0
                   for s in self.slots)

    def describe(self) -> str:
        if self.singleton:
            return self.kind + (" on demand" if self.on_demand else "")
        ids = ", ".join(listener.id for listener in self.listeners)
        return f"{self.kind} x{self.size}{' on demand' if self.on_demand else ''} ({ids})"


def plan(config: Config, kinds: dict[str, Callable[[Any], Any]],
         table: SocketTable) -> dict[str, Service]:
    """The services ``config`` asks for, limited to the available ``kinds``.

    Binds the sockets it needs through ``table`` (between ``begin`` and ``commit``);
    raises ``OSError`` when an address cannot be bound.
    """
    services: dict[str, Service] = {}
    store_process = config.store.type == "rocksdb"
    for kind in SINGLETONS:
        if kind not in kinds:
            continue
        if kind != "store" and not store_process:
            log.info("%s: not started (it needs the store process; storage is %s)",
                     kind, config.store.type)
            continue
        if kind == "store" and not store_process:
            continue
        on_demand = kind in ON_DEMAND_SINGLETONS and bool(config.get("server.on-demand"))
        # wake_at 0: an on-demand singleton still starts at boot (mail may be due).
        services[kind] = Service(kind, True, kinds[kind], [],
                                 [Slot(0, wake_at=0.0 if on_demand else None)],
                                 on_demand=on_demand)
    for protocol in POOLS:
        listeners = config.listeners_for(protocol)
        if not listeners:
            continue
        if protocol not in kinds:
            log.warning("listeners %s (%s) are not served: the %s kind is not available in "
                        "this build", ", ".join(repr(li.id) for li in listeners), protocol,
                        protocol)
            continue
        slots = []
        for index in range(config.pool_size(protocol)):
            slot = Slot(index)
            for listener in listeners:
                for host, port in listener.bind:
                    slot.sockets.append(
                        (listener, table.take(host, port, index, listener.backlog)))
            slots.append(slot)
        services[protocol] = Service(protocol, False, kinds[protocol], listeners, slots,
                                     on_demand=bool(config.get("server.on-demand")))
    return services
