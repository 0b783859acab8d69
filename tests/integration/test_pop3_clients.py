"""Real POP3 clients against ``serve()`` in its own process, over one real store process.

The environment: ``python -m stalwart.store.server`` (RocksDB, group commit) and a pop3
worker process running ``stalwart.protocols.pop3.server.serve`` with a duck-typed worker
context: one clear-text listener (STLS offered, like 110) and one implicit-TLS listener
(like 995) on 127.0.0.1 ports from ``ports.free_port``. Clients: Python's poplib and getmail6.

Shown here: USER/PASS, STLS, implicit TLS, AUTH PLAIN, RETR of lines starting with dots,
TOP, UIDL, DELE then QUIT removes the messages (through the store process), DELE then a
dropped connection removes nothing, a 3 MB RETR streamed intact, SIGTERM drains a session
with ``-ERR [SYS/TEMP]`` and no UPDATE, and getmail6 fetching and deleting.
"""

from __future__ import annotations

import asyncio
import base64
import os
import poplib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stalwart.store import Store

from .certs import daemon_certificate
from .ports import free_port
from .test_store_process import StoreProcess

REPO = Path(__file__).resolve().parents[2]

_WORKER = r"""
import asyncio, signal, socket, sys
from pathlib import Path
from types import SimpleNamespace
from stalwart.protocols.pop3.server import serve
from stalwart.worker.context import WorkerContext

base, clear_port, tls_port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

class Config:
    certificates = {"main": SimpleNamespace(cert_pem=(base / "cert.pem").read_bytes(),
                                            key_pem=(base / "key.pem").read_bytes(),
                                            default=True)}
    run_dir = base
    store = SimpleNamespace(type="rocksdb", path=base / "data", blob_path=base / "blobs")
    def get(self, key):
        return {"server.hostname": "pop.example.org", "server.shutdown-timeout": 5.0}[key]

def listen(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock

async def main():
    ctx = WorkerContext(kind="pop3", slot=0, generation=1, config=Config(),
                        sockets=[(SimpleNamespace(id="pop3", protocol="pop3",
                                                  tls_implicit=False), listen(clear_port)),
                                 (SimpleNamespace(id="pop3s", protocol="pop3",
                                                  tls_implicit=True), listen(tls_port))])
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, ctx.shutdown.set)
    await serve(ctx)
    print("drained", ctx.connections, flush=True)

asyncio.run(main())
"""


MSG_DOTS = (b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: dots\r\n\r\n"
            b"first\r\n.\r\n..double\r\n.single\r\nlast\r\n")
MSG_PLAIN = b"From: carol@example.org\r\nSubject: plain\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"


class Env:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.store = StoreProcess(base)
        self.worker: subprocess.Popen | None = None
        self.port = self.tls_port = 0

    def start(self) -> None:
        daemon_certificate(self.base, "pop.example.org", ips=("127.0.0.1",), days=1)
        self.store.start()
        asyncio.run(self._setup())
        self.port, self.tls_port = free_port(), free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        log = open(self.base / "pop3.log", "ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(self.base), str(self.port), str(self.tls_port)],
            stdout=subprocess.PIPE, stderr=log, env=env, cwd=self.base)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.worker.poll() is not None:
                raise AssertionError(f"pop3 worker exited:\n{self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("pop3 worker did not start") from None
                time.sleep(0.05)

    async def _connect(self, name: str) -> Store:
        return await Store.connect(self.base / "data", self.base / "blobs",
                                   self.base / "store.sock", self.base / "secondary" / name,
                                   connect_timeout=30)

    async def _setup(self) -> None:
        s = await self._connect("setup")
        try:
            await s.create_domain("example.org")
            acc = await s.create_account("alice", password="alice pw",
                                         emails=["alice@example.org"])
            inbox = s.find_mailbox(acc["id"], "INBOX")["id"]
            await s.append(acc["id"], inbox, MSG_DOTS)
            await s.append(acc["id"], inbox, MSG_PLAIN)
        finally:
            await s.close()

    def inbox_count(self) -> int:
        async def count() -> int:
            s = await self._connect(f"count{time.monotonic_ns()}")
            try:
                acc = s.get_account("alice")["id"]
                return len(s.mailbox_uids(acc, s.find_mailbox(acc, "INBOX")["id"]))
            finally:
                await s.close()
        return asyncio.run(count())

    def append(self, raw: bytes) -> None:
        async def go() -> None:
            s = await self._connect(f"append{time.monotonic_ns()}")
            try:
                acc = s.get_account("alice")["id"]
                await s.append(acc, s.find_mailbox(acc, "INBOX")["id"], raw)
            finally:
                await s.close()
        asyncio.run(go())

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.base / "cert.pem"))
        ctx.check_hostname = False
        return ctx

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(15)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(5)
        self.store.stop()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.base.glob("*.log"))


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    e.start()
    yield e
    e.stop()


