"""The registry of process kinds: ``kind -> "module:function"`` of its ``serve(ctx)``.

Pools (one per listener protocol, sized by ``server.workers.<protocol>``): smtp, lmtp,
imap, pop3, managesieve, http. Singletons (one process each, supervised the same way):
store, queue, scheduler. ``smtp`` and ``lmtp`` share one ``serve``: it reads the listener
protocol from ``ctx.sockets``/``ctx.kind``.

The registry is tolerant of a partial build: ``preload()`` imports every kind's module
once, in the master before it forks (so the code pages are shared by all workers), and
reports the kinds whose module does not exist in this build; the master starts only the
available ones. A module that exists but fails to import is an error of this build, also
reported, and its kind is not started either.

``KINDS`` is a plain dict: a program that embeds the master (tests, a packager's build)
may point a kind at another function before calling ``stalwart.master.main.main``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

from stalwart.config import PROTOCOLS

__all__ = ["KINDS", "SINGLETONS", "POOLS", "RegistryError", "Deferred", "resolve", "preload"]

log = logging.getLogger("stalwart.worker")

Serve = Callable[[Any], Awaitable[None]]

#: Singleton kinds, in start order (the store first: everything else talks to it).
SINGLETONS = ("store", "queue", "scheduler")
#: Pool kinds: one per listener protocol.
POOLS = PROTOCOLS

KINDS: dict[str, str] = {
    "store": "stalwart.store.server:serve",
    "queue": "stalwart.queue.server:serve",
    "scheduler": "stalwart.scheduler:serve",
    "smtp": "stalwart.protocols.smtp.server:serve",
    "lmtp": "stalwart.protocols.smtp.server:serve",
    "imap": "stalwart.protocols.imap.server:serve",
    "pop3": "stalwart.protocols.pop3.server:serve",
    "managesieve": "stalwart.protocols.managesieve.server:serve",
    "http": "stalwart.http.server:serve",
}


class RegistryError(Exception):
    """A kind cannot be run: ``missing`` when its module is not part of this build."""

    def __init__(self, kind: str, message: str, *, missing: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.missing = missing


def resolve(kind: str) -> Serve:
    """Import and return the ``serve`` function of ``kind``; ``RegistryError`` if unusable."""
    target = KINDS.get(kind)
    if target is None:
        raise RegistryError(kind, "unknown process kind")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Missing only if the module itself (or a stalwart package above it) is absent;
        # a third-party import failing inside it is a broken build, not a missing kind.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise RegistryError(kind, f"module {module_name} is not in this build",
                                missing=True) from None
        raise RegistryError(kind, f"importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise RegistryError(kind, f"importing {module_name} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RegistryError(kind, f"{module_name} has no function {attr!r}")
    return fn


class Deferred:
    """The ``serve`` of a kind imported in the child, on its first call.

    For pools started on demand (``server.on-demand``): their modules then live only in
    the processes that serve them, instead of in the master's heap that every idle process
    shares (about 4 MiB for the protocol modules of the embedded default)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, ctx: Any) -> Awaitable[None]:
        return resolve(self.kind)(ctx)

    def __repr__(self) -> str:
        return f"Deferred({self.kind!r})"


def _exists(kind: str) -> bool:
    """Whether the module of ``kind`` is part of this build: found, and nothing imported
    (``find_spec`` would import its parent packages, whose ``__init__`` often imports
    most of the package: the master would carry what it defers)."""
    module_name = KINDS.get(kind, "").partition(":")[0]
    if not module_name:
        return False
    top, _, rest = module_name.partition(".")
    if top in sys.modules and rest and getattr(sys.modules[top], "__path__", None):
        for base in sys.modules[top].__path__:
            path = Path(base, *rest.split("."))
            if (path / "__init__.py").is_file() or path.with_suffix(".py").is_file() \
                    or any(path.parent.glob(path.name + ".*.so")):
                return True
        return False
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:            # a parent package is missing
        return False


def preload(kinds: list[str] | tuple[str, ...] | None = None, *,
            deferred: tuple[str, ...] = ()) -> dict[str, Serve]:
    """Import the kinds (all by default); return the available ones, log the others.

    Kinds in ``deferred`` are only looked up: their ``serve`` is a ``Deferred`` that
    imports the module in the process that runs it."""
    available: dict[str, Serve] = {}
    missing: list[str] = []
    for kind in kinds if kinds is not None else list(KINDS):
        if kind in deferred and kind in KINDS:
            if _exists(kind):
                available[kind] = Deferred(kind)
            else:
                missing.append(kind)
            continue
        try:
            available[kind] = resolve(kind)
        except RegistryError as exc:
            if exc.missing:
                missing.append(kind)
            else:
                log.error("process kind %s", exc, exc_info=exc.__cause__)
    if missing:
        log.warning("process kinds not available in this build: %s", ", ".join(missing))
    return available
