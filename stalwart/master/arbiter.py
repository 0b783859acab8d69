"""The arbiter: the master's loop that keeps every service's slots filled with live workers.

Theory of operation
-------------------
The master never touches mail and never accepts a connection. It owns the configuration,
the listening sockets (stalwart.master.sockets), the admin socket, and the processes:

- **Signals only enqueue.** Each handler appends the signal to a queue; the wakeup fd
  (``signal.set_wakeup_fd`` on a non-blocking self-pipe) wakes the loop's ``select``. The
  loop then calls ``handle_<name>`` for each queued signal, outside of signal context.
- **Each loop turn** (at least once a second): dispatch signals, reap children
  (``waitpid(-1, WNOHANG)``), then supervise: read the heartbeat of every worker (mark the
  ones that came up as ready, SIGKILL the ones silent for ``server.heartbeat-timeout``),
  retire workers a reload superseded once their successor is up, start the missing
  workers whose respawn delay has passed, SIGKILL retiring workers past their deadline,
  and tell systemd READY=1 when every slot has a ready worker.
- **Start order.** Singletons first, the store before all: pools are started when the
  store is up (or after ``STORE_BOOT_WAIT`` seconds, so a store that cannot start does
  not keep the rest down: clients then get temporary failures). A singleton is exclusive:
  a new one starts only when no process of its kind is alive (two stores would fight
  over the database, two queues would deliver twice).
- **Crashes** (an exit nobody asked for) respawn in the same slot, with the same sockets,
  after the slot's throttle delay (stalwart.master.pools.Slot.crashed).
- **SIGHUP** reloads: the new config is loaded and checked first, and its sockets bound
  (a reused address keeps its sockets); any failure leaves the running configuration
  untouched and is logged. Then the generation number grows, a new worker starts in every
  pool slot, and each old worker is told to drain (SIGTERM) once the new one in its slot
  is up, at once if its slot or pool is gone. An old pool worker is retired gently
  (SIGUSR2): it stops accepting and keeps serving its open connections (an IMAP client in
  IDLE stays connected) until they end, or until ``server.reload-drain-timeout`` when it
  gets SIGTERM (a normal drain). Singletons get SIGTERM at once. The master's copy of a
  socket that no listener
  uses any more is closed at once. The store keeps running unless the storage settings
  changed; queue and scheduler are restarted one after the other. systemd sees
  RELOADING=1 then READY=1 once the new generation is up.
- **SIGTERM / SIGINT** drain: STOPPING=1; every process but the store gets SIGTERM; when
  they are gone or ``server.shutdown-timeout`` has passed (stragglers get SIGKILL) the
  store gets SIGTERM and ``STORE_GRACE`` seconds to finish its last commit. The master
  exits 0. A second SIGTERM/SIGINT, or SIGQUIT, cuts the drain short.
- **SIGUSR1** reopens the master's log files and is passed on to every child.
- **On demand** (``server.on-demand``): a pool slot without a worker is *dormant*; the
  loop polls its listening sockets (and, for the http pool, the admin socket) together
  with the self-pipe, and forks the slot's worker when one is readable: the waiting
  connection stays in the socket's queue, which the master's copy keeps alive. A worker
  that leaves after ``server.idle-exit`` without connections exits with ``EXIT_IDLE``:
  not a crash, its slot goes dormant. A crash of an on-demand worker is throttled as
  any other; the slot is refilled after the delay if a connection is waiting.
- **Singletons on demand**: the master owns the control sockets of the queue and the
  scheduler (``run/queue.sock``, ``run/scheduler.sock``), as it owns the listeners; the
  running singleton serves its socket (inherited), and while it is dormant the loop polls
  it with the dormant pool sockets, so a client (an SMTP worker's queue wake-up, the
  API's retry, the store's "mail to index" poke) starts it and then waits in the socket's
  queue. Both start at boot; one that leaves idle (``EXIT_IDLE``) records in its
  heartbeat page when it wants to run again (the next queue entry due, the next periodic
  job), and the loop starts it at that wall-clock time. A crash restarts it after the
  throttle delay.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import select
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from stalwart import log as stalwart_log
from stalwart.config import Config, ConfigError
from stalwart.worker import process as worker_process
from stalwart.worker.context import WorkerContext
from stalwart.worker.heartbeat import BOOTING, Heartbeat
from stalwart.worker.memory import trim

from .notify import Notifier
from .pools import ON_DEMAND_SINGLETONS, Service, Slot, Worker, plan
from .privileges import identity_for, prepare_directories
from .sockets import SocketTable, listen_unix

__all__ = ["Arbiter", "STORE_BOOT_WAIT", "STORE_GRACE", "KILL_GRACE"]

log = logging.getLogger("stalwart.master")

#: Longest wait for the store to come up before the pools start anyway.
STORE_BOOT_WAIT = 15.0
#: Time the store gets, after everything else stopped, to finish its last commit.
STORE_GRACE = 5.0
#: Extra time a draining worker gets past ``server.shutdown-timeout`` before SIGKILL.
KILL_GRACE = 1.0
#: A worker that has never beaten is hung after this long (it may be opening a database).
BOOT_TIMEOUT_MIN = 60.0
#: Longest sleep of the loop.
TICK = 1.0
#: Sleep of the loop while a worker is still booting.
BOOT_POLL = 0.05

_HANDLED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
            signal.SIGCHLD)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit status {os.WEXITSTATUS(status)}"


class Arbiter:
    """The master process. ``run()`` returns the exit status."""

    def __init__(self, config: Config, load_config: Callable[[], Config],
                 kinds: dict[str, Callable[[Any], Any]]) -> None:
        self.config = config
        self.load_config = load_config
        self.kinds = kinds
        self.pid = os.getpid()
        self.table = SocketTable()
        self.services: dict[str, Service] = {}
        self.workers: dict[int, Worker] = {}
        self.generation = 1
        self.signals: list[int] = []
        self.notifier = Notifier()
        self.identity = None
        self.admin_path: Path | None = None
        self.admin_sock = None
        self.control_socks: dict[str, tuple[Path, Any]] = {}   # kind -> (path, socket)
        self.lock_fd: int | None = None
        self.pipe: tuple[int, int] | None = None
        self.started_at = time.monotonic()
        self.store_booted = False
        self.announced = False
        self.first_ready = True
        self.stopping = False
        self.pending: set[tuple[str, int]] = set()   # dormant slots a client is waiting on
        self.stop_deadline = 0.0
        self.exit_code = 0

    # ------------------------------------------------------------------ settings

    def _seconds(self, key: str) -> float:
        return float(self.config.get(key))

    @property
    def heartbeat_timeout(self) -> float:
        return self._seconds("server.heartbeat-timeout")

    @property
    def shutdown_timeout(self) -> float:
        return self._seconds("server.shutdown-timeout")

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        try:
            self.setup()
        except (OSError, ConfigError) as exc:
            log.error("cannot start: %s", exc)
            self.cleanup()
            return 1
        log.info("master running (pid %d): %s", self.pid,
                 "; ".join(s.describe() for s in self.services.values()))
        try:
            while True:
                self.wait(self.next_timeout())
                self.dispatch_signals()
                self.reap()
                now = time.monotonic()
                if self.stopping:
                    if self.stop_tick(now):
                        break
                else:
                    self.supervise(now)
        except Exception:
            log.critical("master failed; stopping every process", exc_info=True)
            self.exit_code = 1
            self.kill_all(signal.SIGTERM)
        finally:
            self.cleanup()
        log.info("master exiting with status %d", self.exit_code)
        return self.exit_code

    def setup(self) -> None:
        self.init_signals()
        self.identity = identity_for(self.config)
        prepare_directories(self.config, self.identity, stalwart_log.file_paths())
        self.lock()
        self.open_admin_socket(self.config)
        self.table.begin()
        try:
            self.services = plan(self.config, self.kinds, self.table)
        except OSError:
            self.table.rollback()
            raise
        self.table.commit()
        self.open_control_sockets(self.config, self.services)
        if not self.services:
            raise OSError("nothing to run: no listener is served by an available process "
                          "kind")
        self.notifier.status("Starting")

    def lock(self) -> None:
        """Hold ``run/master.pid`` locked: one master per data directory."""
        path = self.config.run_dir / "master.pid"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise OSError(f"another stalwart-master (pid {other or '?'}) runs on "
                          f"{self.config.base_dir}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.pid}\n".encode(), 0)
        self.lock_fd = fd
        self.pid_path = path

    def open_admin_socket(self, config: Config) -> None:
        path = config.run_dir / "admin.sock"
        if path == self.admin_path and self.admin_sock is not None:
            return
        uid = self.identity.uid if self.identity else None
        gid = self.identity.gid if self.identity else None
        sock = listen_unix(path, uid=uid, gid=gid, mode=0o600)
        old, self.admin_sock, self.admin_path = self.admin_sock, sock, path
        if old is not None:
            old.close()

    def open_control_sockets(self, config: Config, services: dict[str, Service]) -> None:
        """The control sockets (``run/<kind>.sock``) of the queue and the scheduler when
        they run: the master keeps them so that they exist, and queue their clients,
        while the singleton is down. A kind no longer run loses its socket (a client then
        fails at once instead of waiting for nobody)."""
        uid = self.identity.uid if self.identity else None
        gid = self.identity.gid if self.identity else None
        for kind in ON_DEMAND_SINGLETONS:
            path = config.run_dir / f"{kind}.sock"
            old = self.control_socks.get(kind)
            if kind in services and old is not None and old[0] == path:
                continue
            if kind in services:
                self.control_socks[kind] = (path, listen_unix(path, uid=uid, gid=gid,
                                                              mode=0o600))
            else:
                self.control_socks.pop(kind, None)
            if old is not None:
                old[1].close()
                if old[0] != path or kind not in services:
                    try:
                        os.unlink(old[0])
                    except OSError:
                        pass

    def cleanup(self) -> None:
        for path, sock in self.control_socks.values():
            sock.close()
            try:
                os.unlink(path)
            except OSError:
                pass
        self.control_socks.clear()
        self.table.close()
        if self.admin_sock is not None:
            self.admin_sock.close()
            try:
                os.unlink(self.admin_path)
            except OSError:
                pass
            self.admin_sock = None
        for w in self.workers.values():
            w.heartbeat.close()
        if self.lock_fd is not None:
            try:
                os.unlink(self.pid_path)
            except OSError:
                pass
            os.close(self.lock_fd)
            self.lock_fd = None
        self.notifier.close()
        if self.pipe is not None:
            signal.set_wakeup_fd(-1)
            for fd in self.pipe:
                os.close(fd)
            self.pipe = None

    # ------------------------------------------------------------------ signals

    def init_signals(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pipe = (r, w)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        for sig in _HANDLED:
            signal.signal(sig, self._enqueue)
        # A slow reader of our stdout must not kill us with SIGPIPE; writes then fail.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _enqueue(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGCHLD and signal.SIGCHLD in self.signals:
            return
        if len(self.signals) < 16:
            self.signals.append(signum)

    def dormant_sockets(self, now: float) -> dict[int, tuple[str, int]]:
        """fd -> (kind, slot) of the sockets of on-demand slots waiting for a client."""
        watched: dict[int, tuple[str, int]] = {}
        if self.stopping or not self.store_booted:
            return watched
        for service in self.services.values():
            if not service.on_demand:
                continue
            for slot in service.slots:
                if slot.worker is not None or now < slot.not_before:
                    continue
                if (service.kind, slot.index) in self.pending:
                    continue
                if service.singleton:
                    if service.kind in self.control_socks and not self.kind_alive(service.kind):
                        sock = self.control_socks[service.kind][1]
                        watched[sock.fileno()] = (service.kind, slot.index)
                    continue
                for _, sock in slot.sockets:
                    watched[sock.fileno()] = (service.kind, slot.index)
                if service.kind == "http" and slot.index == 0 and self.admin_sock is not None:
                    watched[self.admin_sock.fileno()] = (service.kind, slot.index)
        return watched

    def kind_alive(self, kind: str) -> bool:
        return any(w.kind == kind for w in self.workers.values())

    def wait(self, timeout: float) -> None:
        if self.signals:
            return
        watched = self.dormant_sockets(time.monotonic())
        poller = select.poll()
        poller.register(self.pipe[0], select.POLLIN)
        for fd in watched:
            poller.register(fd, select.POLLIN)
        try:
            events = poller.poll(max(timeout, 0.0) * 1000)
        except InterruptedError:
            return
        for fd, _ in events:
            if fd == self.pipe[0]:
                try:
                    while os.read(self.pipe[0], 512):
                        pass
                except BlockingIOError:
                    pass
            elif fd in watched:
                self.pending.add(watched[fd])

    def dispatch_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            name = signal.Signals(signum).name[3:].lower()
            handler = getattr(self, f"handle_{name}", None)
            if handler is None:
                log.warning("ignoring unexpected %s", signal.Signals(signum).name)
                continue
            if signum != signal.SIGCHLD:
                log.info("received %s", signal.Signals(signum).name)
            handler()

    def handle_chld(self) -> None:
        """Reaping happens on every loop turn; the signal only wakes the loop."""

    def handle_hup(self) -> None:
        self.reload()

    def handle_term(self) -> None:
        self.begin_stop(graceful=True)

    def handle_int(self) -> None:
        self.begin_stop(graceful=True)

    def handle_quit(self) -> None:
        self.begin_stop(graceful=False)

    def handle_usr1(self) -> None:
        stalwart_log.reopen()
        log.info("log files reopened")
        self.kill_all(signal.SIGUSR1)

    # ------------------------------------------------------------------ processes

    def kill(self, worker: Worker, sig: int) -> None:
        try:
            os.kill(worker.pid, sig)
        except ProcessLookupError:
            pass

    def kill_all(self, sig: int) -> None:
        for w in list(self.workers.values()):
            self.kill(w, sig)

    def spawn(self, service: Service, slot: Slot) -> Worker:
        heartbeat = Heartbeat()
        ctx = WorkerContext(
            kind=service.kind, slot=slot.index, generation=self.generation,
            config=self.config, sockets=list(slot.sockets),
            admin_socket=self.admin_sock if service.kind == "http" else None,
            control_socket=(self.control_socks[service.kind][1]
                            if service.kind in self.control_socks else None),
            idle_exit=self._seconds("server.idle-exit") if service.on_demand else None,
            _heartbeat=heartbeat)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        gc.freeze()            # what the master built so far stays in shared pages
        pid = os.fork()
        if pid == 0:           # the child: never returns
            self._close_in_child(ctx, heartbeat)
            worker_process.run(ctx, service.serve, master_pid=self.pid,
                               identity=self.identity,
                               heartbeat_timeout=self.heartbeat_timeout)
        worker = Worker(pid, service.kind, slot.index, self.generation, heartbeat,
                        time.monotonic())
        slot.worker = worker
        self.workers[pid] = worker
        log.info("started %s", worker.name)
        return worker

    def _close_in_child(self, ctx: WorkerContext, heartbeat: Heartbeat) -> None:
        """Drop every descriptor of the master that this child has no business with."""
        keep = {id(sock) for _, sock in ctx.sockets}
        for sock in self.table.all():
            if id(sock) not in keep:
                sock.close()
        if self.admin_sock is not None and ctx.admin_socket is None:
            self.admin_sock.close()
        for _, sock in self.control_socks.values():
            if sock is not ctx.control_socket:
                sock.close()
        for w in self.workers.values():
            w.heartbeat.close()
        self.notifier.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
        if self.pipe is not None:
            signal.set_wakeup_fd(-1)
            for fd in self.pipe:
                os.close(fd)

    def retire(self, worker: Worker, now: float, timeout: float) -> None:
        """Ask a worker to drain (SIGTERM); SIGKILL it if still there after ``timeout``."""
        if worker.retiring:
            if worker.term_at is not None:        # retiring gently: drain now instead
                worker.term_at = None
                self.kill(worker, signal.SIGTERM)
            worker.kill_at = min(worker.kill_at or now + timeout, now + timeout)
            return
        worker.retiring = True
        worker.kill_at = now + timeout
        log.info("retiring %s", worker.name)
        self.kill(worker, signal.SIGTERM)

    def retire_gently(self, worker: Worker, now: float) -> None:
        """A reload's retirement (SIGUSR2): stop accepting, finish the open connections;
        SIGTERM after ``server.reload-drain-timeout``, SIGKILL a drain later."""
        if worker.retiring:
            return
        worker.retiring = True
        worker.term_at = now + self._seconds("server.reload-drain-timeout")
        worker.kill_at = worker.term_at + self.shutdown_timeout + KILL_GRACE
        log.info("retiring %s once its connections end", worker.name)
        self.kill(worker, signal.SIGUSR2)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            try:
                self.exited(worker, status)
            finally:
                worker.heartbeat.close()
                self.remove_secondaries(pid)

    def remove_secondaries(self, pid: int) -> None:
        """The RocksDB secondaries of a child that is gone (``run/secondary/<pid>``,
        ``<purpose>-<pid>``): on demand, processes come and go all day."""
        root = self.config.run_dir / "secondary"
        for path in (root / str(pid), *root.glob(f"*-{pid}")):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    def exited(self, worker: Worker, status: int) -> None:
        how = _describe_status(status)
        service = self.services.get(worker.kind)
        slot = None
        if service is not None and worker.slot < service.size:
            slot = service.slots[worker.slot]
            if slot.worker is not worker:
                slot = None
        if slot is not None:
            slot.worker = None
        if worker.retiring or self.stopping:
            log.info("%s exited (%s)", worker.name, how)
            return
        if (slot is not None and os.WIFEXITED(status)
                and os.WEXITSTATUS(status) == worker_process.EXIT_IDLE):
            if service.singleton:
                slot.wake_at = worker.heartbeat.wake_at()
                when = ("when asked" if slot.wake_at is None else
                        time.strftime("at %Y-%m-%d %H:%M:%S UTC or when asked",
                                      time.gmtime(slot.wake_at)))
                log.info("%s left after %gs idle with nothing due; next start %s",
                         worker.name, self._seconds("server.idle-exit"), when)
                return
            log.info("%s left after %gs without connections; its slot waits for the next",
                     worker.name, self._seconds("server.idle-exit"))
            return
        if slot is None:                      # superseded by a reload, not yet retired
            log.warning("%s exited unexpectedly (%s)", worker.name, how)
            return
        now = time.monotonic()
        if service.singleton and service.on_demand:
            slot.wake_at = 0.0                # back after the throttle: work may be due
        delay = slot.crashed(now, now - worker.started,
                             self._seconds("server.respawn-throttle"),
                             self._seconds("server.respawn-throttle-max"))
        if slot.crashes > 1:
            log.error("%s exited unexpectedly (%s), %d times in a row; next start in %.1fs",
                      worker.name, how, slot.crashes, delay)
        else:
            log.error("%s exited unexpectedly (%s); restarting in %.1fs",
                      worker.name, how, delay)

    # ------------------------------------------------------------------ supervision

    def next_timeout(self) -> float:
        if self.stopping:
            return 0.2
        now = time.monotonic()
        timeout = min(TICK, self.heartbeat_timeout / 4)
        if any(not w.ready for w in self.workers.values()):
            timeout = min(timeout, BOOT_POLL)      # notice soon when they come up
        wall = time.time()
        for service in self.services.values():
            for slot in service.slots:
                if slot.worker is None:
                    if service.on_demand and slot.not_before <= now \
                            and (service.kind, slot.index) not in self.pending:
                        if slot.wake_at is not None:      # a dormant singleton's timer
                            timeout = min(timeout, max(slot.wake_at - wall, 0.01))
                        continue              # dormant: the poll wakes us for a client
                    timeout = min(timeout, max(slot.not_before - now, 0.01))
        return max(timeout, 0.01)

    def supervise(self, now: float) -> None:
        self.check_heartbeats(now)
        self.start_missing(now)
        self.retire_superseded(now)
        self.enforce_deadlines(now)
        self.check_ready()

    def check_heartbeats(self, now: float) -> None:
        timeout = self.heartbeat_timeout
        boot_timeout = max(timeout, BOOT_TIMEOUT_MIN)
        for w in list(self.workers.values()):
            if w.killed:
                continue
            beat = w.heartbeat.read()
            if not w.ready and beat.at and beat.state != BOOTING:
                w.ready = True
                log.debug("%s is up", w.name)
            if beat.at:
                silent, limit = now - beat.at, timeout
            else:
                silent, limit = now - w.started, boot_timeout
            if silent > limit:
                log.error("%s has not reported for %.1fs: killing it", w.name, silent)
                w.killed = True
                self.kill(w, signal.SIGKILL)

    def retire_superseded(self, now: float) -> None:
        for w in list(self.workers.values()):
            if w.superseded_at is None or w.retiring:
                continue
            service = self.services.get(w.kind)
            if service is None or service.singleton or w.slot >= service.size:
                ready = True                  # its slot is gone (or exclusive): no successor
            else:
                successor = service.slots[w.slot].worker
                ready = (successor is not None and successor.ready) or \
                    (successor is None and service.on_demand)    # dormant: nothing to wait for
            # A successor that does not come up (crash loop) does not keep the old
            # generation forever.
            if ready or now - w.superseded_at > self.heartbeat_timeout:
                if service is not None and not service.singleton:
                    self.retire_gently(w, now)
                else:
                    self.retire(w, now, self.shutdown_timeout + KILL_GRACE)

    def start_missing(self, now: float) -> None:
        alive_kinds = {w.kind for w in self.workers.values()}
        store = self.services.get("store")
        if store is not None and not self.store_booted:
            if store.ready() or now - self.started_at > STORE_BOOT_WAIT:
                self.store_booted = True
        for service in self.services.values():
            if not service.singleton and store is not None and not self.store_booted:
                continue
            for slot in service.slots:
                if slot.worker is not None or now < slot.not_before:
                    continue
                if service.singleton and service.kind in alive_kinds:
                    continue          # its predecessor is still draining
                if service.on_demand:
                    due = slot.wake_at is not None and slot.wake_at <= time.time()
                    if (service.kind, slot.index) not in self.pending and not due:
                        continue      # dormant until a client connects (or its time)
                    self.pending.discard((service.kind, slot.index))
                    slot.wake_at = None
                self.spawn(service, slot)
                alive_kinds.add(service.kind)

    def enforce_deadlines(self, now: float) -> None:
        for w in list(self.workers.values()):
            if w.term_at is not None and now >= w.term_at and not w.killed:
                log.info("%s still has connections after %gs: draining it", w.name,
                         self._seconds("server.reload-drain-timeout"))
                w.term_at = None
                self.kill(w, signal.SIGTERM)
            if w.retiring and not w.killed and w.kill_at is not None and now >= w.kill_at:
                log.warning("%s did not finish draining in time: killing it", w.name)
                w.killed = True
                self.kill(w, signal.SIGKILL)

    def check_ready(self) -> None:
        if self.announced or not all(s.ready() for s in self.services.values()):
            return
        self.announced = True
        status = self.status_text()
        log.info("ready (generation %d): %s", self.generation, status)
        self.notifier.ready(status)
        trim()                 # what starting (or reloading) allocated and dropped
        self.first_ready = False

    def status_text(self) -> str:
        pools = [f"{s.kind} x{s.size}" for s in self.services.values() if not s.singleton]
        singles = [s.kind for s in self.services.values() if s.singleton]
        return f"Serving {', '.join(pools) or 'no pools'}; {', '.join(singles) or 'no services'}"

    # ------------------------------------------------------------------ reload

    def reload(self) -> None:
        if self.stopping:
            return
        self.notifier.reloading()
        try:
            config = self.load_config()
        except ConfigError as exc:
            for err in exc.errors:
                log.error("reload: %s", err)
            log.error("reload failed: still running the previous configuration")
            self.notifier.ready("Reload failed (see the log); running the previous "
                                "configuration")
            return
        for warning in config.warnings:
            log.warning("%s", warning)
        try:
            stalwart_log.setup(config.tracers)
            prepare_directories(config, self.identity, stalwart_log.file_paths())
            self.open_admin_socket(config)
            self.table.begin()
            try:
                services = plan(config, self.kinds, self.table)
                self.open_control_sockets(config, services)
            except OSError:
                self.table.rollback()
                raise
        except OSError as exc:
            log.error("reload failed: %s; still running the previous configuration", exc)
            self.notifier.ready("Reload failed (see the log); running the previous "
                                "configuration")
            return
        closed = self.table.commit()
        now = time.monotonic()
        old_store = self.config.store
        self.config, self.generation = config, self.generation + 1
        old_services, self.services = self.services, services
        for kind, old in old_services.items():
            new = services.get(kind)
            for slot in old.slots:
                if new is not None and slot.index < new.size:
                    new.slots[slot.index].inherit(slot, singleton=new.singleton)
                w = slot.worker
                if w is None:
                    continue
                if kind == "store" and new is not None and config.store == old_store:
                    new.slots[0].worker = w        # the store keeps running
                    continue
                w.superseded_at = now
        self.pending = {(kind, index) for kind, index in self.pending
                        if kind in services and services[kind].on_demand
                        and index < services[kind].size}
        self.announced = False
        gc.collect()
        log.info("reloaded %s: generation %d; %s (%d sockets closed)", config.source,
                 self.generation, "; ".join(s.describe() for s in services.values()), closed)
        self.supervise(now)

    # ------------------------------------------------------------------ stop

    def begin_stop(self, graceful: bool) -> None:
        now = time.monotonic()
        if self.stopping:
            graceful = False          # asked twice: no more patience
        elif graceful:
            log.info("stopping: draining connections for up to %.1fs", self.shutdown_timeout)
        self.stopping = True
        self.notifier.stopping()
        timeout = self.shutdown_timeout + KILL_GRACE if graceful else KILL_GRACE
        self.stop_deadline = now + timeout
        for w in list(self.workers.values()):
            if w.kind != "store":
                self.retire(w, now, timeout)

    def stop_tick(self, now: float) -> bool:
        """One turn of the stop sequence; True when every child is gone."""
        others = [w for w in self.workers.values() if w.kind != "store"]
        if not others or now >= self.stop_deadline:
            for w in list(self.workers.values()):
                if w.kind == "store":
                    self.retire(w, now, STORE_GRACE)
        self.enforce_deadlines(now)
        return not self.workers
