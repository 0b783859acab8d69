"""The scheduler process: housekeeping that no request waits for.

Runs as the singleton process kind ``scheduler`` (see stalwart.worker). Each task runs on its
own period, first shortly after start, and a failure is logged and retried next period; the
process never dies of a housekeeping error.

Tasks now:
- ``purge_blobs``: asks the store process to delete blob files that no record references
  and that are older than a grace period (orphans of crashes between the blob write and the
  metadata commit, and blobs of deleted mail). The store does it in its own thread, so it
  cannot race a commit (see StoreServer._purge_blobs).
- ``clean_secondaries``: removes RocksDB secondary directories left by worker processes that
  died without closing their store (``run/secondary/<pid>`` whose pid is gone).

- DMARC aggregate reports (``stalwart.mailauth.reports.run_report_job``): hourly, the
  reports of finished UTC days are queued to the ``rua=`` addresses.

- ``fts_indexer``: fills the full-text index after delivery (``stalwart.fts.run_indexer``,
  woken by store change events, in this process's own store connection).

Later issues add ACME renewal and TLS reports here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from .periodic import every
from .store.client import StoreClient

log = logging.getLogger("stalwart.scheduler")

BLOB_PURGE_PERIOD = 6 * 3600.0
BLOB_PURGE_GRACE = 3600.0
SECONDARY_CLEAN_PERIOD = 600.0
FIRST_RUN_DELAY = 30.0
#: The scheduler's niceness increment (its work is deferred by design).
SCHEDULER_NICE = 10


def clean_secondaries(run_dir: Path) -> int:
    """Remove ``run_dir/secondary/<pid>`` (or ``<purpose>-<pid>``) directories whose process
    no longer exists."""
    root = Path(run_dir) / "secondary"
    if not root.is_dir():
        return 0
    removed = 0
    for d in root.iterdir():
        pid_text = d.name.rsplit("-", 1)[-1]  # "<pid>" or "<purpose>-<pid>" (fts-<pid>)
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        try:
            os.kill(pid, 0)
            continue  # still alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


async def _every(period: float, first: float, name: str, fn, stop: asyncio.Event) -> None:
    async def logged():
        log.info("scheduler: %s done: %s", name, await fn())
    await every(period, logged, stop, first=first, name=f"scheduler: {name}")


async def run(run_dir: Path, stop: asyncio.Event, *, blob_period: float = BLOB_PURGE_PERIOD,
              blob_grace: float = BLOB_PURGE_GRACE, clean_period: float = SECONDARY_CLEAN_PERIOD,
              first_delay: float = FIRST_RUN_DELAY) -> None:
    client = StoreClient(Path(run_dir) / "store.sock", connect_timeout=30)

    async def purge():
        result, _ = await client.call("purge_blobs", {"grace": blob_grace})
        return result

    async def clean():
        return {"removed": clean_secondaries(run_dir)}

    try:
        await asyncio.gather(_every(blob_period, first_delay, "purge_blobs", purge, stop),
                             _every(clean_period, first_delay, "clean_secondaries", clean, stop))
    finally:
        await client.close()


async def fts_indexer(config, stop: asyncio.Event, store=None) -> None:
    """The full-text indexer (``stalwart.fts.run_indexer``) over the scheduler's store
    connection (its own when ``store`` is None); restarted after a failure so the
    scheduler's other tasks go on."""
    from .fts import run_indexer
    from .store import Store

    while not stop.is_set():
        own = store is None
        try:
            current = await Store.open(config, name=f"fts-{os.getpid()}") if own else store
            try:
                await run_indexer(current, stop)
            finally:
                if own:
                    await current.close()
        except Exception:
            log.exception("scheduler: full-text indexer failed, restarting in 5 s")
            try:
                await asyncio.wait_for(stop.wait(), 5.0)
            except asyncio.TimeoutError:
                pass


async def serve(ctx) -> None:
    """Entry point of the ``scheduler`` process kind: one store connection (one RocksDB
    secondary) shared by its tasks."""
    from .mailauth.reports import run_report_job   # DMARC aggregate reports, daily
    from .store import Store

    # Housekeeping and indexing wait for nobody: under load they yield the CPU to the
    # processes clients are waiting on (SMTP, IMAP, the store's commits).
    try:
        os.nice(SCHEDULER_NICE)
    except OSError:
        pass
    store = await Store.open(ctx.config, name=f"scheduler-{os.getpid()}")
    try:
        await asyncio.gather(run(Path(ctx.config.run_dir), ctx.shutdown),
                             run_report_job(ctx.config, ctx.shutdown, store=store),
                             fts_indexer(ctx.config, ctx.shutdown, store=store))
    finally:
        await store.close()
