"""Per-client SMTP limits through the whole daemon, with TWO smtp worker processes: the
counters are shared (a limit per process would let a client through once per worker).
Connections from one client spread over both workers (SO_REUSEPORT hashes the source
port), so "exactly N accepted" out of many can only hold if the workers share counts.
Also: session limits from the config seen by swaks, and duplicate suppression read back
over IMAP. Ports 22100-22199."""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

from .configs import certificate
from .certs import daemon_certificate

SWAKS = shutil.which("swaks")
PORTS = iter(range(22100, 22200))

PRINCIPALS = """
[directory.memory]
type = "memory"

[[directory.memory.principals]]
name = "jane"
class = "individual"
secret = "jane-password"
email = ["jane@example.com", "j.doe@example.com"]
"""


def _start(daemon, limits: str, *, imap: bool = False):
    ports = {"smtp": next(PORTS), "submission": next(PORTS)}
    listeners = [("smtp", "smtp", ports["smtp"]), ("submission", "smtp", ports["submission"])]
    if imap:
        ports["imap"] = next(PORTS)
        listeners.append(("imap", "imap", ports["imap"]))
    daemon.configure(listeners=listeners, workers={"smtp": 2}, extra=PRINCIPALS + limits)
    daemon.start()
    daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=20)
    return ports


def _greeting(port: int) -> tuple[str, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    line = sock.makefile("rb").readline().decode().rstrip("\r\n")
    return line, sock


def test_concurrent_connections_are_counted_across_workers(daemon):
    ports = _start(daemon, """
[smtp.limits]
exempt = []
concurrency = 4
connection-rate = "unlimited"
""")
    held, refused = [], []
    for _ in range(12):
        line, sock = _greeting(ports["smtp"])
        if line.startswith("220 "):
            held.append(sock)
        else:
            assert line == "421 4.7.0 mx.test.invalid Error: too many connections from 127.0.0.1"
            refused.append(sock)
    assert (len(held), len(refused)) == (4, 8)
    for sock in refused:
        assert sock.recv(100) == b""                   # closed after the 421
        sock.close()
    # Both workers hold some of the four (their titles count open connections).
    daemon.wait_for(lambda: sum(int(p.title.split("[")[1].split()[0])
                                for p in daemon.workers("smtp").values()) == 4,
                    message="4 connections in the worker titles")
    for sock in held:
        sock.close()
    daemon.wait_for(lambda: _greeting(ports["smtp"])[0].startswith("220 "),
                    message="a connection allowed again")
    assert daemon.stop() == 0


def test_connection_rate_is_shared_by_workers(daemon):
    ports = _start(daemon, """
[smtp.limits]
exempt = []
connection-rate = "5/1h"
""")
    answers = []
    for _ in range(9):
        line, sock = _greeting(ports["smtp"])
        answers.append(line[:9])
        sock.close()
    # daemon.start() connected once to each of the two ports: 2 of the 5 are used.
    assert answers == ["220 mx.te"] * 3 + ["421 4.7.0"] * 6
    assert "refused: connection-rate (127.0.0.1)" in daemon.log()
    assert daemon.stop() == 0


def test_message_rate_per_ip_across_connections(daemon):
    ports = _start(daemon, """
[smtp.limits]
exempt = []
message-rate = "3/1h"
""")
    results = []
    for i in range(5):
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as s:
            try:
                s.sendmail("bob@remote.test", ["jane@example.com"],
                           f"Subject: {i}\r\n\r\nbody\r\n".encode())
                results.append(250)
            except smtplib.SMTPSenderRefused as exc:
                assert exc.smtp_error == b"4.7.1 Error: too much mail from 127.0.0.1, try again later"
                results.append(exc.smtp_code)
    assert results == [250, 250, 250, 451, 451]
    assert daemon.stop() == 0


def test_failed_auth_bans_the_address_across_workers(daemon):
    if SWAKS is None:
        pytest.fail("swaks is not installed (tests/install-peers.sh installs it)")
    daemon_certificate(daemon.root, "mx.test.invalid")
    ports = _start(daemon, f"""
[smtp.limits]
exempt = []

[smtp.auth-penalty]
delay-after = 2
delay = "100ms"
ban-after = 3
ban-time = "1h"

{certificate(daemon.root)}
""")
    outcomes = []
    for _ in range(3):      # one failure per connection: they land on both workers
        r = subprocess.run([SWAKS, "--server", "127.0.0.1", "--port", str(ports["submission"]),
                            "--timeout", "15", "--tls", "--from", "jane@example.com",
                            "--to", "jane@example.com", "--auth", "PLAIN",
                            "--auth-user", "jane", "--auth-password", "wrong"],
                           capture_output=True, text=True, timeout=60)
        outcomes.append(r.stdout)
    assert all("535 5.7.8" in out for out in outcomes), outcomes
    assert "421 4.7.0 mx.test.invalid Error: too many failed logins" in outcomes[-1]
    log = daemon.log()
    assert log.count('auth failed: protocol=smtp remote_ip=127.0.0.1 login="jane"') == 3
    assert "127.0.0.1 banned for 3600s" in log
    # Banned: every new connection, to either listener and either worker, is refused.
    for port in (ports["smtp"], ports["submission"]) * 3:
        line, sock = _greeting(port)
        assert line == ("421 4.7.0 mx.test.invalid Error: too many failed logins from "
                        "127.0.0.1, try again later")
        sock.close()
    assert daemon.stop() == 0


def test_session_limits_from_the_config(daemon):
    if SWAKS is None:
        pytest.fail("swaks is not installed (tests/install-peers.sh installs it)")
    ports = _start(daemon, """
[smtp.session]
max-recipients = 2
max-message-size = "1mb"
idle-timeout = "1s"
""")
    r = subprocess.run([SWAKS, "--server", "127.0.0.1", "--port", str(ports["smtp"]),
                        "--timeout", "15", "--from", "bob@remote.test",
                        "--to", "jane@example.com,j.doe@example.com,jane+x@example.com"],
                       capture_output=True, text=True, timeout=60)
    assert "452 4.5.3 Too many recipients" in r.stdout, r.stdout
    assert "250-SIZE 1048576" in r.stdout
    line, sock = _greeting(ports["smtp"])
    t0 = time.monotonic()
    f = sock.makefile("rb")
    assert f.readline() == b"421 4.4.2 Idle timeout, closing connection\r\n"
    assert time.monotonic() - t0 > 0.8
    sock.close()
    assert daemon.stop() == 0


def test_resent_message_is_delivered_once(daemon):
    ports = _start(daemon, "", imap=True)
    message = (b"From: bob@remote.test\r\nMessage-ID: <once@remote.test>\r\n"
               b"Subject: once\r\n\r\nbody\r\n")
    for rcpts in (["jane@example.com"], ["j.doe@example.com", "jane+tag@example.com"]):
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as s:
            assert s.sendmail("bob@remote.test", rcpts, message) == {}
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as s:   # new content
        s.sendmail("bob@remote.test", ["jane@example.com"], message + b"more\r\n")
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10)
    try:
        assert m.login("jane", "jane-password")[0] == "OK"
        assert m.select("INBOX") == ("OK", [b"2"])
    finally:
        m.logout()
    assert daemon.stop() == 0


