"""Per-client limit checks: the shared table (stalwart.limits) against a process-local dict.

    python -m bench.micro.limits [--events 20000] [--rounds 5] [--clients 5000]

What it costs to keep SMTP's per-client counters in the table every worker maps (a file
mapped MAP_SHARED, a POSIX record lock per update) instead of a dict in each process (which
would be wrong: each worker would allow the limit again). Workloads, per event, over
``--clients`` addresses in turn:

- ``rate``: one GCRA rate check (``hit``), as MAIL FROM does twice (IP and account);
- ``connection``: ``ClientLimits.connect`` + ``disconnect`` (ban check, connection rate,
  concurrency acquire/release), what every SMTP connection pays.

The reference is the same algorithms over a Python dict (``DictLimits`` below), no lock,
no sharing. Times are CPU seconds of this process (``time.process_time``, so the figures
hold on a busy shared machine); medians over rounds; ratio = table time / dict time.

Correctness, recorded with the result: for one deterministic sequence of events with
explicit times (bursts and pauses over several keys) the table and the dict must allow and
refuse exactly the same events, and a table shared by two forked processes must allow the
limit once in total.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time

from stalwart.limits import ClientLimits, LimitTable, Rate


class DictLimits:
    """The reference: GCRA and counters in a dict of this process."""

    def __init__(self) -> None:
        self.tat: dict[str, float] = {}
        self.conc: dict[str, int] = {}
        self.bans: dict[str, float] = {}

    def hit(self, name: str, key: str, rate: Rate, now: float) -> float:
        interval = rate.period / rate.count
        tolerance = rate.period - interval
        tat = max(self.tat.get(name + key, now), now)
        if tat - now > tolerance + 1e-9:
            return tat - now - tolerance
        self.tat[name + key] = tat + interval
        return 0.0

    def connect(self, ip: str, rate: Rate, limit: int, now: float) -> bool:
        if self.bans.get(ip, 0.0) > now:
            return False
        if self.hit("c", ip, rate, now) > 0:
            return False
        if self.conc.get(ip, 0) >= limit:
            return False
        self.conc[ip] = self.conc.get(ip, 0) + 1
        return True

    def disconnect(self, ip: str) -> None:
        self.conc[ip] -= 1


def _sequence(n: int = 3000):
    """(key, now) events: bursts on a few keys with pauses, deterministic."""
    out, now = [], 1_000_000.0
    for i in range(n):
        key = f"10.0.0.{i % 7}"
        now += 0.05 if i % 50 else 30.0
        out.append((key, now))
    return out


def correctness(tmp: str) -> tuple[bool, str]:
    rate = Rate(20, 60.0)
    table = LimitTable(os.path.join(tmp, "check.table"), 4096)
    ref = DictLimits()
    for key, now in _sequence():
        a = table.hit("m", key, rate, now=now) == 0.0
        b = ref.hit("m", key, rate, now) == 0.0
        if a != b:
            return False, f"table and dict disagree at {key} {now}"
    path = os.path.join(tmp, "shared.table")
    LimitTable(path, 4096).close()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child() -> None:
        t = LimitTable(path, 4096)
        queue.put(sum(t.hit("m", "k", Rate(100, 3600.0)) == 0.0 for _ in range(150)))
    procs = [ctx.Process(target=child) for _ in range(2)]
    for p in procs:
        p.start()
    total = sum(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(10)
    if total != 100:
        return False, f"two processes were allowed {total} events of a limit of 100"
    return True, "same decisions as the dict on 3000 events; 2 processes shared one limit"


def _time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=5000)
    args = ap.parse_args(argv)
    ips = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(args.clients)]
    big = Rate(10**9, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        ok, detail = correctness(tmp)
        table = LimitTable(os.path.join(tmp, "bench.table"), 65536)
        limits = ClientLimits(table, concurrency=1000, connection_rate=big)
        results: dict[str, list[tuple[float, float]]] = {"rate": [], "connection": []}
        for _ in range(args.rounds):
            ref = DictLimits()
            n = args.events
            t_table = _time(lambda: [table.hit("m", ips[i % len(ips)], big)
                                     for i in range(n)])
            now = time.time()
            t_dict = _time(lambda: [ref.hit("m", ips[i % len(ips)], big, now)
                                    for i in range(n)])
            results["rate"].append((t_table, t_dict))

            def conn_table() -> None:
                for i in range(n):
                    ip = ips[i % len(ips)]
                    limits.connect(ip)
                    limits.disconnect(ip)

            def conn_dict() -> None:
                for i in range(n):
                    ip = ips[i % len(ips)]
                    ref.connect(ip, big, 1000, now)
                    ref.disconnect(ip)
            results["connection"].append((_time(conn_table), _time(conn_dict)))
        table.close()
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs; {args.events} events x "
          f"{args.rounds} rounds, {args.clients} clients; CPU time of this process")
    for name, rows in results.items():
        per_table = statistics.median(t for t, _ in rows) / args.events * 1e6
        per_dict = statistics.median(d for _, d in rows) / args.events * 1e6
        ratio = statistics.median(t / d for t, d in rows if d > 0)
        print(f"{name:<11} table {per_table:7.1f} us/event   dict {per_dict:6.1f} us/event   "
              f"ratio (table/dict) {ratio:5.1f}x")
    print(f"correct: {'yes' if ok else 'NO'} ({detail})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