def _body(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


def test_poplib_user_pass_over_stls(env):
    p = poplib.POP3("127.0.0.1", env.port, timeout=10)
    try:
        assert p.getwelcome().startswith(b"+OK pop.example.org")
        assert "STLS" in p.capa()
        p.stls(env.client_context())
        capa = p.capa()
        assert "STLS" not in capa and "USER" in capa and "PIPELINING" in capa
        assert p.user("alice").startswith(b"+OK")
        assert p.pass_("alice pw").startswith(b"+OK Maildrop has 2 messages")
        assert p.stat() == (2, len(MSG_DOTS) + len(MSG_PLAIN))
        _, listing, _ = p.list()
        assert listing == [b"1 %d" % len(MSG_DOTS), b"2 %d" % len(MSG_PLAIN)]
        resp, lines, octets = p.retr(1)
        assert resp == b"+OK %d octets" % len(MSG_DOTS)
        assert _body(lines) == MSG_DOTS        # poplib undoes the dot stuffing
        _, top, _ = p.top(2, 1)
        assert top == [b"From: carol@example.org", b"Subject: plain", b"", b"line 1"]
        _, uidl, _ = p.uidl()
        assert [u.split()[0] for u in uidl] == [b"1", b"2"] and len(set(uidl)) == 2
        assert p.uidl(2) == b"+OK " + uidl[1]
    finally:
        p.quit()


def test_implicit_tls_and_auth_plain(env):
    p = poplib.POP3_SSL("127.0.0.1", env.tls_port, context=env.client_context(), timeout=10)
    try:
        assert "STLS" not in p.capa()
        assert "SASL SCRAM-SHA-256 PLAIN LOGIN" in " ".join(
            f"{k} {' '.join(v)}".strip() for k, v in p.capa().items())
        bad = base64.b64encode(b"\0alice\0wrong").decode()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p._shortcmd("AUTH PLAIN " + bad)
        good = base64.b64encode(b"\0alice@example.org\0alice pw").decode()
        assert p._shortcmd("AUTH PLAIN " + good).startswith(b"+OK Maildrop has 2")
        assert p.stat()[0] == 2
    finally:
        p.quit()


def test_dele_then_quit_removes_and_dropped_connection_keeps(env):
    p = poplib.POP3("127.0.0.1", env.port, timeout=10)
    p.user("alice")
    p.pass_("alice pw")
    p.dele(1)
    p.dele(2)
    p.sock.close()                        # the client vanishes without QUIT
    time.sleep(0.3)
    assert env.inbox_count() == 2

    p = poplib.POP3("127.0.0.1", env.port, timeout=10)
    p.user("alice")
    p.pass_("alice pw")
    _, before, _ = p.uidl()
    p.dele(1)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(1)
    assert p.quit().startswith(b"+OK Stalwart POP3 signing off (1 message deleted)")
    assert env.inbox_count() == 1

    p = poplib.POP3("127.0.0.1", env.port, timeout=10)
    p.user("alice")
    p.pass_("alice pw")
    _, after, _ = p.uidl()
    assert [u.split()[1] for u in after] == [before[1].split()[1]]   # the id survived
    p.quit()


def test_large_message_is_streamed_intact(env):
    body = b"".join(b"%s line %07d of a big message\r\n" % (b"." if i % 7 == 0 else b"", i)
                    for i in range(100_000))
    raw = b"Subject: big\r\n\r\n" + body
    env.append(raw)
    p = poplib.POP3_SSL("127.0.0.1", env.tls_port, context=env.client_context(), timeout=30)
    try:
        p.user("alice")
        p.pass_("alice pw")
        resp, lines, _ = p.retr(3)
        assert resp == b"+OK %d octets" % len(raw)
        assert _body(lines) == raw
    finally:
        p.quit()


def test_sigterm_drains_without_update(env):
    p = poplib.POP3("127.0.0.1", env.port, timeout=10)
    p.user("alice")
    p.pass_("alice pw")
    p.dele(1)
    env.worker.send_signal(signal.SIGTERM)
    assert p.file.readline() == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    assert p.file.readline() == b""
    out, _ = env.worker.communicate(timeout=15)
    assert env.worker.returncode == 0 and out.strip() == b"drained 0"
    assert env.inbox_count() == 2


def test_getmail6_fetches_and_deletes(env, tmp_path):
    assert shutil.which("getmail"), "getmail6 is missing: run tests/install-peers.sh"
    inbox = tmp_path / "fetched"
    inbox.mkdir()
    # An external MDA (getmail refuses Maildir delivery as root, which the tests run as).
    mda = tmp_path / "deliver.sh"
    mda.write_text('#!/bin/sh\ncat > "$1/msg.$$"\n')
    mda.chmod(0o755)
    (tmp_path / "cafile.pem").write_bytes((env.base / "cert.pem").read_bytes())
    rc = tmp_path / "getmailrc"
    rc.write_text(f"""[retriever]
type = SimplePOP3SSLRetriever
server = 127.0.0.1
port = {env.tls_port}
username = alice
password = alice pw
ca_certs = {tmp_path / "cafile.pem"}

[destination]
type = MDA_external
path = {mda}
arguments = ("{inbox}",)
allow_root_commands = true

[options]
delete = true
read_all = true
verbose = 2
""")
    getmaildir = tmp_path / "getmail-state"
    getmaildir.mkdir()
    result = subprocess.run(["getmail", "--rcfile", str(rc), "--getmaildir", str(getmaildir)],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = sorted(inbox.iterdir())
    assert len(fetched) == 2
    bodies = {f.read_bytes().replace(b"\r\n", b"\n") for f in fetched}
    # getmail adds its own Delivered-To/Return-Path/Received headers on top.
    assert any(b.endswith(MSG_DOTS.replace(b"\r\n", b"\n")) for b in bodies)
    assert any(b.endswith(MSG_PLAIN.replace(b"\r\n", b"\n")) for b in bodies)
    assert env.inbox_count() == 0
