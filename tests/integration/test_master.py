"""stalwart-master driven as a real subprocess: supervision, reload, drain, notify, privileges.

Each test starts the daemon with the ``daemon`` fixture (conftest.py) on ports of
20000-20999. Pools run the real http kind (GET /healthz names kind, slot, pid and
generation) or, where a session-style protocol is needed, the test kind ``line_echo``
(conftest.py) standing in for the imap pool: a connection stays open across reloads and
each echoed line names the worker that answered it.
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import can_connect, read_proc, wait_for

pytestmark = pytest.mark.integration

ECHO = {"imap": "integration.conftest:line_echo"}


def healthz(port: int, conn: http.client.HTTPConnection | None = None) -> dict:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/healthz")
        resp = c.getresponse()
        assert resp.status == 200
        return json.loads(resp.read())
    finally:
        if conn is None:
            c.close()


class Line:
    """A line-based client of the line_echo kind."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rwb")

    def say(self, text: str) -> tuple[str, int, int, int]:
        """Send a line; return (kind, slot, generation, pid) of the worker that answered."""
        self.file.write(text.encode() + b"\n")
        self.file.flush()
        reply = self.file.readline().decode()
        assert reply.endswith(f": {text}\n"), reply
        kind, slot, generation, pid = reply.split(":", 1)[0].split()
        return kind, int(slot), int(generation), int(pid)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# ------------------------------------------------------------------ respawn

def test_sigkill_worker_respawns_in_same_slot_within_a_second(daemon):
    port = daemon.port()
    daemon.configure([("web", "http", port)], workers={"http": 2})
    daemon.start()
    before = daemon.wait_for(lambda: len(daemon.workers("http")) == 2 and daemon.workers("http"),
                             message="two http workers")
    victim = before[1]
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    after = daemon.wait_for(lambda: (w := daemon.workers("http").get(1)) and
                            w.pid != victim.pid and w, timeout=5, message="slot 1 respawned")
    assert time.monotonic() - killed_at < 1.0
    assert daemon.workers("http")[0].pid == before[0].pid          # the other slot untouched
    # The new worker serves: some connection lands on slot 1 with its pid.
    seen = daemon.wait_for(lambda: (h := healthz(port))["slot"] == 1 and h, timeout=10,
                           message="/healthz from slot 1")
    assert seen["pid"] == after.pid and seen["kind"] == "http"
    assert "exited unexpectedly (killed by SIGKILL)" in daemon.log()


def test_connection_queued_while_worker_dies_is_served_by_its_successor(daemon):
    """The slot's socket belongs to the master: its accept queue outlives the worker."""
    port = daemon.port()
    daemon.configure([("web", "http", port)], workers={"http": 1})
    daemon.start()
    worker = daemon.workers("http")[0]
    os.kill(worker.pid, signal.SIGSTOP)             # it can no longer accept
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        os.kill(worker.pid, signal.SIGKILL)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    answer = json.loads(body)
    assert answer["slot"] == 0 and answer["pid"] != worker.pid


def test_crash_loop_is_throttled(daemon):
    d = daemon.make(kinds={"pop3": "integration.conftest:crash_at_once"})
    web, pop = d.port(), d.port()
    d.configure([("web", "http", web), ("pop3", "pop3", pop)],
                server={"respawn-throttle": "100ms", "respawn-throttle-max": "800ms"})
    d.start()            # READY=1 does not wait for a slot that is crash-looping
    time.sleep(4.0)
    starts = d.log().count("started pop3 0 ")
    # 100ms, 200, 400, 800, 800, ... : about 8 starts in 4s; a tight loop would be hundreds
    assert 3 <= starts <= 10, d.log()
    assert "times in a row; next start in 0.8s" in d.log()
    assert healthz(web)["kind"] == "http"            # the rest of the server is unaffected
    assert d.stop() == 0


