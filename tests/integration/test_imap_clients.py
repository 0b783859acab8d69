"""Real IMAP clients against ``serve()`` workers in their own processes, one real store.

The environment: ``python -m stalwart.store.server`` (RocksDB, group commit) and two IMAP
worker processes, each running ``stalwart.protocols.imap.server.serve`` with a duck-typed
worker context on its own port of 127.0.0.1 (25100-25999). Clients: Python's imaplib,
imapclient, and the live test suite shipped inside imapclient.

Shown here: the everyday commands through imaplib and imapclient; one session in IDLE in
worker B sees, within a second, every APPEND, STORE, EXPUNGE and MOVE made through worker A
(different processes: only the store's change events can tell it); SIGTERM drains a worker
with BYE to an idling client; imapclient's livetest passes.
"""

from __future__ import annotations

import asyncio
import email.utils
import imaplib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from stalwart.store import Store

from .test_store_process import StoreProcess

REPO = Path(__file__).resolve().parents[2]

_WORKER = r"""
import asyncio, signal, socket, sys
from pathlib import Path
from types import SimpleNamespace
from stalwart.protocols.imap.server import serve
from stalwart.worker.context import WorkerContext

base, port = Path(sys.argv[1]), int(sys.argv[2])

class Config:
    certificates = {}
    run_dir = base
    store = SimpleNamespace(type="rocksdb", path=base / "data", blob_path=base / "blobs")
    def get(self, key):
        return {"server.shutdown-timeout": 5.0, "imap.append-limit": 50 << 20}[key]

async def main():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    ctx = WorkerContext(kind="imap", slot=0, generation=1, config=Config(),
                        sockets=[(SimpleNamespace(id="imap", protocol="imap",
                                                  tls_implicit=False), sock)])
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, ctx.shutdown.set)
    await serve(ctx)

asyncio.run(main())
"""

_PORTS = iter(range(25100 + (os.getpid() % 80) * 10, 26000))


def _port() -> int:
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 25100-25999")


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"IMAP worker exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"IMAP worker on port {port} did not start")


