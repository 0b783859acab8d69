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
  woken by store change events, in this process's own store connection); ``fts_purge``
  removes destroyed emails from the index every ``FTS_PURGE_PERIOD``.

On demand (``server.on-demand``; ``ctx.idle_exit`` set) the process is not always there.
The periodic jobs keep their rhythm across processes (``stalwart.periodic.Schedule`` in
``run/scheduler-schedule.json``). It leaves (``EXIT_IDLE``) after ``server.idle-exit``
without work (a job run, new mail to index, a poke) when no job is due within that time
and every account's index has caught up with its mail; it records in its heartbeat that
the master must start it ``WAKE_LEAD`` before the next job is due. New mail starts it
sooner: after a commit that created emails, the store process connects to
``run/scheduler.sock`` (``MailPoker``, at most once a second, trailing), the master's
socket, which the master polls while the scheduler is dormant and the scheduler accepts
(and drops) while it runs. Leaving, it stops accepting first, then checks the index again:
mail committed before that check is seen, a poke after it starts the next process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from .periodic import Schedule, every, install as install_schedule
from .store.client import StoreClient

log = logging.getLogger("stalwart.scheduler")

BLOB_PURGE_PERIOD = 6 * 3600.0
BLOB_PURGE_GRACE = 3600.0
SECONDARY_CLEAN_PERIOD = 600.0
#: On demand, the master removes the secondaries of the children it reaps; the scheduler's
#: sweep (the CLI's, a killed master's) can then be rarer.
SECONDARY_CLEAN_PERIOD_ON_DEMAND = 6 * 3600.0
FTS_PURGE_PERIOD = 6 * 3600.0
FIRST_RUN_DELAY = 30.0
#: The master starts a dormant scheduler this long before its next job is due.
WAKE_LEAD = 2.0
#: Socket and schedule file names in ``run_dir``.
SOCKET_NAME = "scheduler.sock"
SCHEDULE_NAME = "scheduler-schedule.json"
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
              first_delay: float = FIRST_RUN_DELAY, store=None) -> None:
    client = StoreClient(Path(run_dir) / "store.sock", connect_timeout=30)

    async def purge():
        result, _ = await client.call("purge_blobs", {"grace": blob_grace})
        return result

    async def clean():
        return {"removed": clean_secondaries(run_dir)}

    async def fts_purge():
        from .fts import purge_account

        purged = 0
        for account in store.list_accounts():
            store.refresh()
            purged += await purge_account(store, account["id"])
        return {"purged": purged}

    jobs = [_every(blob_period, first_delay, "purge_blobs", purge, stop),
            _every(clean_period, first_delay, "clean_secondaries", clean, stop)]
    if store is not None:
        jobs.append(_every(FTS_PURGE_PERIOD, first_delay, "fts_purge", fts_purge, stop))
    try:
        await asyncio.gather(*jobs)
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


def index_behind(store) -> list[int]:
    """Accounts whose full-text index has not caught up with their mail."""
    store.refresh()
    behind = []
    for account in store.list_accounts():
        state = store.account_state(account["id"])
        if state is not None and store.fts_state(account["id"])["next"] < state["next_email"]:
            behind.append(account["id"])
    return behind


