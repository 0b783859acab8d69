"""The pieces that let the queue and the scheduler sleep: the heartbeat's wake-up time, the
periodic schedule kept across processes, the store's poke of the scheduler, the TLS-RPT
counts kept between queue processes, the master's view of a dormant singleton."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stalwart.periodic import Schedule, every, install
from stalwart.worker.heartbeat import Heartbeat


def test_heartbeat_carries_the_wake_up_time_across_fork():
    hb = Heartbeat()
    assert hb.wake_at() is None
    pid = os.fork()
    if pid == 0:                                    # the child records, then exits
        hb.beat()
        hb.set_wake_at(1234567890.5)
        os._exit(0)
    os.waitpid(pid, 0)
    assert hb.wake_at() == 1234567890.5
    assert hb.read().at > 0                         # the beat record is untouched
    hb.set_wake_at(None)
    assert hb.wake_at() is None
    hb.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_schedule_keeps_the_rhythm_of_jobs_across_processes(tmp_path):
    path = tmp_path / "schedule.json"
    clock = Clock(1000.0)
    first = Schedule(path, clock=clock)
    assert first.next_due() is None
    assert first.first_delay("purge", 3600, 30) == 30          # never ran: the first delay
    assert first.next_due() == 1030
    clock.now = 1030
    first.started("purge")
    assert first.next_due() == 1030                            # running: due now
    clock.now = 1031
    first.finished("purge", 3600)
    assert first.next_due() == 4631
    # A later process continues the rhythm instead of running it 30 s after its start.
    clock.now = 2000
    second = Schedule(path, clock=clock)
    assert second.first_delay("purge", 3600, 30) == pytest.approx(2631)
    assert second.first_delay("reports", 600, 60) == 60        # a job it never saw
    assert second.next_due() == 2060
    # Overdue while no process ran: at once.
    clock.now = 9000
    third = Schedule(path, clock=clock)
    assert third.first_delay("purge", 3600, 30) == 0
    # A damaged file is not fatal.
    path.write_text("{not json")
    assert Schedule(path, clock=clock).first_delay("purge", 3600, 30) == 30


def test_every_with_a_schedule_runs_a_job_due_from_an_earlier_process_at_once(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps({"job": time.time() - 5}))     # due 5 s ago

    async def main() -> list[float]:
        stop = asyncio.Event()
        runs: list[float] = []

        async def job() -> None:
            runs.append(time.time())
            stop.set()

        install(Schedule(path))
        try:
            await asyncio.wait_for(every(3600, job, stop, first=30, name="job"), 5)
        finally:
            install(None)
        return runs

    started = time.time()
    runs = asyncio.run(main())
    assert len(runs) == 1 and runs[0] - started < 2             # not after `first` = 30 s
    saved = json.loads(path.read_text())
    assert saved["job"] == pytest.approx(runs[0] + 3600, abs=5)


def test_mail_poker_pokes_after_email_commits_at_most_once_a_second(tmp_path):
    from stalwart.scheduler import MailPoker

    path = tmp_path / "scheduler.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    listener.setblocking(False)

    def accepted() -> int:
        n = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    async def main() -> list[int]:
        poker = MailPoker(path, interval=0.3)
        seen = []
        poker({1: {"change": 3, "types": ["Mailbox"]}})          # no email: no poke
        await asyncio.sleep(0.05)
        seen.append(accepted())
        poker({1: {"change": 4, "types": ["Email", "Mailbox"]}})  # the first: at once
        await asyncio.sleep(0.05)
        seen.append(accepted())
        for _ in range(10):                                       # a burst: one more,
            poker({2: {"change": 5, "types": ["Email"]}})         # at the interval's end
            await asyncio.sleep(0.01)
        seen.append(accepted())
        await asyncio.sleep(0.4)
        seen.append(accepted())
        await asyncio.sleep(0.4)
        seen.append(accepted())
        return seen

    try:
        assert asyncio.run(main()) == [0, 1, 0, 1, 0]
    finally:
        listener.close()


def test_mail_poker_ignores_a_missing_socket(tmp_path):
    from stalwart.scheduler import MailPoker

    async def main() -> int:
        poker = MailPoker(tmp_path / "absent.sock", interval=0.0)
        poker({1: {"change": 1, "types": ["Email"]}})
        await asyncio.sleep(0.05)
        return poker.pokes

    assert asyncio.run(main()) == 1


def test_tls_report_counts_survive_a_queue_restart(tmp_path):
    from stalwart.mailauth.tlsrpt import PolicyKey, TlsRptRecorder
    from stalwart.queue.server import load_tls_counts, save_tls_counts

    clock = Clock(86400 * 20000 + 500)
    recorder = TlsRptRecorder(clock=clock)
    sts = PolicyKey("sts", ("version: STSv1", "mode: enforce"), ("mx.example.net",))
    recorder.success("example.net", sts)
    recorder.success("example.net", sts)
    recorder.failure("example.net", sts, "certificate-expired", mx_host="mx.example.net",
                     receiving_ip="192.0.2.1", sending_ip="192.0.2.9", info="expired")
    recorder.success("other.test", PolicyKey())
    path = tmp_path / "counts.json"
    save_tls_counts(recorder, path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    again = TlsRptRecorder(clock=clock)
    assert load_tls_counts(again, path) == 2
    assert not path.exists()                        # read once
    day = 86400 * 20000
    assert again.summary(day, "example.net") == {"success": 2, "failure": 1}
    assert again.summary(day, "other.test") == {"success": 1, "failure": 0}
    assert again.days == recorder.days
    # A damaged file is dropped with a warning, never a crash.
    path.write_text("[1, 2")
    assert load_tls_counts(TlsRptRecorder(clock=clock), path) == 0
    assert not path.exists()
    path.write_text(json.dumps({"entries": [{"day": "x"}]}))
    assert load_tls_counts(TlsRptRecorder(clock=clock), path) == 0


def test_deferred_kinds_are_found_without_importing_their_packages():
    """The master defers on-demand kinds; looking them up must not import their package
    (a package ``__init__`` can import most of it: the queue's brings dns, email, h11)."""
    code = """
import sys
from stalwart.worker import registry
kinds = registry.preload(["queue", "scheduler", "imap", "http"],
                         deferred=("queue", "scheduler", "imap", "http"))
assert sorted(kinds) == ["http", "imap", "queue", "scheduler"], kinds
assert all(isinstance(k, registry.Deferred) for k in kinds.values())
loaded = [m for m in ("stalwart.queue", "stalwart.protocols.imap", "stalwart.http",
                      "stalwart.scheduler", "dns.resolver") if m in sys.modules]
assert not loaded, loaded
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_dormant_singleton_is_started_at_its_time_or_when_its_socket_is_readable(tmp_path):
    """The arbiter's bookkeeping for an on-demand singleton, without forking."""
    from stalwart.master.arbiter import Arbiter
    from stalwart.master.pools import Service, Slot
    from stalwart.master.sockets import listen_unix

    class Config:
        run_dir = tmp_path

        def get(self, key):
            return {"server.heartbeat-timeout": 30.0, "server.idle-exit": 60.0}[key]

    arbiter = Arbiter.__new__(Arbiter)
    arbiter.config = Config()
    arbiter.workers = {}
    arbiter.pending = set()
    arbiter.stopping = False
    arbiter.store_booted = True
    arbiter.admin_sock = None
    sock = listen_unix(tmp_path / "queue.sock")
    arbiter.control_socks = {"queue": (tmp_path / "queue.sock", sock)}
    slot = Slot(0, wake_at=time.time() + 50)
    arbiter.services = {"queue": Service("queue", True, None, [], [slot], on_demand=True)}
    started = []
    arbiter.spawn = lambda service, s: started.append(service.kind)
    try:
        now = time.monotonic()
        assert arbiter.dormant_sockets(now) == {sock.fileno(): ("queue", 0)}
        assert 0.01 <= arbiter.next_timeout() <= 1.0
        arbiter.start_missing(now)
        assert started == []                                  # not yet its time
        slot.wake_at = time.time() - 1
        arbiter.start_missing(now)
        assert started == ["queue"] and slot.wake_at is None  # its time came
        started.clear()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(tmp_path / "queue.sock"))          # a client while dormant
        arbiter.pipe = os.pipe()
        arbiter.signals = []
        arbiter.wait(0.5)
        assert ("queue", 0) in arbiter.pending
        arbiter.start_missing(time.monotonic())
        assert started == ["queue"] and not arbiter.pending
        client.close()
        for fd in arbiter.pipe:
            os.close(fd)
    finally:
        sock.close()