class Env:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.store = StoreProcess(base)
        self.workers: list[tuple[subprocess.Popen, int]] = []

    def start_worker(self) -> int:
        port = _port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        log = open(self.base / f"imap-{port}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(self.base), str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.base)
        log.close()
        self.workers.append((proc, port))
        _wait_port(port, proc)
        return port

    def stop(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.workers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.store.stop()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.base.glob("*.log"))


async def _setup_accounts(base: Path) -> None:
    s = await Store.connect(base / "data", base / "blobs", base / "store.sock",
                            base / "secondary" / "setup", connect_timeout=30)
    try:
        await s.create_domain("example.org")
        await s.create_account("alice", password="alice-pw", emails=["alice@example.org"],
                               quota=10_000_000)
    finally:
        await s.close()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    e.store.start()
    asyncio.run(_setup_accounts(tmp_path))
    yield e
    e.stop()


def _message(subject: str, body: str = "Hello there.") -> bytes:
    return (f"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n"
            f"\r\n{body}\r\n").encode()


def test_imaplib_everyday_commands(env):
    port = env.start_worker()
    m = imaplib.IMAP4("127.0.0.1", port)
    assert "IMAP4REV2" in m.capabilities
    typ, data = m.login("alice", "alice-pw")
    assert typ == "OK" and b"IDLE" in data[0]
    typ, data = m.select("INBOX")
    assert (typ, data) == ("OK", [b"0"])
    typ, data = m.append("INBOX", r"(\Flagged)", None, _message("first"))
    assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\]", data[0])
    m.append("INBOX", None, None, _message("second", "find me"))
    typ, data = m.noop()
    assert typ == "OK"
    typ, data = m.fetch("1:2", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    # \Recent: this (IMAP4rev1) session had INBOX selected when the messages arrived.
    assert data[0][0].startswith(b"1 (UID 1 FLAGS (\\Flagged \\Recent)") and \
        b"Subject: first" in data[0][1]
    assert b"Subject: second" in data[2][1]
    assert m.search(None, "BODY", '"find me"') == ("OK", [b"2"])
    assert m.search(None, "FLAGGED") == ("OK", [b"1"])
    assert m.uid("SEARCH", "SUBJECT", "second") == ("OK", [b"2"])
    typ, data = m.store("2", "+FLAGS", r"(\Deleted \Seen)")
    assert typ == "OK" and b"\\Deleted" in data[0] and b"\\Seen" in data[0]
    assert m.expunge() == ("OK", [b"2"])
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)")
    assert data == [b"INBOX (MESSAGES 1 UIDNEXT 3 UNSEEN 1)"]
    typ, data = m.fetch("1", "(RFC822)")
    assert data[0][1].startswith(b"From: Bob") and b"first" in data[0][1]
    assert m.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Flagged \\Seen \\Recent))"]
    typ, _ = m.create("Work/Reports")
    assert typ == "OK"
    assert m.copy("1", "Work/Reports")[0] == "OK"
    assert m.status("Work/Reports", "(MESSAGES)")[1] == [b"Work/Reports (MESSAGES 1)"]
    assert m.close()[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_imaplib_wrong_password_and_bad_command(env):
    port = env.start_worker()
    m = imaplib.IMAP4("127.0.0.1", port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("alice", "wrong")
    m.login("alice", "alice-pw")
    tag = m._new_tag()
    m.send(tag + b" FETCH 1 FLAGS\r\n")     # imaplib itself refuses this before SELECT
    assert m._get_tagged_response(tag) == \
        ("BAD", [b"FETCH is not allowed in the authenticated state"])
    typ, data = m._simple_command("SELECT", "Nowhere")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    m.logout()
    assert 'auth failed: protocol=imap remote_ip=127.0.0.1 login="alice"' in env.logs()


def test_imapclient_and_idle_across_processes(env):
    port_a = env.start_worker()
    port_b = env.start_worker()
    writer = IMAPClient("127.0.0.1", port=port_a, ssl=False)
    watcher = IMAPClient("127.0.0.1", port=port_b, ssl=False)
    writer.login("alice", "alice-pw")
    watcher.login("alice", "alice-pw")
    writer.select_folder("INBOX")
    assert watcher.select_folder("INBOX")[b"EXISTS"] == 0
    watcher.idle()

    def seen(predicate, timeout=5.0):
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got += watcher.idle_check(timeout=max(0.05, deadline - time.monotonic()))
            if predicate(got):
                return got
        raise AssertionError(f"IDLE did not report the change; got {got}")

    started = time.monotonic()
    writer.append("INBOX", _message("one"))
    seen(lambda got: (1, b"EXISTS") in got)
    assert time.monotonic() - started < 2.0
    writer.append("INBOX", _message("two"))
    seen(lambda got: (2, b"EXISTS") in got)
    writer.add_flags([1], [b"\\Flagged"])
    seen(lambda got: any(r[:2] == (1, b"FETCH") and
                         b"\\Flagged" in dict(zip(r[2][::2], r[2][1::2]))[b"FLAGS"]
                         for r in got if len(r) > 2))
    writer.add_flags([2], [b"\\Deleted"])
    writer.expunge()
    seen(lambda got: (2, b"EXPUNGE") in got)
    writer.create_folder("Archive/2024")
    writer.move([1], "Archive/2024")
    seen(lambda got: (1, b"EXPUNGE") in got)
    watcher.idle_done()
    assert watcher.search() == []
    watcher.select_folder("Archive/2024")
    [uid] = watcher.search()
    assert watcher.fetch([uid], ["ENVELOPE"])[uid][b"ENVELOPE"].subject == b"one"
    writer.logout()
    watcher.logout()


def test_sigterm_drains_with_bye_to_idling_clients(env):
    port = env.start_worker()
    proc = env.workers[-1][0]
    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    client.login("alice", "alice-pw")
    client.select_folder("INBOX")
    client.idle()
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    got = []
    while time.monotonic() < deadline and not any(b"BYE" in r for r in got):
        got += [r for r in client.idle_check(timeout=1)]
    assert any(r[0] == b"BYE" if isinstance(r, tuple) else b"BYE" in r for r in got), got
    assert proc.wait(10) == 0


#: Livetest cases that fail whatever the server does, with this Python and imapclient:
KNOWN_CLIENT_FAILURES = {
    # imapclient 4.1 calls imaplib's "move", which Python 3.11's imaplib does not have.
    "test_move": "imaplib has no MOVE",
    # Envelope became a dataclass in imapclient 4; assertSequenceEqual needs a sequence.
    "test_fetch": "imapclient Envelope is not a sequence",
    # The test reads conf["username"] from an argparse Namespace (TypeError in the test,
    # after our GETACL answered); it runs now that ACL is advertised.
    # tests/integration/test_imap_clients_livetest.py checks GETACL with imapclient.
    "test_getacl": "livetest bug: Namespace is not subscriptable",
    # A 1 ms connect / 10 us read timeout is not reached on loopback.
    "test_small_connection_timeout_fail": "loopback is faster than the timeout",
    "test_small_read_timeout_fail": "loopback is faster than the timeout",
}


def test_imapclient_livetest(env, tmp_path):
    """imapclient's own live suite (imapclient.livetest) against our server: every case
    passes or is skipped except the known client-side failures listed above."""
    port = env.start_worker()
    ini = tmp_path / "livetest.ini"
    ini.write_text(f"[DEFAULT]\nhost = 127.0.0.1\nport = {port}\nssl = false\n"
                   "username = alice\npassword = alice-pw\n")
    result = subprocess.run([sys.executable, "-m", "imapclient.livetest", str(ini), "-v"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = result.stderr
    ran = re.search(r"^Ran (\d+) tests", out, re.M)
    assert ran, out[-5000:]
    failed = re.findall(r"^(?:FAIL|ERROR): (\w+) ", out, re.M)
    skipped = len(re.findall(r"\.\.\. skipped", out))
    total = int(ran.group(1))
    print(f"imapclient livetest: {total} run, {total - len(failed) - skipped} passed, "
          f"{len(failed)} failed ({sorted(set(failed))}), {skipped} skipped")
    unexpected = set(failed) - set(KNOWN_CLIENT_FAILURES)
    assert not unexpected, out[-20000:]
    assert total - len(failed) - skipped >= 45
