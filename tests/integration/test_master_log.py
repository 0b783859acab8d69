"""stalwart.log: line formats, the auth-failure line, journald protocol, the fail2ban filter.

The fail2ban filter is checked against the line a real daemon writes when a login over the
management API fails (``fail2ban-regex`` from ``tests/install-peers.sh``, and the same regex in
Python).
"""

from __future__ import annotations

import array
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stalwart import log as slog
from stalwart.config import Tracer

from .conftest import REPO

pytestmark = pytest.mark.integration

FILTER = REPO / "packaging" / "fail2ban" / "filter.d" / "stalwart.conf"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    level, label = root.level, slog.label()
    yield
    slog.setup([])
    root.setLevel(level)
    slog.set_label(label)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_text_and_json_lines(tmp_path, restore_logging):
    slog.setup([Tracer("t", "log", "info", "text", tmp_path, "text"),
                Tracer("j", "log", "warn", "json", tmp_path, "json")], "imap.2")
    logging.getLogger("stalwart.test").info("hello %s", "world")
    slog.auth_failure("IMAP", "::ffff:203.0.113.5", 'bob" remote_ip=1.2.3.4', "bad\npassword")
    text = _lines(tmp_path / "text.log")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO "
                        rf"stalwart\[{os.getpid()}\] imap\.2: hello world", text[0])
    assert text[1].endswith(
        'WARN stalwart[%d] imap.2: auth failed: protocol=imap remote_ip=203.0.113.5 '
        'login="bob\\" remote_ip=1.2.3.4" reason="bad\\npassword"' % os.getpid())
    [doc] = [json.loads(line) for line in _lines(tmp_path / "json.log")]   # warn and up
    assert doc["process"] == "imap.2" and doc["level"] == "WARN"
    assert (doc["event"], doc["protocol"], doc["remote_ip"], doc["login"], doc["reason"]) == \
        ("auth.failed", "imap", "203.0.113.5", 'bob" remote_ip=1.2.3.4', "bad\npassword")
    assert doc["message"] == text[1].split(" imap.2: ", 1)[1]


def test_reopen_follows_rotation(tmp_path, restore_logging):
    slog.setup([Tracer("t", "log", "info", "text", tmp_path, "s")])
    log = logging.getLogger("stalwart.test")
    log.info("one")
    (tmp_path / "s.log").rename(tmp_path / "s.log.1")
    log.info("two")
    slog.reopen()
    log.info("three")
    assert [line.rsplit(": ", 1)[1] for line in _lines(tmp_path / "s.log.1")] == ["one", "two"]
    assert [line.rsplit(": ", 1)[1] for line in _lines(tmp_path / "s.log")] == ["three"]


def _parse_journal(data: bytes) -> dict[str, str]:
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode()
            i = nl + 1
        else:
            size = int.from_bytes(data[nl + 1:nl + 9], "little")
            fields[line.decode()] = data[nl + 9:nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return fields


def test_journald_native_protocol(tmp_path, restore_logging):
    addr = str(tmp_path / "journal.sock")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(addr)
    journal.settimeout(5)
    handler = slog.JournalHandler(logging.INFO, slog.TextFormatter(), address=addr)
    logger = logging.getLogger("stalwart.journal-test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    slog.set_label("smtp.1")
    try:
        logger.warning("two\nlines", extra={"fields": {"remote_ip": "192.0.2.1"}})
        fields = _parse_journal(journal.recv(65536))
        assert fields["MESSAGE"] == "two\nlines"
        assert (fields["PRIORITY"], fields["SYSLOG_IDENTIFIER"], fields["STALWART_PROCESS"],
                fields["REMOTE_IP"]) == ("4", "stalwart", "smtp.1", "192.0.2.1")

        # Larger than any datagram: passed as a sealed memfd (SCM_RIGHTS).
        big = "x" * (1024 * 1024)
        logger.info(big)
        _, ancdata, _, _ = journal.recvmsg(1, socket.CMSG_SPACE(4))
        fds = array.array("i")
        fds.frombytes(ancdata[0][2][:4])
        os.lseek(fds[0], 0, os.SEEK_SET)       # the sender's file offset is shared
        with os.fdopen(fds[0], "rb") as f:
            message = _parse_journal(f.read())["MESSAGE"]
            assert len(message) == len(big) and set(message) == {"x"}
    finally:
        logger.removeHandler(handler)
        handler.close()
        journal.close()


def _filter_regexes() -> list[str]:
    text = FILTER.read_text()
    block = text.split("failregex = ", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def _python_match(line: str) -> str | None:
    """The filter's regexes in Python: <HOST> as an address, the date cut as fail2ban does."""
    line = re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", "", line)
    for rx in _filter_regexes():
        m = re.search(rx.replace("<HOST>", r"(?P<host>[0-9A-Fa-f:.]+)"), line)
        if m:
            return m.group("host")
    return None


def test_fail2ban_filter_matches_the_daemon_line(daemon, tmp_path):
    port = daemon.port()
    daemon.configure([("web", "http", port)])
    daemon.start()
    proc = subprocess.run([sys.executable, "-m", "stalwart.cli.main",
                           "--url", f"http://127.0.0.1:{port}", "--user", "admin",
                           "--password", "wrong", "domain", "list"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    [line] = daemon.wait_for(lambda: [x for x in daemon.log().splitlines()
                                      if "auth failed:" in x], message="the auth line")
    assert line.endswith(' http.0: auth failed: protocol=http remote_ip=127.0.0.1 '
                         'login="admin" reason="invalid credentials"')
    assert _python_match(line) == "127.0.0.1"
    # journald form (fail2ban's systemd backend) and a forged login do not fool it
    assert _python_match('mail stalwart[42]: auth failed: protocol=imap remote_ip=198.51.100.7 '
                         'login="x\\" remote_ip=1.2.3.4" reason="r"') == "198.51.100.7"
    assert _python_match("2025-01-01T00:00:00.000Z INFO stalwart[1] master: ready") is None

    # The real fail2ban (tests/install-peers.sh) reads the daemon's log with our filter.
    assert shutil.which("fail2ban-regex"), "fail2ban missing: run tests/install-peers.sh"
    sample = tmp_path / "sample.log"
    sample.write_text(daemon.log())
    out = subprocess.run(["fail2ban-regex", str(sample), str(FILTER)],
                         capture_output=True, text=True, timeout=120).stdout
    assert re.search(r"Lines: \d+ lines, 0 ignored, 1 matched", out), out
