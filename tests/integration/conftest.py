"""Run the real ``stalwart-master`` in a temporary directory: the ``daemon`` fixture.

Typical use (every integration test that needs a whole server)::

    def test_something(daemon):
        port = daemon.port()                                # a free port (ports.py)
        daemon.configure(listeners=[("http", "http", port)], workers={"http": 2})
        daemon.start()                                      # returns once READY=1 arrived
        ...                                                 # talk to 127.0.0.1:port
        daemon.reload()                                     # SIGHUP, wait for READY=1
        assert daemon.stop() == 0                           # SIGTERM, wait, exit status

What the fixture guarantees:

- The daemon runs as a subprocess (``python -m`` of a tiny bootstrap that calls
  ``stalwart.master.main.main``) with its config at ``<tmp>/config.toml`` and its state in
  ``<tmp>/var``; standard output and error go to ``<tmp>/daemon.log`` (``daemon.log()``).
- ``start()`` waits for ``READY=1`` on a private sd_notify socket (an abstract socket set
  in ``NOTIFY_SOCKET``) and then for every configured port to accept a TCP connection;
  if the daemon exits first, the test fails with its log.
- Every notification is kept in ``daemon.notifications`` (one list of lines per datagram);
  ``daemon.wait_notify("RELOADING=1", since=n)`` waits for one.
- ``daemon.processes()`` lists the master's children from /proc (pid, uid, title);
  ``daemon.wait_for(predicate)`` polls anything.
- At teardown a daemon still running is stopped with SIGTERM, then SIGKILL (its children
  too, so no test leaves processes behind), and the log is attached to a failing test's
  output.
- ``kinds={"pop3": "integration.conftest:crash_at_once"}`` points process kinds at other
  functions inside the daemon (the bootstrap updates ``stalwart.worker.registry.KINDS``);
  this module's ``crash_at_once``, ``line_echo`` and ``serve_forever_blocking`` are such
  kinds for supervision tests.

Tests run as root here; ``run_as`` in ``configure`` sets ``server.run-as``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from .ports import free_port  # noqa: F401  (re-exported: tests import it from here)

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"

_BOOTSTRAP = """
import json, sys
from stalwart.worker import registry
registry.KINDS.update(json.loads(sys.argv[1]))
from stalwart.master.main import main
sys.exit(main(sys.argv[2:]))
"""


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def can_connect(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Proc:
    pid: int
    ppid: int
    uid: int
    gid: int
    title: str
    state: str


def read_proc(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    uid = gid = -1
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("Gid:"):
            gid = int(line.split()[1])
    title = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return Proc(pid, int(rest[1]), uid, gid, title, rest[0])


def children_of(pid: int) -> list[Proc]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            p = read_proc(int(entry))
            if p is not None and p.ppid == pid:
                found.append(p)
    return sorted(found, key=lambda p: p.pid)


class NotifyListener:
    """An abstract AF_UNIX datagram socket playing systemd's side of sd_notify."""

    def __init__(self) -> None:
        self.name = f"@stalwart-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages: list[list[str]] = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.messages.append(data.decode().split("\n"))
                self.cond.notify_all()

    def wait(self, line: str, since: int = 0, timeout: float = 30.0,
             alive: Callable[[], bool] = lambda: True) -> int:
        """Index of the first message at or after ``since`` holding ``line``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(since, len(self.messages)):
                    if line in self.messages[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    raise AssertionError(f"no {line} notification (got {self.messages})")
                self.cond.wait(min(left, 0.2))

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        self.thread.join(2)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


class Daemon:
    """One stalwart-master under test; see the module docstring."""

    def __init__(self, root: Path, kinds: dict[str, str] | None = None) -> None:
        self.root = root
        self.config_path = root / "config.toml"
        self.base_dir = root / "var"
        self.log_path = root / "daemon.log"
        self.kinds = dict(kinds or {})
        self.proc: subprocess.Popen | None = None
        self.notify: NotifyListener | None = None
        self.ports: list[int] = []

    # -- configuration -------------------------------------------------------------

    def port(self) -> int:
        return free_port()

    def configure(self, listeners: Iterable[tuple[str, str, int]] = (), *,
                  workers: dict[str, int] | None = None,
                  server: dict[str, Any] | None = None,
                  run_as: tuple[str, str | None] | None = None,
                  tracer: dict[str, Any] | None = None,
                  storage: dict[str, Any] | None = None,
                  extra: str = "") -> Path:
        """Write ``config.toml``: listeners as ``(id, protocol, port)`` on 127.0.0.1.

        ``server`` adds ``[server]`` keys (``{"heartbeat-timeout": "2s"}``); ``workers``
        sizes pools (every pool defaults to 1 worker here); ``storage`` adds ``[storage]``
        keys (``{"data": "memory"}``); ``tracer`` replaces the stdout text tracer at info;
        ``extra`` is appended verbatim.
        """
        listeners = list(listeners)
        settings = {"hostname": "mx.test.invalid", "shutdown-timeout": "10s",
                    "respawn-throttle": "200ms", **(server or {})}
        if run_as is not None:
            settings["run-as.user"] = run_as[0]
            if run_as[1]:
                settings["run-as.group"] = run_as[1]
        lines = ["[server]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
        lines.append("")
        lines.append("[server.workers]")
        sizes = {p: 1 for p in ("smtp", "lmtp", "imap", "pop3", "managesieve", "http")}
        sizes.update(workers or {})
        lines += [f"{k} = {v}" for k, v in sizes.items()]
        for ident, protocol, port in listeners:
            lines += ["", "[[server.listener]]", f"id = {_toml_value(ident)}",
                      f"protocol = {_toml_value(protocol)}", f'bind = "127.0.0.1:{port}"']
        lines += ["", "[storage]", f"directory = {_toml_value(str(self.base_dir))}"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in (storage or {}).items()]
        lines += ["",
                  "[authentication.fallback-admin]", 'user = "admin"',
                  'secret = "test-secret"', ""]
        tracer = tracer or {"type": "stdout", "level": "info", "format": "text"}
        lines.append("[tracer.main]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in tracer.items()]
        lines += ["", extra]
        self.config_path.write_text("\n".join(lines))
        self.ports = [port for _, _, port in listeners]
        return self.config_path

    # -- process control -----------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", _BOOTSTRAP, json.dumps(self.kinds), *args]

    def spawn(self, *args: str, notify: bool = True, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        """Start the daemon without waiting (``args`` default to ``--config config.toml``)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(TESTS), str(REPO), environment.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        environment.pop("NOTIFY_SOCKET", None)
        if notify:
            if self.notify is None:
                self.notify = NotifyListener()
            environment["NOTIFY_SOCKET"] = self.notify.name
        environment.update(env or {})
        out = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv(*(args or ("--config", str(self.config_path)))),
                cwd=self.root, env=environment, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        finally:
            out.close()
        return self.proc

    def start(self, *args: str, timeout: float = 40.0, env: dict[str, str] | None = None
              ) -> "Daemon":
        """Spawn and wait until READY=1 and every configured port accepts."""
        since = len(self.notify.messages) if self.notify else 0
        self.spawn(*args, env=env)
        try:
            self.notify.wait("READY=1", since=since, timeout=timeout, alive=self.running)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon log ---\n{self.log()}") from None
        for port in self.ports:
            wait_for(lambda: can_connect(port), timeout=10, message=f"port {port}")
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def reload(self, timeout: float = 30.0, expect_ready: bool = True) -> None:
        """SIGHUP; wait for RELOADING=1, then READY=1 (the new generation is up)."""
        since = len(self.notify.messages)
        self.send_signal(signal.SIGHUP)
        i = self.notify.wait("RELOADING=1", since=since, timeout=timeout, alive=self.running)
        if expect_ready:
            self.notify.wait("READY=1", since=i + 1, timeout=timeout, alive=self.running)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        """Send ``sig`` (SIGTERM) and return the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the master and every child still there (teardown)."""
        if self.proc is None:
            return
        kids = children_of(self.proc.pid) if self.proc.poll() is None else []
        for p in [*kids]:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.running():
            try:
                self.stop(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    # -- observation ---------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def notifications(self) -> list[list[str]]:
        return self.notify.messages if self.notify else []

    def wait_notify(self, line: str, since: int = 0, timeout: float = 30.0) -> int:
        return self.notify.wait(line, since=since, timeout=timeout, alive=self.running)

    def processes(self) -> list[Proc]:
        """The master's children now (pid, uid, title such as 'stalwart: http worker 0 ...')."""
        return children_of(self.pid)

    def workers(self, kind: str) -> dict[int, Proc]:
        """Pool workers of ``kind`` by slot, from their titles (draining ones left out)."""
        found: dict[int, Proc] = {}
        prefix = f"stalwart: {kind} worker "
        for p in self.processes():
            if p.title.startswith(prefix) and "(draining)" not in p.title:
                found[int(p.title[len(prefix):].split()[0])] = p
        return found

    def singleton(self, kind: str) -> Proc | None:
        for p in self.processes():
            if p.title == f"stalwart: {kind}":
                return p
        return None

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0,
                 message: str = "condition") -> Any:
        def check():
            if not self.running():
                raise AssertionError(f"daemon exited ({self.proc.returncode}) while waiting "
                                     f"for {message}\n--- daemon log ---\n{self.log()}")
            return predicate()
        return wait_for(check, timeout=timeout, message=message)