class WakeServer:
    """Accepts (and closes) the connections of ``run/scheduler.sock``: each is a poke, and
    a poke is work (the indexer is woken by the store's events itself)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.last_poke = 0.0                 # monotonic
        self.pokes = 0
        self._server = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._handle, sock=self.sock)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pokes += 1
        self.last_poke = time.monotonic()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


class _IdleCheck:
    """``ctx.may_leave`` of the scheduler, and the wake-up time it leaves with."""

    def __init__(self, ctx, store, schedule: Schedule, wake: WakeServer | None) -> None:
        self.ctx, self.store, self.schedule, self.wake = ctx, store, schedule, wake
        self.decided_at = float("inf")
        self.last_mail = 0.0
        store.subscribe(self._on_change)

    def _on_change(self, account: int, change: int, types: list) -> None:
        if "Email" in types:
            self.last_mail = time.monotonic()

    def __call__(self) -> bool:
        idle_exit = float(self.ctx.idle_exit or 0.0)
        last = max(self.last_mail, self.wake.last_poke if self.wake else 0.0)
        if last > self.ctx.last_activity:
            self.ctx.last_activity = last
            if time.monotonic() - last < idle_exit:
                return False
        due = self.schedule.next_due()
        if due is not None and due <= time.time() + max(idle_exit, 2 * WAKE_LEAD):
            return False
        if index_behind(self.store):
            self.ctx.touch()                 # the indexer is at work
            return False
        self.decided_at = time.monotonic()
        return True

    def wake_at(self) -> float | None:
        now = time.time()
        poked = self.wake is not None and self.wake.last_poke >= self.decided_at
        if poked or self.last_mail >= self.decided_at or index_behind(self.store):
            return now
        due = self.schedule.next_due()
        return None if due is None else max(due - WAKE_LEAD, now)


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
    run_dir = Path(ctx.config.run_dir)
    on_demand = ctx.idle_exit is not None
    schedule = Schedule(run_dir / SCHEDULE_NAME)
    install_schedule(schedule)
    sock = ctx.control_socket
    wake = WakeServer(sock) if sock is not None else None
    store = await Store.open(ctx.config, name=f"scheduler-{os.getpid()}")
    try:
        if wake is not None:
            await wake.start()
        check = _IdleCheck(ctx, store, schedule, wake)
        if on_demand:
            ctx.may_leave = check
        clean = SECONDARY_CLEAN_PERIOD_ON_DEMAND if on_demand else SECONDARY_CLEAN_PERIOD
        reports_store = QueueWakingStore(store, run_dir / "queue.sock")
        await asyncio.gather(run(run_dir, ctx.shutdown, clean_period=clean, store=store),
                             run_report_job(ctx.config, ctx.shutdown, store=reports_store),
                             fts_indexer(ctx.config, ctx.shutdown, store=store))
        if ctx.idle_exited:
            if wake is not None:
                await wake.close()           # a poke from now on starts the next process
                wake = None
            ctx.set_wake_at(check.wake_at())
    finally:
        if wake is not None:
            await wake.close()
        install_schedule(None)
        await store.close()


class QueueWakingStore:
    """The store as the DMARC report job sees it: each report it queues (``queue_put``)
    wakes the queue process through ``run/queue.sock`` (with ``server.on-demand`` the
    queue may be dormant; otherwise it only finds the report sooner)."""

    def __init__(self, store, socket_path: str | os.PathLike) -> None:
        self._store = store
        self._socket_path = socket_path

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def queue_put(self, record: dict) -> int:
        from .queue.control import QueueUnavailable, control_request

        qid = await self._store.queue_put(record)
        try:
            await control_request(self._socket_path, "wake", timeout=10.0)
        except QueueUnavailable as exc:    # it polls when it runs; the master restarts it
            log.warning("scheduler: queued report %s, but the queue did not answer: %s",
                        qid, exc)
        return qid


class MailPoker:
    """In the store process: after a commit that created or changed emails, connect to
    ``run/scheduler.sock`` so that a dormant scheduler is started to index them (the
    master polls that socket). At most one poke per ``interval``; a commit within the
    interval schedules one at its end, so the last commit of a burst is always followed by
    a poke. A socket that is missing or full is ignored (the scheduler, when it runs,
    indexes every account anyway)."""

    def __init__(self, path: str | os.PathLike, *, interval: float = 1.0) -> None:
        self.path = str(path)
        self.interval = interval
        self.pokes = 0
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, events: dict) -> None:
        if self._timer is not None:
            return
        if not any("Email" in e.get("types", ()) for e in events.values()
                   if isinstance(e, dict)):
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last + self.interval - loop.time())
        self._timer = loop.call_later(delay, self._poke)

    def _poke(self) -> None:
        self._timer = None
        self._last = asyncio.get_running_loop().time()
        self.pokes += 1
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            s.connect(self.path)
        except OSError as exc:                # absent, refused, backlog full
            log.debug("scheduler poke not delivered: %s", exc)
        finally:
            s.close()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
