"""The loaded configuration: ``Config`` and the typed records it hands to the other parts.

A ``Config`` is immutable once built and safe to share across ``fork()``. It holds every
explicitly set value already typed and validated; ``get`` applies declared defaults for
the rest. The records (``Listener``, ``Certificate``, ``StoreSettings``, ``Tracer``) are
the shapes the master, the workers and the store code against (docs/architecture.md,
"Config contract").
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .keys import Key, format_key, parse_key
from .registry import REGISTRY, Registry

__all__ = ["Listener", "Certificate", "StoreSettings", "Tracer", "Config", "PROTOCOLS"]

#: Protocols a listener may serve; each names the worker pool that owns the listener.
PROTOCOLS = ("smtp", "lmtp", "imap", "pop3", "managesieve", "http")


@dataclass(frozen=True)
class Listener:
    id: str
    protocol: str                        # one of PROTOCOLS
    bind: tuple[tuple[str, int], ...]    # (host, port); host may be IPv6 ("::1")
    tls_implicit: bool
    backlog: int


@dataclass(frozen=True)
class Certificate:
    id: str
    cert_pem: bytes                      # leaf first, then any chain
    key_pem: bytes
    default: bool                        # served when SNI matches no other certificate
    names: tuple[str, ...] = ()          # DNS names of the leaf (SAN, else subject CN)
    not_after: _dt.datetime | None = None


@dataclass(frozen=True)
class StoreSettings:
    id: str
    type: str                            # "rocksdb" | "memory"
    path: Path | None                    # the RocksDB directory; None for memory
    blob_path: Path | None               # content-addressed blob files; None for memory


@dataclass(frozen=True)
class Tracer:
    id: str
    type: str                            # "stdout" | "log" | "journal"
    level: str                           # "error" | "warn" | "info" | "debug" | "trace"
    format: str                          # "text" | "json"
    path: Path | None = None             # directory of the log files (type "log")
    prefix: str = "stalwart"             # log file name prefix (type "log")


@dataclass(eq=False)
class Config:
    """A validated configuration. Build it with ``load``, ``loads`` or ``embedded_default``."""

    source: str
    values: dict[Key, Any]
    listeners: list[Listener]
    base_dir: Path
    store: StoreSettings
    certificates: dict[str, Certificate]
    fallback_admin: tuple[str, str] | None
    principals: list[dict]
    tracers: list[Tracer]
    run_as: tuple[str, str | None] | None
    warnings: list[str] = field(default_factory=list)
    first_run_secret: str | None = None
    registry: Registry = field(default_factory=lambda: REGISTRY, repr=False)
    _defaults: dict[Key, Any] = field(default_factory=dict, repr=False)

    @property
    def run_dir(self) -> Path:
        """Sockets and the pid file: ``base_dir / "run"``."""
        return self.base_dir / "run"

    def get(self, key: str | Key) -> Any:
        """The typed value of a declared setting, its default when unset (None if none).

        ``KeyError`` for a key that no declaration matches: that is a programming error,
        not a configuration one.
        """
        k = parse_key(key)
        if k in self.values:
            return self.values[k]
        found = self.registry.find(k)
        if found is None:
            raise KeyError(f"{format_key(k)!r} is not a declared setting")
        if k not in self._defaults:
            setting, params = found
            self._defaults[k] = setting.default_value(params)
        return self._defaults[k]

    def is_set(self, key: str | Key) -> bool:
        """True when the file sets ``key`` explicitly."""
        return parse_key(key) in self.values

    def ids(self, prefix: str | Key) -> list[str]:
        """The ids set under ``prefix``, in file order: ``ids("store")`` -> ``["db", ...]``."""
        p = parse_key(prefix)
        seen: dict[str, None] = {}
        for k in self.values:
            if len(k) > len(p) and k[:len(p)] == p:
                seen.setdefault(k[len(p)])
        return list(seen)

    def pool_size(self, protocol: str) -> int:
        """Number of pre-forked workers of a protocol pool (``server.workers.<protocol>``)."""
        if protocol not in PROTOCOLS:
            raise KeyError(f"unknown protocol pool {protocol!r}")
        return self.get(("server", "workers", protocol))

    @property
    def hostname(self) -> str:
        return self.get("server.hostname")

    @property
    def default_certificate(self) -> Certificate | None:
        for cert in self.certificates.values():
            if cert.default:
                return cert
        return None

    def listeners_for(self, protocol: str) -> list[Listener]:
        return [listener for listener in self.listeners if listener.protocol == protocol]

    def protocols(self) -> list[str]:
        """The protocols that have at least one listener, in ``PROTOCOLS`` order."""
        used = {listener.protocol for listener in self.listeners}
        return [p for p in PROTOCOLS if p in used]
