"""Durable blob writes: the grouped flusher (BlobStore.put_async) against one put per thread.

    python -m bench.micro.blob_put [--puts 3000] [--concurrency 50] [--size 5120]
                                   [--rounds 3] [--workdir /var/tmp]

The load of SMTP ingest without the SMTP: ``--concurrency`` tasks on one event loop, each
writing its share of ``--puts`` distinct payloads of ``--size`` bytes one after another,
into a fresh blob root per round (so shard directories are new, as in a new store).

- ``grouped``: ``BlobStore.put_async``, the flusher thread of stalwart/store/blobs.py;
- ``per-put``: the reference, what ``put_async`` did before: each put runs whole in the
  default executor (buffered temp file, fsync, rename, fsync of the shard directory and,
  for a new shard, of its parent and the root).

Both make the same promise (bytes and name durable before the put returns). Figures per
contender: puts/s of wall time, CPU per put (this process, every thread, user + system)
and fsync calls per put; medians over the rounds, which alternate the two. Correctness,
recorded with the result: every blob is at its name with the right bytes, and no temp file
is left.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from stalwart.store.blobs import BlobStore, blob_hash


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)


def _reference_put(root: Path, data: bytes, fsync: _Counting) -> bytes:
    """One durable put, all of it in the calling thread (the code before the flusher)."""
    digest = blob_hash(data)
    h = digest.hex()
    final = root / h[:2] / h[2:4] / h
    try:
        os.utime(final)
        return digest
    except FileNotFoundError:
        pass
    tmp = root / "tmp" / f"{os.getpid()}.{time.monotonic_ns()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        fsync(f.fileno())
    parent = final.parent
    dirs = [parent]
    if not parent.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
        dirs += [parent.parent, parent.parent.parent]
    os.replace(tmp, final)
    for d in dirs:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fsync(fd)
        finally:
            os.close(fd)
    return digest


async def _load(put, payloads: list[bytes], concurrency: int) -> list[bytes]:
    out: list[bytes] = [b""] * len(payloads)

    async def task(start: int) -> None:
        for i in range(start, len(payloads), concurrency):
            out[i] = await put(payloads[i])
    await asyncio.gather(*(task(s) for s in range(concurrency)))
    return out


def _round(kind: str, workdir: Path, payloads: list[bytes], concurrency: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"blob-{kind}-", dir=workdir))
    try:
        counter = _Counting()
        store = BlobStore(root, fsync=counter)
        if kind == "grouped":
            put = store.put_async
        else:
            async def put(data: bytes) -> bytes:
                return await asyncio.get_running_loop().run_in_executor(
                    None, _reference_put, root, data, counter)
        cpu0, t0 = time.process_time(), time.monotonic()
        digests = asyncio.run(_load(put, payloads, concurrency))
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        ok = (digests == [blob_hash(p) for p in payloads]
              and all(store.get(d) == p for d, p in zip(digests, payloads))
              and not os.listdir(root / "tmp"))
        n = len(payloads)
        return {"rate": n / wall, "cpu_ms": cpu / n * 1e3, "fsyncs": counter.calls / n,
                "ok": ok}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/var/tmp"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    print(f"# blob puts: {args.puts} x {args.size} B, {args.concurrency} concurrent; "
          f"python {platform.python_version()}, {os.cpu_count()} cpus, workdir {workdir}, "
          f"load average {os.getloadavg()[0]:.2f}")
    results: dict[str, list[dict]] = {"per-put": [], "grouped": []}
    for r in range(args.rounds):
        for kind in ("per-put", "grouped"):
            payloads = [os.urandom(args.size) for _ in range(args.puts)]
            res = _round(kind, workdir, payloads, args.concurrency)
            results[kind].append(res)
            print(f"round {r + 1} {kind:>8}: {res['rate']:7.0f} puts/s, "
                  f"{res['cpu_ms']:.3f} ms CPU/put, {res['fsyncs']:.2f} fsyncs/put, "
                  f"correct: {res['ok']}")
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("rate", "cpu_ms", "fsyncs")}
           for k, v in results.items()}
    for k, m in med.items():
        print(f"median {k:>8}: {m['rate']:7.0f} puts/s, {m['cpu_ms']:.3f} ms CPU/put, "
              f"{m['fsyncs']:.2f} fsyncs/put")
    print(f"ratio grouped / per-put: {med['grouped']['rate'] / med['per-put']['rate']:.2f}x "
          f"puts/s, {med['per-put']['cpu_ms'] / med['grouped']['cpu_ms']:.2f}x less CPU per put")
    correct = all(x["ok"] for v in results.values() for x in v)
    print(f"correct: {'yes' if correct else 'NO'} (every blob at its name with its bytes, "
          f"no temp file left)")


if __name__ == "__main__":
    main()
