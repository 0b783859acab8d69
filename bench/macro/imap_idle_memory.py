"""10,000 IMAP connections in IDLE: total PSS of our instance (goal: under 200 MB).

    python -m bench.macro.imap_idle_memory [--connections 10000] [--workers 2]
                                           [--settle 5] [--batch 200] [--wake-sample 200]
                                           [--messages 0]

Starts ``stalwart-master`` (``--workers`` IMAP workers, RocksDB store, one account from a
memory directory) in a temporary directory, then opens ``--connections`` connections from
this process (asyncio, ``--batch`` at a time), each one LOGIN, SELECT INBOX, IDLE, and
waits for every "+ idling". The INBOX is empty unless ``--messages`` fills it first (the
sessions' views of it share one snapshot per worker until they change, selected.py).
After ``--settle`` seconds it sums the proportional set size (``Pss`` of
``/proc/PID/smaps_rollup``) of the master and every process under it, and prints the
total, the figure per process kind and per connection; then again once a new message has
reached every idling session (each one's view took the change). The client process is
not counted.

RLIMIT_NOFILE: this process raises its soft limit to the hard limit before it starts the
server (the master and its workers inherit it); the run refuses to start when the limit
cannot hold the connections (one descriptor per connection here, one in some worker,
plus headroom).

Correctness: every connection reached IDLE; then one message is APPENDed through another
connection and a sample of ``--wake-sample`` idling connections (spread over all of them,
hence over the workers) must each receive ``* <messages + 1> EXISTS`` within 10 seconds;
and the instance is still whole (every process alive).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.macro.idle_memory import _children, kind_of, rollup, title
from .common import BENCH_USER, STATE, wait_port

PORT = 21440
USER, PASSWORD = "idler", "idle-pw"
GOAL_MB = 200
CONFIG = """
[server]
hostname = "mx.bench.test"
[server.workers]
imap = {workers}
smtp = 1
http = 1
[[server.listener]]
id = "imap"
protocol = "imap"
bind = "127.0.0.1:{port}"
""" + STATE + BENCH_USER


class Idler:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    async def until(self, prefix: bytes) -> bytes:
        while True:
            line = await self.r.readline()
            if not line:
                raise ConnectionError("closed")
            if line.startswith(prefix):
                return line


async def _open(port: int) -> Idler:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=65536)
    c = Idler(reader, writer)
    await c.until(b"* OK")
    writer.write(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
    if b"a OK" not in await c.until(b"a "):
        raise ConnectionError("login refused")
    writer.write(b"b SELECT INBOX\r\n")
    if b"b OK" not in await c.until(b"b "):
        raise ConnectionError("select refused")
    writer.write(b"c IDLE\r\n")
    await c.until(b"+")
    return c


async def _open_all(port: int, n: int, batch: int) -> tuple[list[Idler], list[str]]:
    idlers: list[Idler] = []
    errors: list[str] = []
    for start in range(0, n, batch):
        results = await asyncio.gather(*(_open(port) for _ in range(min(batch, n - start))),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                errors.append(repr(r))
            else:
                idlers.append(r)
        if errors:
            break
    return idlers, errors


async def _append(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c = Idler(reader, writer)
    await c.until(b"* OK")
    writer.write(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
    await c.until(b"a ")
    msg = b"Subject: wake up\r\nMessage-ID: <wake@bench.test>\r\n\r\nhello idlers\r\n"
    writer.write(b"b APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    line = await c.until(b"b ")
    if b"b OK" not in line:
        raise RuntimeError(f"APPEND failed: {line!r}")
    writer.close()


async def _fill(port: int, count: int) -> None:
    """``count`` small messages into INBOX (MULTIAPPEND batches of 500)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c = Idler(reader, writer)
    await c.until(b"* OK")
    writer.write(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
    await c.until(b"a ")
    for start in range(0, count, 500):
        parts = []
        for i in range(start, min(count, start + 500)):
            msg = (f"Subject: filler {i}\r\nMessage-ID: <f{i}@bench.test>\r\n\r\n"
                   f"message {i}\r\n").encode()
            parts.append(b" (\\Seen) {%d+}\r\n" % len(msg) + msg)
        writer.write(b"f APPEND INBOX" + b"".join(parts) + b"\r\n")
        line = await c.until(b"f ")
        if b"f OK" not in line:
            raise RuntimeError(f"APPEND failed: {line!r}")
    writer.close()


async def _woken(sample: list[Idler], timeout: float, messages: int) -> int:
    async def one(c: Idler) -> bool:
        try:
            await asyncio.wait_for(c.until(b"* %d EXISTS" % (messages + 1)), timeout)
            return True
        except (asyncio.TimeoutError, ConnectionError):
            return False
    return sum(await asyncio.gather(*(one(c) for c in sample)))


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _measure(master: int) -> tuple[int, dict[str, int], int]:
    """(total Pss kB, kB per kind, number of processes)."""
    total, per_kind, count = 0, {}, 0
    for pid in _tree(master):
        try:
            pss = rollup(pid)["Pss"]
            kind = "master" if pid == master else kind_of(title(pid))
        except (OSError, RuntimeError):
            continue
        total += pss
        per_kind[kind] = per_kind.get(kind, 0) + pss
        count += 1
    return total, per_kind, count


async def _run(port: int, n: int, batch: int, settle: float, sample_size: int,
               master: subprocess.Popen, messages: int) -> tuple[bool, str]:
    # The memory directory is synced into the store just after start: wait for a login.
    deadline = time.monotonic() + 60
    while True:
        try:
            c = await _open(port)
            c.w.close()
            break
        except (OSError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    if messages:
        await _fill(port, messages)
    t0 = time.monotonic()
    idlers, errors = await _open_all(port, n, batch)
    opened = time.monotonic() - t0
    print(f"# {len(idlers)} connections in IDLE after {opened:.1f} s "
          f"({len(idlers) / opened:.0f} per s)")
    await asyncio.sleep(settle)
    total, per_kind, procs = _measure(master.pid)
    mb = total / 1024
    per_conn = (total - 0) / max(1, len(idlers))
    print(f"total PSS: {mb:.1f} MB for {len(idlers)} idle connections, {procs} processes "
          f"({per_conn:.1f} kB per connection, all included); goal under {GOAL_MB} MB: "
          f"{'met' if mb < GOAL_MB else 'NOT met'}")
    for kind, kb in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<10} {kb / 1024:8.1f} MB")
    step = max(1, len(idlers) // max(1, sample_size))
    sample = idlers[::step][:sample_size]
    await _append(port)
    woken = await _woken(sample, 10.0, messages)
    await asyncio.sleep(settle)
    after, _, _ = _measure(master.pid)
    print(f"total PSS after one new message reached every session: {after / 1024:.1f} MB "
          f"({(after - total) / 1024:+.1f} MB)")
    alive = master.poll() is None and all(kind_of(title(p)) != "other"
                                          for p in _tree(master.pid)[1:])
    ok = not errors and len(idlers) == n and woken == len(sample) and alive
    why = (f"{len(idlers)}/{n} reached IDLE{' (first error: ' + errors[0] + ')' if errors else ''}"
           f"; {woken}/{len(sample)} sampled idlers saw the new message within 10 s; "
           f"instance whole: {alive}")
    for c in idlers:
        c.w.close()
    return ok, why


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="PSS of N IMAP connections in IDLE")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--wake-sample", type=int, default=200)
    parser.add_argument("--messages", type=int, default=0,
                        help="messages in the INBOX the connections select (default empty)")
    parser.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/var/tmp"))
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 1000
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {need}: raise it (ulimit -Hn) first")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"# IMAP IDLE memory: {args.connections} connections, {args.workers} imap "
          f"workers, {args.messages} messages in INBOX; RLIMIT_NOFILE {hard}; "
          f"python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, kernel {platform.release()}")
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", PORT)) == 0:
            sys.exit(f"port {PORT} is in use")
    d = Path(tempfile.mkdtemp(prefix="idle", dir=args.workdir))
    config = d / "config.toml"
    config.write_text(CONFIG.format(workers=args.workers, port=PORT, base=d / "var",
                                    user=USER, password=PASSWORD))
    bindir = Path(sys.executable).parent
    with open(d / "daemon.log", "wb") as log:
        master = subprocess.Popen([str(bindir / "stalwart-master"), "--config", str(config)],
                                  stdout=log, stderr=subprocess.STDOUT, cwd=d)
    try:
        wait_port(PORT)
        ok, why = asyncio.run(_run(PORT, args.connections, args.batch, args.settle,
                                   args.wake_sample, master, args.messages))
        print(f"correct: {'yes' if ok else 'NO'} ({why})")
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(120)
        except subprocess.TimeoutExpired:
            for pid in _tree(master.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            master.wait(10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