def test_reports_queued_by_the_scheduler_wake_the_queue(tmp_path):
    from stalwart.queue.control import ControlServer
    from stalwart.scheduler import QueueWakingStore

    class Queue:
        woken = 0

        def wake(self) -> None:
            Queue.woken += 1

    class Store:
        blobs = "the blobs"

        async def queue_put(self, record: dict) -> int:
            return 7

    async def main() -> tuple[int, str, int]:
        server = ControlServer(Queue(), tmp_path / "queue.sock")
        await server.start()
        try:
            store = QueueWakingStore(Store(), tmp_path / "queue.sock")
            qid = await store.queue_put({"due": 0})
            return qid, store.blobs, Queue.woken
        finally:
            await server.close()

    assert asyncio.run(main()) == (7, "the blobs", 1)
    # No queue answering: the report stays queued (the id is returned), nothing raises.
    absent = QueueWakingStore(Store(), tmp_path / "absent.sock")
    assert asyncio.run(absent.queue_put({"due": 0})) == 7


def test_a_reload_keeps_a_dormant_singletons_time_and_leaves_pool_slots_to_clients():
    from stalwart.master.pools import Slot, Worker

    running = Worker(1, "queue", 0, 1, None, 0.0)
    dormant = Slot(0, wake_at=1234.0)
    new = Slot(0)
    new.inherit(dormant, singleton=True)
    assert new.wake_at == 1234.0                  # its timer survives the reload
    busy = Slot(0, worker=running)
    new = Slot(0)
    new.inherit(busy, singleton=True)
    assert new.wake_at == 0.0                     # started once the old one has left
    pool = Slot(0, worker=Worker(2, "imap", 0, 1, None, 0.0))
    new = Slot(0)
    new.inherit(pool)
    assert new.wake_at is None                    # a pool worker waits for a client
