"""Per-client limits shared by every worker process: connection counts and rates, message
rates, failed-login penalties and temporary bans.

Theory of operation
-------------------
A pool has several worker processes and a client's connections land on any of them
(``SO_REUSEPORT``), so a count kept in one process would let a client through once per
worker. The counters therefore live in one table that every worker maps: a small file in
the run directory (``run/limits-<slots>.table``), mapped ``MAP_SHARED``; the kernel keeps
its pages in memory, so reading and updating a counter costs no I/O and no round trip to
another process. Every update runs under a POSIX record lock (``fcntl.lockf``) on the
file, which the kernel releases when the holder dies: a worker killed in the middle of an
update cannot wedge the others. The table is not durable and need not be: losing it
(``rm``, a new table size) forgets rates and bans, nothing else.

Records (48 bytes) sit in an open-addressed hash table keyed by a 16-byte BLAKE2b digest of
``kind + key``. A lookup probes a fixed window of ``PROBE`` slots from the digest's home
slot, so a record is always in its window and no tombstones are needed; a record whose
``expires`` has passed counts as free. When a window is full of live records the one that
expires first is overwritten (rates forget a client, which errs on the side of letting it
in), and concurrency records are never overwritten.

- Rates use GCRA (the "virtual scheduling" form of a token bucket): one float per key, the
  theoretical arrival time ``tat``; ``count`` events per ``period`` are allowed, in a burst
  or spread out, and the record expires once the bucket is full again.
- Concurrent connections are counted per (key, worker pid): a worker that exits normally
  releases its own; a worker that was killed cannot, so a refusal is only given after the
  pids behind the count were checked alive (``kill(pid, 0)``), and each worker sweeps the
  records of dead pids when it opens the table. The header remembers the master's pid
  (``epoch``): a new daemon (whose pids may be reused) starts from zero connections.
- Failed logins: a count per key in a window that starts at the first failure; a ban is a
  record that expires when the ban ends.

Clock: ``time.time()`` (the same in every process); a ban therefore survives a restart of
the daemon until it expires. IPv6 clients are keyed by their /64 (one customer's
allocation), IPv4-mapped addresses as IPv4 (``client_key``).

``LimitTable(None)`` keeps the table in anonymous memory of this process only (tests,
single-process tools).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import logging
import math
import mmap
import os
import re
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = ["Rate", "LimitTable", "AuthPenalty", "ClientLimits", "Refusal", "client_key",
           "parse_networks", "open_shared_table"]

MAGIC = b"STWLIM01"
_HEADER = struct.Struct("<8sIIq")          # magic, slots, reserved, epoch
HEADER_SIZE = 64
_RECORD = struct.Struct("<16sB3xIqdd")     # digest, kind, pid, count, value, expires
_KIND_EXPIRES = struct.Struct("<16xB3x4x8x8xd")   # the two fields a probe needs
RECORD_SIZE = _RECORD.size                 # 48
PROBE = 32

# Record kinds.
FREE, RATE, CONC, FAIL, BAN = 0, 1, 2, 3, 4
_FOREVER = math.inf


# ---------------------------------------------------------------------- values
_RATE_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)?\s*", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Rate:
    """``count`` events per ``period`` seconds; ``count == 0`` means no limit."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: object) -> "Rate":
        """``"60/1m"``, ``"500/1h"``, ``"10/30s"``, ``"100/d"``; ``"unlimited"`` (or a
        count of 0) disables the limit."""
        if isinstance(text, str) and text.strip().lower() in ("unlimited", "0", "off"):
            return cls(0, 0.0)
        m = _RATE_RE.fullmatch(text) if isinstance(text, str) else None
        if not m or (m.group(2) is None and m.group(3) is None):
            raise ValueError(f"expected a rate such as \"60/1m\" (count/period) or "
                             f"\"unlimited\", got {text!r}")
        count = int(m.group(1))
        period = float(m.group(2) or 1) * _UNITS[(m.group(3) or "s").lower()]
        if count and period <= 0:
            raise ValueError(f"the period of rate {text!r} must be longer than zero")
        return cls(count, period if count else 0.0)

    @property
    def unlimited(self) -> bool:
        return self.count <= 0

    def __str__(self) -> str:
        if self.unlimited:
            return "unlimited"
        return f"{self.count}/{_format_period(self.period)}"