def test_stopped_worker_is_replaced_after_heartbeat_timeout(daemon):
    port = daemon.port()
    daemon.configure([("web", "http", port)], server={"heartbeat-timeout": "2s"})
    daemon.start()
    hung = daemon.workers("http")[0]
    os.kill(hung.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    new = daemon.wait_for(lambda: (w := daemon.workers("http").get(0)) and w.pid != hung.pid
                          and w, timeout=10, message="a replacement in slot 0")
    assert 2.0 <= time.monotonic() - stopped_at < 5.0
    assert f"http 0 (pid {hung.pid}, generation 1) has not reported" in daemon.log()
    assert healthz(port)["pid"] == new.pid


def test_blocked_event_loop_is_replaced(daemon):
    d = daemon.make(kinds={"pop3": "integration.conftest:serve_forever_blocking"})
    port = d.port()
    d.configure([("pop3", "pop3", port)], server={"heartbeat-timeout": "1s"})
    d.start()
    first = d.workers("pop3")[0]
    d.wait_for(lambda: (w := d.workers("pop3").get(0)) and w.pid != first.pid, timeout=10,
               message="the blocked worker replaced")
    assert "has not reported for" in d.log()


# ------------------------------------------------------------------ reload

def test_sighup_adds_and_removes_listeners_and_resizes_pools(daemon):
    d = daemon.make(kinds=ECHO)
    p1, p2 = d.port(), d.port()
    d.configure([("imap-a", "imap", p1)], server={"shutdown-timeout": "30s"})
    d.start()
    old = Line(p1)
    assert old.say("hello")[:3] == ("imap", 0, 1)
    gen1_pid = old.say("again")[3]

    # 1. add a listener and grow the pool to two workers
    d.configure([("imap-a", "imap", p1), ("imap-b", "imap", p2)], workers={"imap": 2},
                server={"shutdown-timeout": "30s"})
    d.reload()
    assert sorted(d.workers("imap")) == [0, 1]
    new = Line(p2)
    assert new.say("on b")[2] == 2                      # generation 2 serves the new port
    assert old.say("still here") == ("imap", 0, 1, gen1_pid)   # established: untouched
    d.wait_for(lambda: read_proc(gen1_pid).title.endswith("(draining)"),
               message="generation 1 draining")

    # 2. remove the first listener and shrink the pool back to one worker
    d.configure([("imap-b", "imap", p2)], workers={"imap": 1},
                server={"shutdown-timeout": "30s"})
    d.reload()
    d.wait_for(lambda: not can_connect(p1), timeout=10, message=f"port {p1} closed")
    assert list(d.workers("imap")) == [0]
    assert Line(p2).say("after")[2] == 3
    assert old.say("through two reloads") == ("imap", 0, 1, gen1_pid)
    assert new.say("b too")[2] == 2
    old.close()
    new.close()
    # once its connection is gone, the first generation's worker exits
    d.wait_for(lambda: read_proc(gen1_pid) is None or read_proc(gen1_pid).state == "Z",
               timeout=10, message="generation 1 gone")
    assert d.stop() == 0


def test_sighup_reloads_http_pool_with_new_generation(daemon):
    port = daemon.port()
    daemon.configure([("web", "http", port)], workers={"http": 1})
    daemon.start()
    assert healthz(port)["generation"] == 1
    store = daemon.singleton("store")
    daemon.configure([("web", "http", port)], workers={"http": 3})
    daemon.reload()
    assert sorted(daemon.workers("http")) == [0, 1, 2]
    seen = {healthz(port)["generation"] for _ in range(10)}
    assert seen == {2}
    assert daemon.singleton("store").pid == store.pid       # storage unchanged: kept


def test_sighup_with_broken_config_keeps_running(daemon):
    port = daemon.port()
    daemon.configure([("web", "http", port)])
    daemon.start()
    before = daemon.workers("http")[0].pid
    daemon.config_path.write_text(daemon.config_path.read_text() + "\n[server]\nbogus = 1\n")
    daemon.reload()                       # RELOADING=1 then READY=1 (the old config)
    assert "reload failed: still running the previous configuration" in daemon.log()
    assert str(daemon.config_path) in daemon.log()
    assert daemon.workers("http")[0].pid == before
    assert healthz(port)["generation"] == 1


# ------------------------------------------------------------------ stop

def test_sigterm_with_open_connections_exits_cleanly_within_deadline(daemon):
    d = daemon.make(kinds=ECHO)
    web, imap = d.port(), d.port()
    d.configure([("web", "http", web), ("imap", "imap", imap)],
                server={"shutdown-timeout": "2s"})
    d.start()
    held = [Line(imap) for _ in range(3)]
    for c in held:
        c.say("hi")
    d.wait_for(lambda: "[3 conns]" in d.workers("imap")[0].title, message="3 conns in title")
    http_conn = http.client.HTTPConnection("127.0.0.1", web, timeout=5)
    healthz(web, http_conn)                 # an idle keep-alive connection
    kids = [p.pid for p in d.processes()]
    started = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    elapsed = time.monotonic() - started
    assert elapsed < 2.0 + 1.0 + 2.0, elapsed      # timeout + kill grace + slack
    i = d.wait_notify("STOPPING=1")
    assert i >= 0
    assert all(read_proc(pid) is None for pid in kids)
    for c in held:
        assert c.file.readline() == b""         # closed by the server after the deadline
    http_conn.close()


# ------------------------------------------------------------------ config errors

def test_broken_config_names_file_and_key(daemon):
    daemon.configure([("web", "http", daemon.port())], workers={"http": 0})
    proc = subprocess.run(daemon.argv("--config", str(daemon.config_path)),
                          capture_output=True, text=True, timeout=60, cwd=daemon.root)
    assert proc.returncode == 1
    assert f"{daemon.config_path}: server.workers.http: " in proc.stderr

    check = subprocess.run(daemon.argv("--check-config", str(daemon.config_path)),
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1
    assert f"{daemon.config_path}: server.workers.http: " in check.stderr

    daemon.configure([("web", "http", daemon.port())])
    check = subprocess.run(daemon.argv("--check-config", "--config", str(daemon.config_path)),
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "configuration OK" in check.stdout


# ------------------------------------------------------------------ sd_notify

def test_sd_notify_ready_reloading_stopping(daemon):
    port = daemon.port()
    daemon.configure([("web", "http", port)])
    daemon.start()                           # waits for READY=1 on an abstract socket
    ready = daemon.wait_notify("READY=1")
    assert any(line.startswith("STATUS=Serving http x1") for line in
               daemon.notifications[ready])
    daemon.reload()
    reloading = daemon.wait_notify("RELOADING=1", since=ready + 1)
    usec = [line for line in daemon.notifications[reloading] if line.startswith("MONOTONIC_USEC=")]
    assert usec and abs(int(usec[0].split("=")[1]) / 1e6 - time.monotonic()) < 60
    assert daemon.wait_notify("READY=1", since=reloading + 1) > reloading
    assert daemon.stop() == 0
    daemon.wait_notify("STOPPING=1", since=reloading + 1)
    # the workers never saw NOTIFY_SOCKET: only the master talks to systemd
    assert all("NOTIFY_SOCKET=" not in " ".join(m) for m in daemon.notifications)


# ------------------------------------------------------------------ privileges

TEST_USER = "stalwart-test"


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                        "--shell", "/usr/sbin/nologin", TEST_USER], check=True)
        return pwd.getpwnam(TEST_USER)


def test_workers_run_as_the_configured_user(daemon):
    port = daemon.port()
    if os.geteuid() != 0:
        # Not root: run-as naming another user is ignored with a warning.
        other = next(p for p in pwd.getpwall() if p.pw_uid != os.geteuid())
        daemon.configure([("web", "http", port)], run_as=(other.pw_name, None))
        daemon.start()
        assert "was not started as root" in daemon.log()
        assert all(p.uid == os.geteuid() for p in daemon.processes())
        return
    user = _ensure_user()
    group = grp.getgrgid(user.pw_gid).gr_name
    # pytest's temporary root is private to root (0700): the master refuses a state
    # directory the workers could not reach, and names the culprit.
    daemon.configure([("web", "http", port)], run_as=(TEST_USER, group))
    refused = subprocess.run(daemon.argv("--config", str(daemon.config_path)),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert f"is not searchable by {TEST_USER!r}" in refused.stdout + refused.stderr

    root = Path(tempfile.mkdtemp(prefix="stalwart-runas-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        _check_run_as(daemon.make(kinds=ECHO, root=root), user)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check_run_as(daemon, user: pwd.struct_passwd) -> None:
    web, imap = daemon.port(), daemon.port()
    # The memory store: no store process. (This machine's Python lives under /root,
    # mode 0700, so an unprivileged process can only use modules the master preloaded;
    # the store imports more at run time. A packaged install has Python under /usr.)
    daemon.configure([("web", "http", web), ("imap", "imap", imap)],
                     run_as=(TEST_USER, grp.getgrgid(user.pw_gid).gr_name),
                     storage={role: "memory" for role in ("data", "blob", "lookup", "fts")})
    daemon.start()
    procs = daemon.processes()
    assert {p.title.split(" [")[0] for p in procs} == {"stalwart: http worker 0",
                                                      "stalwart: imap worker 0"}
    for p in procs:
        assert (p.uid, p.gid) == (user.pw_uid, user.pw_gid), p
    assert read_proc(daemon.pid).uid == 0          # the master keeps root to bind on reload
    for d in (daemon.base_dir, daemon.base_dir / "run"):
        assert d.stat().st_uid == user.pw_uid
    admin = (daemon.base_dir / "run" / "admin.sock").stat()
    assert stat.S_ISSOCK(admin.st_mode) and stat.S_IMODE(admin.st_mode) == 0o600
    assert admin.st_uid == user.pw_uid
    assert healthz(web)["kind"] == "http"
    assert Line(imap).say("who")[0] == "imap"
    assert daemon.stop() == 0


# ------------------------------------------------------------------ titles and logs

def test_process_titles_and_connection_count(daemon):
    d = daemon.make(kinds=ECHO)
    imap = d.port()
    d.configure([("imap", "imap", imap)], workers={"imap": 2})
    d.start()
    titles = sorted(p.title for p in d.processes())
    assert titles == ["stalwart: imap worker 0 [0 conns]", "stalwart: imap worker 1 [0 conns]",
                      "stalwart: queue", "stalwart: scheduler", "stalwart: store"]
    assert read_proc(d.pid).title == "stalwart: master"
    clients = [Line(imap) for _ in range(6)]
    per_slot: dict[int, int] = {}
    for c in clients:
        slot = c.say("x")[1]
        per_slot[slot] = per_slot.get(slot, 0) + 1
    for slot, count in per_slot.items():
        d.wait_for(lambda: f"[{count} conns]" in d.workers("imap")[slot].title,
                   message=f"slot {slot} showing {count} conns")
    for c in clients:
        c.close()
    d.wait_for(lambda: all("[0 conns]" in p.title for p in d.workers("imap").values()),
               message="counts back to 0")


def test_sigusr1_reopens_log_files_in_master_and_children(daemon):
    port = daemon.port()
    logs = daemon.root / "logs"
    daemon.configure([("web", "http", port)],
                     tracer={"type": "log", "path": str(logs), "level": "info"})
    daemon.start()
    current = logs / "stalwart.log"
    assert "master: ready" in current.read_text()
    rotated = logs / "stalwart.log.1"
    current.rename(rotated)
    daemon.send_signal(signal.SIGUSR1)
    wait_for(lambda: current.exists() and "log files reopened" in current.read_text(),
             message="the master writing to the new file")
    time.sleep(0.5)                          # the children handle SIGUSR1 too
    assert daemon.stop() == 0
    text = current.read_text()
    assert "store: store: closed after" in text         # a child's line in the new file
    assert "store: closed after" not in rotated.read_text()


def test_embedded_default_prints_login_once(daemon, capsys):
    """The embedded default binds fixed ports (8080, 2525, ...) outside the test range, so
    its start-up is checked through --check-config and the banner function it calls."""
    proc = subprocess.run(daemon.argv("--check-config"), cwd=daemon.root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "<embedded default>: configuration OK" in proc.stdout
    secret_file = daemon.root / "var" / "etc" / "admin-secret"
    assert secret_file.read_text().startswith("$argon2")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    from stalwart.config import embedded_default
    from stalwart.master.main import _welcome
    config = embedded_default(daemon.root / "other")
    _welcome(config)
    first = capsys.readouterr().out
    _welcome(embedded_default(daemon.root / "other"))
    later = capsys.readouterr().out
    assert config.first_run_secret in first and "http://127.0.0.1:8080/" in first
    assert "stalwart-cli" in first
    assert config.first_run_secret not in later
    assert str(daemon.root / "other" / "etc" / "admin-secret") in later
