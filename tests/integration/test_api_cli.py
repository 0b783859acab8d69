"""The management API and stalwart-cli over the real store process.

``python -m stalwart.store.server`` runs as the single writer under a real config's
layout; an http worker (``stalwart.http.server.serve`` with a real ``Config``) runs in a
thread and opens the store as a worker does (IPC + RocksDB secondary); stalwart-cli runs
as a separate process, through the admin socket found with ``--config`` and over TCP with
the fallback admin's credentials. Data survives a restart of the http worker.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stalwart.config import loads
from stalwart.http.server import serve
from stalwart.http.testing import tcp_listener, unix_listener

pytestmark = pytest.mark.integration


class Ctx:
    def __init__(self, config, sockets, admin_socket):
        self.kind, self.slot, self.generation = "http", 0, 1
        self.config = config
        self.sockets = sockets
        self.admin_socket = admin_socket
        self.shutdown: asyncio.Event | None = None
        self.connections = self.opened = 0

    def connection_opened(self) -> None:          # the WorkerContext contract
        self.connections += 1
        self.opened += 1

    def connection_closed(self) -> None:
        self.connections -= 1


class Listener:
    id, protocol, tls_implicit = "http", "http", False


class HttpWorker:
    """serve(ctx) in a thread, as the worker loop would run it."""

    def __init__(self, config, port_sock: socket.socket, admin: socket.socket) -> None:
        self.ctx = Ctx(config, [(Listener(), port_sock)], admin)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.ctx.shutdown = asyncio.Event()
        self.started.set()
        await serve(self.ctx)

    def start(self) -> "HttpWorker":
        self.thread.start()
        self.started.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.ctx.shutdown.set)
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def auth_failures(monkeypatch):
    """Record stalwart.log.auth_failure (the worker runs in this process)."""
    import types

    calls = []
    try:
        import stalwart.log as module
    except ImportError:           # written by the master engineer; stand in until it lands
        module = types.ModuleType("stalwart.log")
        monkeypatch.setitem(sys.modules, "stalwart.log", module)
    monkeypatch.setattr(module, "auth_failure", lambda **kw: calls.append(kw), raising=False)
    return calls


@pytest.fixture
def deployment(tmp_path):
    base = Path("/tmp") / f"sw-api-{tmp_path.name[-12:]}"
    (base / "run").mkdir(parents=True, exist_ok=True)
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[storage]\ndirectory = "{base}"\n\n'
                           '[authentication.fallback-admin]\nuser = "admin"\n'
                           'secret = "admin-pass"\n')
    config = loads(config_file.read_text(), source=str(config_file))
    store = subprocess.Popen(
        [sys.executable, "-m", "stalwart.store.server", "--data", str(config.store.path),
         "--blobs", str(config.store.blob_path), "--socket", str(config.run_dir / "store.sock")],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "store.log", "ab"))
    assert store.stdout.readline() == b"ready\n"
    yield config, config_file, base
    store.send_signal(signal.SIGTERM)
    store.wait(30)
    subprocess.run(["rm", "-rf", str(base)], check=False)


def cli(*argv: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "stalwart.cli.main", *argv],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_and_api_over_the_store_process(deployment, auth_failures):
    config, config_file, base = deployment
    tcp = tcp_listener()
    port = tcp.getsockname()[1]
    admin = unix_listener(config.run_dir / "admin.sock")
    # Each worker gets its own descriptor of the shared admin socket, as after fork().
    worker = HttpWorker(config, tcp, admin.dup()).start()
    try:
        sock = ["--config", str(config_file)]
        assert cli(*sock, "domain", "create", "example.org")[0] == 0
        code, out, err = cli(*sock, "account", "create", "jane", "--password", "jane-pw-1",
                             "--email", "jane@example.org", "--quota", "2G", "--name", "Jane")
        assert code == 0, err
        code, out, _ = cli(*sock, "--json", "account", "show", "jane@example.org")
        assert json.loads(out)["quota"] == 2 * 1024**3

        url = ["--url", f"http://127.0.0.1:{port}", "--user", "admin"]
        code, out, _ = cli(*url, "--password", "admin-pass", "--json", "domain", "list")
        assert code == 0 and json.loads(out)["domains"][0]["name"] == "example.org"
        code, _, err = cli(*url, "--password", "wrong", "domain", "list")
        assert code == 4 and "authentication failed" in err
        assert auth_failures == [{"protocol": "http", "remote_ip": "127.0.0.1",
                                  "login": "admin", "reason": "invalid credentials"}]

        code, _, err = cli(*sock, "domain", "delete", "example.org")
        assert code == 6 and "still has addresses" in err
    finally:
        worker.stop()

    # A new worker (a respawn) sees everything the store committed.
    tcp = tcp_listener()
    worker = HttpWorker(config, tcp, admin.dup()).start()
    try:
        code, out, _ = cli("--config", str(config_file), "--json", "account", "list")
        assert [a["name"] for a in json.loads(out)["accounts"]] == ["jane"]
        assert cli("--config", str(config_file), "account", "delete", "jane")[0] == 0
        assert cli("--config", str(config_file), "domain", "delete", "example.org")[0] == 0
    finally:
        worker.stop()
        admin.close()
