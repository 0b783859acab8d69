"""Workers started on demand (``server.on-demand``): the Postfix/Dovecot way of keeping an
idle server small.

A dormant slot has no process; the master polls its listening sockets and forks the
worker when a client connects; a worker without connections for ``server.idle-exit``
leaves (exit status 3, not a crash) and its slot is dormant again. Each test checks both
sides: which processes exist (``daemon.workers``) and that clients are served.
"""

from __future__ import annotations

import http.client
import imaplib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from .conftest import REPO

pytestmark = pytest.mark.integration

ON_DEMAND = {"on-demand": True, "idle-exit": "1s"}


def healthz(conn: http.client.HTTPConnection) -> dict:
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200
    return json.loads(resp.read())


def no_workers(daemon, kind: str) -> bool:
    return not daemon.workers(kind)


def test_worker_starts_with_the_first_client_and_leaves_when_idle(daemon):
    port = daemon.port()
    daemon.configure([("http", "http", port)], server=ON_DEMAND)
    daemon.start()
    # start() probed the port: that woke the pool once; with no client it leaves again.
    daemon.wait_for(lambda: "left after 1s without connections" in daemon.log(), timeout=15)
    daemon.wait_for(lambda: no_workers(daemon, "http"), timeout=15)
    assert daemon.singleton("store") is not None          # singletons always run

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    first = healthz(conn)                                 # forked for this client
    assert [p.pid for p in daemon.workers("http").values()] == [first["pid"]]
    time.sleep(2.5)                                       # > idle-exit, connection open
    assert healthz(conn)["pid"] == first["pid"], "a worker with a client must not leave"
    conn.close()
    daemon.wait_for(lambda: no_workers(daemon, "http"), timeout=15)

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    second = healthz(conn)
    conn.close()
    assert second["pid"] != first["pid"] and second["slot"] == first["slot"] == 0
    # An idle exit is not a crash: nothing was throttled or logged as an error.
    assert "exited unexpectedly" not in daemon.log()
    assert daemon.stop() == 0


def test_imap_client_wakes_a_dormant_pool_and_is_served(daemon):
    port = daemon.port()
    daemon.configure([("imap", "imap", port)], server=ON_DEMAND)
    daemon.start()
    daemon.wait_for(lambda: "left after" in daemon.log(), timeout=15)
    daemon.wait_for(lambda: no_workers(daemon, "imap"), timeout=15)
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    assert b"IMAP4rev2" in client.welcome or "IMAP4REV2" in client.capabilities
    assert len(daemon.workers("imap")) == 1
    assert client.noop()[0] == "OK"
    client.logout()
    daemon.wait_for(lambda: no_workers(daemon, "imap"), timeout=15)


def test_many_clients_arriving_at_once_are_all_served(daemon):
    port = daemon.port()
    daemon.configure([("http", "http", port)], server=ON_DEMAND, workers={"http": 2})
    daemon.start()
    daemon.wait_for(lambda: "left after" in daemon.log(), timeout=15)
    daemon.wait_for(lambda: no_workers(daemon, "http"), timeout=15)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    pids = set()
    for s in socks:
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data[:200]
        pids.add(json.loads(body)["pid"])
    assert 1 <= len(pids) <= 2                        # at most one worker per slot


def test_killed_on_demand_worker_is_replaced_for_the_next_client(daemon):
    port = daemon.port()
    daemon.configure([("http", "http", port)], server={**ON_DEMAND, "idle-exit": "30s"})
    daemon.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    pid = healthz(conn)["pid"]
    conn.close()
    os.kill(pid, signal.SIGKILL)
    daemon.wait_for(lambda: pid not in {p.pid for p in daemon.workers("http").values()},
                    timeout=10)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert healthz(conn)["pid"] != pid                 # after the throttle (200 ms here)
    conn.close()
    assert "exited unexpectedly" in daemon.log()


def test_admin_socket_wakes_the_http_pool(daemon):
    port = daemon.port()
    daemon.configure([("http", "http", port)], server=ON_DEMAND)
    daemon.start()
    daemon.wait_for(lambda: "left after" in daemon.log(), timeout=15)
    daemon.wait_for(lambda: no_workers(daemon, "http"), timeout=15)
    proc = subprocess.run(
        [sys.executable, "-m", "stalwart.cli.main", "--config", str(daemon.config_path),
         "domain", "create", "ondemand.test"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "stalwart.cli.main", "--config", str(daemon.config_path),
         "domain", "list"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "ondemand.test" in proc.stdout, proc.stderr


def test_eager_pools_stay_up_without_clients(daemon):
    """A config file that does not ask for on-demand keeps every slot filled."""
    port = daemon.port()
    daemon.configure([("http", "http", port)], server={"idle-exit": "1s"})
    daemon.start()
    time.sleep(3)
    assert len(daemon.workers("http")) == 1
    assert "left after" not in daemon.log()


def test_sigterm_with_dormant_pools_exits_cleanly(daemon):
    port = daemon.port()
    daemon.configure([("http", "http", port), ("imap", "imap", daemon.port())],
                     server=ON_DEMAND)
    daemon.start()
    daemon.wait_for(lambda: daemon.log().count("left after") >= 2, timeout=15)
    daemon.wait_for(lambda: no_workers(daemon, "http") and no_workers(daemon, "imap"),
                    timeout=15)
    assert daemon.stop() == 0


def test_reload_with_dormant_pools_keeps_serving(daemon):
    port = daemon.port()
    daemon.configure([("http", "http", port)], server=ON_DEMAND)
    daemon.start()
    daemon.wait_for(lambda: "left after" in daemon.log(), timeout=15)
    daemon.wait_for(lambda: no_workers(daemon, "http"), timeout=15)
    daemon.reload()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert healthz(conn)["generation"] == 2
    conn.close()


def test_the_scheduler_runs_at_a_lower_priority(daemon):
    """Indexing and housekeeping yield the CPU to the processes clients wait on."""
    daemon.configure([("http", "http", daemon.port())])
    daemon.start()

    def nice(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[16])

    scheduler = daemon.wait_for(lambda: daemon.singleton("scheduler"), timeout=15)
    daemon.wait_for(lambda: nice(scheduler.pid) == nice(daemon.pid) + 10, timeout=15,
                    message="the scheduler to lower its priority")
    assert nice(daemon.singleton("store").pid) == nice(daemon.pid)