def test_connections_of_a_killed_worker_are_not_counted_forever(daemon):
    import os
    import signal

    ports = _start(daemon, """
[smtp.limits]
exempt = []
concurrency = 2
connection-rate = "unlimited"
""")
    held = []
    while len(held) < 2:
        line, sock = _greeting(ports["smtp"])
        assert line.startswith("220 "), line
        held.append(sock)
    line, sock = _greeting(ports["smtp"])
    assert line.startswith("421 4.7.0"), line
    sock.close()
    # SIGKILL both workers: nothing releases the two connections they held.
    before = {p.pid for p in daemon.workers("smtp").values()}
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    daemon.wait_for(lambda: len(daemon.workers("smtp")) == 2
                    and not before & {p.pid for p in daemon.workers("smtp").values()},
                    timeout=30, message="two new smtp workers")
    for sock in held:
        sock.close()
    # The new workers see the dead pids' records as gone: two connections fit again.
    fresh = []
    for _ in range(2):
        line, sock = daemon.wait_for(lambda: _open_220(ports["smtp"]), timeout=20,
                                     message="a 220 after the respawn")
        fresh.append(sock)
    line, sock = _greeting(ports["smtp"])
    assert line.startswith("421 4.7.0"), line          # and the limit still holds
    for s in [*fresh, sock]:
        s.close()
    assert daemon.stop() == 0


def _open_220(port):
    line, sock = _greeting(port)
    if line.startswith("220 "):
        return line, sock
    sock.close()
    return None
