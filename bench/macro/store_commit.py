"""Durable store operations per second: group commit against one fsync per operation.

    python -m bench.macro.store_commit [--seconds 3] [--rounds 3]

Starts the real store process (``python -m stalwart.store.server``) twice — with group commit
(the default) and with ``--no-group-commit`` (every operation written and fsynced alone) —
and drives each with 1 and with 64 concurrent clients (64 = 4 processes x 16 requests in
flight). The operation is ``set_keywords`` toggling ``$seen`` on the client's own message:
small, so the commit path dominates. Every reply is durable when it arrives.

Correctness: each toggle is exactly one change of the account, so after a run the account's
change counter must have grown by exactly the number of acknowledged operations, and every
message's final keywords must match the last acknowledged toggle. The output says whether
that held. Figures are medians over the rounds; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stalwart.store import Store

PROCS_FOR = {1: (1, 1), 64: (4, 16)}


async def _client(base: Path, acc: int, eid: int, concurrency: int, seconds: float) -> dict:
    store = await Store.connect(base / "data", base / "blobs", base / "store.sock",
                                base / "sec" / f"c{os.getpid()}")
    ops = 0
    last = {}
    stop = time.monotonic() + seconds

    async def loop(slot: int) -> None:
        nonlocal ops
        seen = False
        my = eid + slot
        while time.monotonic() < stop:
            seen = not seen
            if seen:
                await store.set_keywords(acc, [my], add=["$seen"])
            else:
                await store.set_keywords(acc, [my], remove=["$seen"])
            ops += 1
            last[my] = seen

    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    ok = all(("$seen" in store.get_email(acc, e)["kw"]) == s for e, s in last.items())
    await store.close()
    return {"ops": ops, "ok": ok}


def _client_main(args) -> None:
    result = asyncio.run(_client(Path(args.base), args.account, args.email, args.concurrency,
                                 args.seconds))
    print(json.dumps(result), flush=True)


async def _prepare(base: Path, n_emails: int) -> tuple[int, int]:
    s = await Store.connect(base / "data", base / "blobs", base / "store.sock", base / "sec" / "prep")
    await s.create_domain("bench.test")
    acc = (await s.create_account("bench", emails=["bench@bench.test"]))["id"]
    first = None
    for i in range(n_emails):
        r = await s.append(acc, 1, b"Subject: %d\r\n\r\nbody\r\n" % i)
        first = first or r["id"]
    await s.close()
    return acc, first


async def _change_counter(base: Path, acc: int) -> int:
    s = await Store.connect(base / "data", base / "blobs", base / "store.sock", base / "sec" / "count")
    value = s.account_state(acc)["change"]
    await s.close()
    return value


def _run_mode(group: bool, clients: int, seconds: float, workdir: Path) -> tuple[float, bool]:
    base = Path(tempfile.mkdtemp(prefix="store-bench-", dir=workdir))
    cmd = [sys.executable, "-m", "stalwart.store.server", "--data", str(base / "data"),
           "--blobs", str(base / "blobs"), "--socket", str(base / "store.sock")]
    if not group:
        cmd.append("--no-group-commit")
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout.readline() == b"ready\n"
        nprocs, conc = PROCS_FOR[clients]
        acc, first = asyncio.run(_prepare(base, nprocs * conc))
        before = asyncio.run(_change_counter(base, acc))
        procs = [subprocess.Popen([sys.executable, "-m", "bench.macro.store_commit", "--client",
                                   "--base", str(base), "--account", str(acc),
                                   "--email", str(first + p * conc), "--concurrency", str(conc),
                                   "--seconds", str(seconds)], stdout=subprocess.PIPE)
                 for p in range(nprocs)]
        results = [json.loads(p.communicate(timeout=seconds + 60)[0]) for p in procs]
        total = sum(r["ops"] for r in results)
        after = asyncio.run(_change_counter(base, acc))
        correct = all(r["ok"] for r in results) and after - before == total
        return total / seconds, correct
    finally:
        server.terminate()
        server.wait(30)
        subprocess.run(["rm", "-rf", str(base)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="store group-commit benchmark")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/var/tmp"))
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--account", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--email", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        _client_main(args)
        return
    import rocksdict

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# store durable ops/s; python {platform.python_version()}, {os.cpu_count()} cpus, "
          f"rocksdict {getattr(rocksdict, '__version__', '?')}, dir {workdir}, "
          f"{args.rounds} rounds x {args.seconds}s, set_keywords per op")
    all_correct = True
    for clients in (1, 64):
        medians = {}
        for group in (True, False):
            rates = []
            for _ in range(args.rounds):
                rate, correct = _run_mode(group, clients, args.seconds, workdir)
                rates.append(rate)
                all_correct &= correct
            medians[group] = statistics.median(rates)
            label = "group commit " if group else "fsync per op"
            print(f"clients={clients:<3} {label}: median {medians[group]:9.0f} ops/s  "
                  f"(rounds: {', '.join(f'{r:.0f}' for r in rates)})")
        print(f"clients={clients:<3} ratio group/per-op: {medians[True] / medians[False]:.2f}x")
    print(f"correct: {'yes' if all_correct else 'NO'} (change counter == acknowledged ops, "
          f"final keywords == last acknowledged toggle)")


if __name__ == "__main__":
    main()