def _format_period(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        n = seconds / _UNITS[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{round(seconds * 1000)}ms"


@functools.lru_cache(maxsize=4096)
def client_key(ip: str) -> str:
    """The identity a limit counts for an address: IPv4 as is (mapped IPv6 included),
    IPv6 by its /64. Text that is no address (a Unix socket) is kept as it is."""
    try:
        addr = ipaddress.ip_address(str(ip).split("%", 1)[0])
    except ValueError:
        return str(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def parse_networks(items: Iterable[str]) -> tuple:
    """``["127.0.0.0/8", "::1", "192.0.2.7"]`` as networks; ValueError names a bad one."""
    nets = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (CIDR)") from None
    return tuple(nets)


@functools.lru_cache(maxsize=4096)
def in_networks(ip: str, networks: tuple) -> bool:
    try:
        addr = ipaddress.ip_address(str(ip).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in networks)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True          # another user's process (after run-as): it exists
    return True


# ---------------------------------------------------------------------- the table
class LimitTable:
    """The shared table (see the module docstring). ``path=None``: process-local."""

    def __init__(self, path: str | os.PathLike | None, slots: int = 16384, *,
                 epoch: int = 0) -> None:
        if slots < PROBE:
            raise ValueError(f"a limit table needs at least {PROBE} slots")
        self.slots = slots
        self.path = Path(path) if path is not None else None
        self._tlock = threading.RLock()
        self._depth = 0                     # nesting of locked() in the holding thread
        self._fd: int | None = None
        size = HEADER_SIZE + slots * RECORD_SIZE
        if self.path is None:
            self._map = mmap.mmap(-1, size)
            _HEADER.pack_into(self._map, 0, MAGIC, slots, 0, epoch)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size < size:
                    os.ftruncate(self._fd, size)
                self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED)
                magic, have_slots, _, have_epoch = _HEADER.unpack_from(self._map, 0)
                if magic != MAGIC or have_slots != slots:
                    self._map[:] = bytes(size)
                    _HEADER.pack_into(self._map, 0, MAGIC, slots, 0, epoch)
                elif have_epoch != epoch:
                    # A new daemon: connections counted by the old one's pids are gone.
                    self._clear_kind(CONC)
                    _HEADER.pack_into(self._map, 0, MAGIC, slots, 0, epoch)
                else:
                    self._sweep_dead()
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None  # type: ignore[assignment]
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ locking
    def _locked(self) -> "_Guard":
        return _Guard(self)

    def locked(self) -> "_Guard":
        """Hold the table across several calls (they nest): one lock for a decision made of
        several counters, e.g. ``ClientLimits.connect``."""
        return _Guard(self)

    # ------------------------------------------------------------------ records
    @staticmethod
    def _digest(kind: int, key: str) -> bytes:
        return hashlib.blake2b(f"{kind}\x00{key}".encode("utf-8", "surrogatepass"),
                               digest_size=16).digest()

    def _window(self, digest: bytes) -> tuple[bytes, int, int]:
        """The ``PROBE`` records from the digest's home slot (wrapping) as one copy, with
        what ``_offset`` needs to map an index in it back to the map."""
        home = int.from_bytes(digest[:8], "little") % self.slots
        first = min(PROBE, self.slots - home)
        start = HEADER_SIZE + home * RECORD_SIZE
        data = self._map[start:start + first * RECORD_SIZE]
        if first < PROBE:
            data += self._map[HEADER_SIZE:HEADER_SIZE + (PROBE - first) * RECORD_SIZE]
        return data, start, first

    @staticmethod
    def _offset(start: int, first: int, i: int) -> int:
        return start + i * RECORD_SIZE if i < first else HEADER_SIZE + (i - first) * RECORD_SIZE

    @staticmethod
    def _matches(data: bytes, digest: bytes) -> Iterable[int]:
        """Indexes in a window whose record carries ``digest`` (found by C-level search)."""
        pos = data.find(digest)
        while pos >= 0:
            if pos % RECORD_SIZE == 0:
                yield pos // RECORD_SIZE
            pos = data.find(digest, pos + 1)

    def _read(self, off: int) -> tuple:
        return _RECORD.unpack_from(self._map, off)

    def _write(self, off: int, digest: bytes, kind: int, pid: int, count: int, value: float,
               expires: float) -> None:
        _RECORD.pack_into(self._map, off, digest, kind, pid, count, value, expires)

    def _free(self, off: int) -> None:
        self._map[off:off + RECORD_SIZE] = bytes(RECORD_SIZE)

    def _find(self, digest: bytes, kind: int, now: float, pid: int | None = None
              ) -> tuple[int | None, int | None]:
        """(offset of the live record, offset to insert at); either may be None."""
        data, start, first = self._window(digest)
        for i in self._matches(data, digest):
            _d, k, p, _count, _value, expires = _RECORD.unpack_from(data, i * RECORD_SIZE)
            if k == kind and k != FREE and expires > now and (pid is None or p == pid):
                return self._offset(start, first, i), None
        evict, evict_at = None, _FOREVER
        for i, (k, expires) in enumerate(_KIND_EXPIRES.iter_unpack(data)):
            if k == FREE or expires <= now:
                return None, self._offset(start, first, i)
            if k != CONC and expires < evict_at:
                evict, evict_at = i, expires
        return None, None if evict is None else self._offset(start, first, evict)

    def _clear_kind(self, kind: int) -> None:
        for i in range(self.slots):
            off = HEADER_SIZE + i * RECORD_SIZE
            if self._map[off + 16] == kind:
                self._free(off)

    def _sweep_dead(self) -> int:
        """Free the connection records of processes that no longer exist."""
        dead: dict[int, bool] = {}
        freed = 0
        for i in range(self.slots):
            off = HEADER_SIZE + i * RECORD_SIZE
            if self._map[off + 16] != CONC:
                continue
            pid = self._read(off)[2]
            if pid not in dead:
                dead[pid] = not _pid_alive(pid)
            if dead[pid]:
                self._free(off)
                freed += 1
        return freed

    # ------------------------------------------------------------------ rates
    def hit(self, name: str, key: str, rate: Rate, *, now: float | None = None) -> float:
        """Count one event of ``name`` for ``key`` against ``rate``. Returns 0.0 when the
        event is allowed (and counted), else the seconds until one would be allowed (the
        refused event is not counted)."""
        if rate.unlimited:
            return 0.0
        now = time.time() if now is None else now
        digest = self._digest(RATE, f"{name}\x00{key}")
        interval = rate.period / rate.count
        tolerance = rate.period - interval
        with self._locked():
            found, spare = self._find(digest, RATE, now)
            tat = self._read(found)[4] if found is not None else now
            tat = max(tat, now)
            if tat - now > tolerance + 1e-9:
                return tat - now - tolerance
            new_tat = tat + interval
            off = found if found is not None else spare
            if off is not None:
                self._write(off, digest, RATE, 0, 0, new_tat, new_tat)
            return 0.0

    # ------------------------------------------------------------------ concurrency
    def connections(self, key: str, *, check_alive: bool = False) -> int:
        """Open connections of ``key`` across all processes."""
        digest = self._digest(CONC, key)
        with self._locked():
            return self._conc_total(digest, check_alive)

    def _conc_total(self, digest: bytes, check_alive: bool) -> int:
        total = 0
        data, start, first = self._window(digest)
        for i in self._matches(data, digest):
            _d, k, pid, count, _v, _e = _RECORD.unpack_from(data, i * RECORD_SIZE)
            if k == CONC:
                if check_alive and pid != os.getpid() and not _pid_alive(pid):
                    self._free(self._offset(start, first, i))
                    continue
                total += count
        return total

    def acquire(self, key: str, limit: int) -> bool:
        """Open one connection of ``key`` if fewer than ``limit`` are open (``limit`` 0:
        no limit, still counted). True when opened: call ``release`` when it closes."""
        digest = self._digest(CONC, key)
        pid = os.getpid()
        with self._locked():
            if limit > 0 and self._conc_total(digest, False) >= limit:
                # Before refusing, make sure no dead worker's connections are counted.
                if self._conc_total(digest, True) >= limit:
                    return False
            found, spare = self._find(digest, CONC, time.time(), pid)
            if found is not None:
                count = self._read(found)[3]
                self._write(found, digest, CONC, pid, count + 1, 0.0, _FOREVER)
                return True
            if spare is None:
                return True          # window full: count nothing rather than refuse
            self._write(spare, digest, CONC, pid, 1, 0.0, _FOREVER)
            return True

    def release(self, key: str) -> None:
        digest = self._digest(CONC, key)
        pid = os.getpid()
        with self._locked():
            found, _ = self._find(digest, CONC, time.time(), pid)
            if found is None:
                return
            count = self._read(found)[3]
            if count <= 1:
                self._free(found)
            else:
                self._write(found, digest, CONC, pid, count - 1, 0.0, _FOREVER)

    # ------------------------------------------------------------------ failures, bans
    def add_failure(self, key: str, window: float, *, now: float | None = None) -> int:
        """Count one failure of ``key``; returns the failures in the current window (a
        window starts at the first failure and lasts ``window`` seconds)."""
        now = time.time() if now is None else now
        digest = self._digest(FAIL, key)
        with self._locked():
            found, spare = self._find(digest, FAIL, now)
            if found is not None:
                _d, _k, _p, count, start, expires = self._read(found)
                count += 1
                self._write(found, digest, FAIL, 0, count, start, expires)
                return count
            if spare is not None:
                self._write(spare, digest, FAIL, 0, 1, now, now + window)
            return 1

    def failures(self, key: str, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        digest = self._digest(FAIL, key)
        with self._locked():
            found, _ = self._find(digest, FAIL, now)
            return self._read(found)[3] if found is not None else 0

    def ban(self, key: str, seconds: float, *, now: float | None = None) -> None:
        """Ban ``key`` for ``seconds`` (its failure count starts again afterwards)."""
        now = time.time() if now is None else now
        with self._locked():
            digest = self._digest(BAN, key)
            found, spare = self._find(digest, BAN, now)
            off = found if found is not None else spare
            if off is not None:
                self._write(off, digest, BAN, 0, 0, now, now + seconds)
            fail_digest = self._digest(FAIL, key)
            found, _ = self._find(fail_digest, FAIL, now)
            if found is not None:
                self._free(found)

    def banned(self, key: str, *, now: float | None = None) -> float:
        """Seconds left of ``key``'s ban, 0.0 when it is not banned."""
        now = time.time() if now is None else now
        digest = self._digest(BAN, key)
        with self._locked():
            found, _ = self._find(digest, BAN, now)
            return self._read(found)[5] - now if found is not None else 0.0

    def unban(self, key: str) -> bool:
        digest = self._digest(BAN, key)
        with self._locked():
            found, _ = self._find(digest, BAN, time.time())
            if found is None:
                return False
            self._free(found)
            return True


class _Guard:
    """The table's lock: a thread lock, then the file's record lock (other processes)."""

    __slots__ = ("table",)

    def __init__(self, table: LimitTable) -> None:
        self.table = table

    def __enter__(self) -> None:
        table = self.table
        table._tlock.acquire()
        if table._depth == 0 and table._fd is not None:
            try:
                fcntl.lockf(table._fd, fcntl.LOCK_EX)
            except BaseException:
                table._tlock.release()
                raise
        table._depth += 1

    def __exit__(self, *exc: object) -> None:
        table = self.table
        table._depth -= 1
        try:
            if table._depth == 0 and table._fd is not None:
                fcntl.lockf(table._fd, fcntl.LOCK_UN)
        finally:
            table._tlock.release()


def open_shared_table(config: Any, slots: int) -> LimitTable:
    """A worker's mapping of the daemon's table, ``<run_dir>/limits-<slots>.table`` (epoch:
    the parent's pid, i.e. the master's). Any protocol may open it: bans and failed logins
    are shared by design. If the file cannot be opened (left by another user, a full
    disk) the worker keeps counters of its own, so limits then hold per worker, and says
    so loudly rather than refusing to serve."""
    path = Path(config.run_dir) / f"limits-{slots}.table"
    try:
        return LimitTable(path, slots, epoch=os.getppid())
    except OSError as exc:
        logging.getLogger("stalwart.limits").error(
            "cannot open the shared limit table %s (%s): per-client limits are counted per "
            "worker process until this is fixed", path, exc)
        return LimitTable(None, slots, epoch=os.getppid())


# ---------------------------------------------------------------------- policies
@dataclass(frozen=True)
class AuthPenalty:
    """What failed logins from one client cost: from the ``delay_after``-th failure in
    ``window`` each failure is answered after ``delay`` seconds, doubling with every
    further failure up to ``max_delay``; the ``ban_after``-th failure bans the client
    for ``ban_time`` (0 disables the ban)."""

    delay_after: int = 3
    delay: float = 1.0
    max_delay: float = 15.0
    ban_after: int = 10
    window: float = 600.0
    ban_time: float = 1800.0

    def delay_for(self, failures: int) -> float:
        if failures < self.delay_after or self.delay <= 0:
            return 0.0
        return min(self.max_delay, self.delay * 2.0 ** (failures - self.delay_after))


@dataclass
class Refusal:
    """Why a client is turned away, and for how long at least (seconds)."""

    reason: str            # "banned" | "connections" | "connection-rate" | "message-rate"
    key: str               # the client key or account the limit counted
    retry_after: float = 0.0


class ClientLimits:
    """The limits one protocol applies, over a shared ``LimitTable``.

    Clients whose address is in ``exempt`` bypass the per-IP limits and bans (never the
    per-account message rate). ``name`` separates the counters of protocols sharing the
    table (``smtp``); bans and failed logins are shared by every protocol on purpose.
    """

    def __init__(self, table: LimitTable, *, name: str = "smtp", exempt: tuple = (),
                 concurrency: int = 0, connection_rate: Rate = Rate(0, 0),
                 message_rate: Rate = Rate(0, 0), account_message_rate: Rate = Rate(0, 0),
                 auth: AuthPenalty = AuthPenalty()) -> None:
        self.table = table
        self.name = name
        self.exempt = exempt
        self.concurrency = concurrency
        self.connection_rate = connection_rate
        self.message_rate = message_rate
        self.account_message_rate = account_message_rate
        self.auth = auth

    def is_exempt(self, ip: str) -> bool:
        return in_networks(ip, self.exempt)

    def connect(self, ip: str) -> Refusal | None:
        """A new connection from ``ip``: None when it may proceed (then ``disconnect``
        must follow), else why not."""
        if self.is_exempt(ip):
            return None
        key = client_key(ip)
        with self.table.locked():        # one decision: no other process in between
            left = self.table.banned(key)
            if left > 0:
                return Refusal("banned", key, left)
            wait = self.table.hit(f"{self.name}.connect", key, self.connection_rate)
            if wait > 0:
                return Refusal("connection-rate", key, wait)
            if not self.table.acquire(f"{self.name}\x00{key}", self.concurrency):
                return Refusal("connections", key, 0.0)
        return None

    def disconnect(self, ip: str) -> None:
        if not self.is_exempt(ip):
            self.table.release(f"{self.name}\x00{client_key(ip)}")

    def message(self, ip: str, account: str | None = None) -> Refusal | None:
        """A new message (MAIL FROM) from ``ip``, by ``account`` if authenticated."""
        if account and not self.account_message_rate.unlimited:
            wait = self.table.hit(f"{self.name}.account", account, self.account_message_rate)
            if wait > 0:
                return Refusal("account-message-rate", account, wait)
        if self.is_exempt(ip):
            return None
        key = client_key(ip)
        wait = self.table.hit(f"{self.name}.message", key, self.message_rate)
        if wait > 0:
            return Refusal("message-rate", key, wait)
        return None

    def auth_failed(self, ip: str) -> tuple[float, bool]:
        """One failed login from ``ip``: (seconds to delay the answer, banned now)."""
        if self.is_exempt(ip):
            return 0.0, False
        key = client_key(ip)
        count = self.table.add_failure(key, self.auth.window)
        if self.auth.ban_after > 0 and self.auth.ban_time > 0 and count >= self.auth.ban_after:
            self.table.ban(key, self.auth.ban_time)
            return self.auth.delay_for(count), True
        return self.auth.delay_for(count), False

    def banned(self, ip: str) -> float:
        if self.is_exempt(ip):
            return 0.0
        return self.table.banned(client_key(ip))
