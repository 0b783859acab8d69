"""The queue and the scheduler started on demand (``server.on-demand``).

Both singletons start at boot and leave once idle with nothing due; the master owns their
control sockets (``run/queue.sock``, ``run/scheduler.sock``) and starts them again when a
client connects there, or at the time they recorded when leaving. Each test checks both
sides: which processes exist (the log and the process list) and that no mail waits because
a process slept.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from .configs import certificate, smarthost
from .conftest import wait_for
from .certs import daemon_certificate
from .test_queue_daemon import Mail, Sink

pytestmark = pytest.mark.integration


class OnDemandMail(Mail):
    """``Mail`` (smarthost sink, submission, CLI) on a daemon with on-demand singletons."""

    def __init__(self, daemon, sink: Sink, *, retry: str = "1h", idle_exit: str = "1s") -> None:
        self.daemon = daemon
        self.sink = sink
        self.submission = daemon.port()
        daemon_certificate(daemon.root)
        daemon.configure(
            listeners=[("submission", "smtp", self.submission), ("http", "http", daemon.port())],
            server={"on-demand": True, "idle-exit": idle_exit},
            extra=f"""
[queue]
retry = ["{retry}"]
poll-interval = "30s"

{smarthost(sink.port)}

{certificate(daemon.root)}
""")

    def setup_accounts(self) -> None:
        self.cli("domain", "create", "example.org")
        self.cli("account", "create", "jane", "--email", "jane@example.org", "--password", "-",
                 stdin=b"jane-password\n")
        self.cli("account", "create", "bob", "--email", "bob@example.org")

    def dormant(self, kind: str) -> bool:
        """No process of ``kind``, and the master has reaped the last one (said so)."""
        left = len(re.findall(rf"{kind} 0 \(pid \d+, generation \d+\) left after",
                              self.daemon.log()))
        return self.daemon.singleton(kind) is None and left == self.starts(kind)

    def wait_dormant(self, kind: str, timeout: float = 30) -> None:
        self.daemon.wait_for(lambda: self.dormant(kind), timeout=timeout,
                             message=f"the {kind} process to leave")

    def starts(self, kind: str) -> int:
        return len(re.findall(rf"started {kind} 0 \(pid", self.daemon.log()))


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.release_stalled()
    s.stop()


def start(daemon, sink, **kw) -> OnDemandMail:
    m = OnDemandMail(daemon, sink, **kw)
    daemon.start()
    m.setup_accounts()
    return m


def test_queue_and_scheduler_start_at_boot_and_leave_when_idle(daemon, sink):
    m = start(daemon, sink)
    m.wait_dormant("queue")
    m.wait_dormant("scheduler")
    assert daemon.singleton("store") is not None               # the store always runs
    log = daemon.log()
    assert "queue 0 (pid" in log and "left after 1s idle with nothing due" in log
    assert "exited unexpectedly" not in log
    # The sockets are the master's: they exist while nobody serves them.
    run = daemon.base_dir / "run"
    assert (run / "queue.sock").is_socket() and (run / "scheduler.sock").is_socket()
    assert daemon.stop() == 0
    assert not (run / "queue.sock").exists()


def test_mail_queued_while_the_queue_is_dormant_is_delivered(daemon, sink):
    m = start(daemon, sink)
    m.wait_dormant("queue")
    before = m.starts("queue")
    m.submit(["carol@remote.test"], "while-dormant")
    wait_for(lambda: sink.messages, timeout=20, message="the sink to receive the mail")
    assert sink.messages[0].rcpt_to == ["carol@remote.test"]
    assert m.starts("queue") == before + 1                     # the SMTP worker's wake-up
    wait_for(lambda: m.queued() == [], timeout=10, message="an empty queue")
    m.wait_dormant("queue")                                    # and it leaves again


def test_a_retry_due_while_dormant_restarts_the_queue_in_time(daemon, sink):
    m = start(daemon, sink, retry="12s")
    sink.defer.set()
    m.submit(["defer-x@remote.test"], "retry-later")
    queued = wait_for(lambda: [q for q in m.queued() if q["attempts"]], timeout=20,
                      message="a deferred message")
    first_try = time.time()
    due = queued[0]["due"]
    assert due > first_try + 5
    m.wait_dormant("queue")                          # it left with the entry due later
    assert re.search(r"queue 0 \(pid \d+, generation 1\) left after 1s idle with nothing "
                     r"due; next start at ", daemon.log())
    sink.defer.clear()
    starts = m.starts("queue")
    wait_for(lambda: sink.messages, timeout=40, message="the retry to reach the sink")
    delivered = time.time()
    assert m.starts("queue") == starts + 1           # the master's timer, no client
    assert due - 1 <= delivered <= due + 15, (due, delivered)
    wait_for(lambda: m.queued() == [], timeout=10, message="an empty queue")


def test_cli_queue_commands_while_the_queue_is_dormant(daemon, sink):
    m = start(daemon, sink)
    sink.defer.set()
    m.submit(["defer-a@remote.test"], "cli-a")
    m.submit(["defer-b@remote.test"], "cli-b")

    def deferred():
        queued = m.queued()
        return queued if len(queued) == 2 and all(q["attempts"] for q in queued) else None

    queued = wait_for(deferred, timeout=20, message="two deferred messages")
    by_rcpt = {q["recipients"][0]["address"]: q["id"] for q in queued}
    m.wait_dormant("queue")                          # next try in an hour: it sleeps
    listing = m.cli("queue", "list").stdout.decode()  # read from the store
    assert "defer-a@remote.test" in listing and "defer-b@remote.test" in listing
    assert m.dormant("queue")
    sink.defer.clear()
    m.cli("queue", "retry", str(by_rcpt["defer-a@remote.test"]))    # wakes it, answered
    wait_for(lambda: sink.messages, timeout=20, message="the retried message")
    assert sink.messages[0].rcpt_to == ["defer-a@remote.test"]
    m.wait_dormant("queue")
    m.cli("queue", "cancel", str(by_rcpt["defer-b@remote.test"]))
    assert [q["id"] for q in m.queued()] == []
    assert len(sink.messages) == 1


def _index_state(daemon, account: str) -> tuple[int, int]:
    """(the index watermark, the next email id) of ``account``, read from the store."""
    from stalwart.config import load
    from stalwart.store.api import Store

    async def read() -> tuple[int, int]:
        store = await Store.open(load(daemon.config_path), name=f"test-{os.getpid()}")
        try:
            acc = store.get_account(account)["id"]
            return store.fts_state(acc)["next"], store.account_state(acc)["next_email"]
        finally:
            await store.close()
    return asyncio.run(read())


def _scheduler_timer(daemon) -> float:
    """The wall-clock time the last departed scheduler asked to be started at."""
    def departures() -> list[str]:
        return re.findall(r"scheduler 0 \(pid \d+, generation \d+\) left after \S+ idle "
                          r"with nothing due; next start at (\S+ \S+) UTC", daemon.log())
    # The process may be gone a moment before the master has reaped it and said so.
    found = daemon.wait_for(departures, timeout=10, message="the scheduler's departure")
    return time.mktime(time.strptime(found[-1], "%Y-%m-%d %H:%M:%S")) - time.timezone


def test_mail_delivered_while_the_scheduler_is_dormant_gets_indexed(daemon, sink):
    m = start(daemon, sink)
    m.wait_dormant("scheduler")
    timer = _scheduler_timer(daemon)                 # its first jobs, 30 s after boot
    starts = m.starts("scheduler")
    m.submit(["bob@example.org"], "index-me")
    assert len(m.inbox("bob")) == 1
    # The store pokes run/scheduler.sock after the commit: the master starts the
    # scheduler, which indexes bob's mail (well before its timer), then leaves again.
    wait_for(lambda: _index_state(daemon, "bob")[0] >= _index_state(daemon, "bob")[1] > 0,
             timeout=max(timer - time.time() - 1, 1), message="bob's mail to be indexed")
    assert time.time() < timer
    assert m.starts("scheduler") >= starts + 1
    m.wait_dormant("scheduler")


def test_the_scheduler_is_started_again_when_its_next_job_is_due(daemon, sink):
    m = start(daemon, sink)
    m.wait_dormant("scheduler")
    wake = _scheduler_timer(daemon)
    starts = m.starts("scheduler")
    assert wake > time.time()
    daemon.wait_for(lambda: m.starts("scheduler") > starts, timeout=wake - time.time() + 15,
                    message="the scheduler's timer")
    assert time.time() >= wake - 1
    # It ran its due jobs (their first run after boot), then left again.
    daemon.wait_for(lambda: "scheduler: purge_blobs done" in daemon.log(), timeout=30,
                    message="the blob purge")
    m.wait_dormant("scheduler", timeout=40)
    schedule = daemon.base_dir / "run" / "scheduler-schedule.json"
    assert "scheduler: purge_blobs" in schedule.read_text()


def test_reload_keeps_a_dormant_queue_dormant_and_reachable(daemon, sink):
    m = start(daemon, sink)
    m.wait_dormant("queue")
    starts = m.starts("queue")
    daemon.reload()
    time.sleep(2)
    assert m.dormant("queue") and m.starts("queue") == starts
    result = m.cli("queue", "retry", "99", check=False)       # wakes the new generation
    assert result.returncode != 0 and b"does not exist" in result.stderr, result
    assert re.search(r"started queue 0 \(pid \d+, generation 2\)", daemon.log())


def test_a_killed_queue_is_restarted_even_on_demand(daemon, sink):
    m = start(daemon, sink, idle_exit="30s")
    queue = daemon.wait_for(lambda: daemon.singleton("queue"), timeout=10)
    os.kill(queue.pid, 9)
    daemon.wait_for(lambda: (p := daemon.singleton("queue")) is not None and p.pid != queue.pid,
                    timeout=15, message="a new queue process")
    assert "exited unexpectedly" in daemon.log()
    m.submit(["dave@remote.test"], "after-crash")              # and it delivers
    wait_for(lambda: sink.messages, timeout=20, message="the sink to receive the mail")


def test_no_control_sockets_without_a_queue_or_scheduler(daemon):
    """A memory store runs no store process, hence no queue and no scheduler: their
    sockets must not exist (a client then fails at once instead of waiting for nobody)."""
    daemon.configure([("http", "http", daemon.port())], server={"on-demand": True},
                     storage={role: "memory" for role in ("data", "blob", "lookup", "fts")})
    daemon.start()
    run = daemon.base_dir / "run"
    assert (run / "admin.sock").is_socket()
    assert not (run / "queue.sock").exists() and not (run / "scheduler.sock").exists()