@pytest.fixture
def daemon(tmp_path, request):
    """A ``Daemon`` on ``tmp_path`` (not started); always stopped at teardown."""
    made: list[Daemon] = []

    def make(kinds: dict[str, str] | None = None, root: Path | None = None) -> Daemon:
        d = Daemon(root or tmp_path / f"d{len(made)}", kinds)
        d.root.mkdir(parents=True, exist_ok=True)
        made.append(d)
        return d

    first = make()
    first.make = make              # more daemons, or one with other kinds: daemon.make(...)
    yield first
    failed = getattr(request.node, "rep_call", None)
    for d in made:
        d.close()
        if failed is not None and failed.failed:
            sys.stderr.write(f"\n--- {d.log_path} ---\n{d.log()[-20000:]}\n")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# ------------------------------------------------------------------ kinds for tests
# These run INSIDE the daemon, as process kinds (see ``kinds=`` above).

async def crash_at_once(ctx) -> None:
    """A kind that fails as soon as it starts: drives the respawn throttle."""
    raise RuntimeError(f"{ctx.kind} {ctx.slot}: crashing on purpose")


async def line_echo(ctx) -> None:
    """Echo each line back, prefixed with ``<kind> <slot> <generation> <pid>: ``.

    Counts connections through ``ctx.connection_opened/closed`` (the process title shows
    them); on shutdown stops accepting and lets connections finish for up to
    ``server.shutdown-timeout``, then closes them.
    """
    conns: set[asyncio.Task] = set()
    prefix = f"{ctx.kind} {ctx.slot} {ctx.generation} {os.getpid()}: ".encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ctx.connection_opened()
        conns.add(asyncio.current_task())
        try:
            while line := await reader.readline():
                writer.write(prefix + line)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conns.discard(asyncio.current_task())
            ctx.connection_closed()
            writer.close()

    servers = [await asyncio.start_server(handle, sock=sock) for _, sock in ctx.sockets]
    await ctx.shutdown.wait()
    for server in servers:
        server.close()
    if conns:
        _, pending = await asyncio.wait(set(conns),
                                        timeout=float(ctx.config.get("server.shutdown-timeout")))
        for task in pending:
            task.cancel()


async def serve_forever_blocking(ctx) -> None:
    """A kind whose event loop blocks for good after start: a hung worker."""
    await asyncio.sleep(0.5)
    while True:
        time.sleep(3600)
