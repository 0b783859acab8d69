"""The life of a forked process: from the master's ``fork()`` to ``os._exit``.

``run(ctx, serve, ...)`` is called in the child right after ``fork`` (the master has
already closed, in the child, every descriptor that is not this process's). In order:

1. Signals: the master's handlers and wakeup fd are undone; SIGINT is ignored (a Ctrl-C
   in a terminal reaches the whole process group, and the master alone decides the order
   of shutdown: pools first, the store last).
2. Title and log label (``stalwart: imap worker 2 [0 conns]``, ``imap.2``).
3. Privileges: ``setgroups``, ``setgid``, ``setuid`` to ``server.run-as`` when started as
   root, before any data is touched or any connection accepted; then a check that root
   cannot be regained. The parent-death signal is set after the switch (a credential
   change clears it).
4. The event loop (uvloop): SIGTERM sets ``ctx.shutdown`` (drain), SIGUSR1 reopens the
   log files; ``serve(ctx)`` runs next to the heartbeat task, which beats the shared
   record, keeps the title's connection count current, and starts a drain if the master
   is gone (the process was re-parented).
5. Exit status: 0 after a drain the master asked for; 1 if ``serve`` raised; 2 if it
   returned on its own (the master treats both as a crash and respawns with its
   throttle).

Nothing here returns: the process ends with ``os._exit`` so that no state inherited from
the master (atexit handlers, buffered streams) runs twice.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import grp
import logging
import os
import pwd
import signal
import sys
import time
from typing import Any, Awaitable, Callable, NoReturn

from .context import WorkerContext

__all__ = ["run", "drop_privileges", "Identity", "EXIT_OK", "EXIT_CRASHED", "EXIT_RETURNED",
           "EXIT_IDLE"]

log = logging.getLogger("stalwart.worker")

EXIT_OK, EXIT_CRASHED, EXIT_RETURNED = 0, 1, 2
#: An on-demand worker that left after ``server.idle-exit`` without connections.
EXIT_IDLE = 3

#: Upper bound of the interval between two beats (a fraction of the timeout below that).
BEAT_INTERVAL = 1.0
#: A process gives its free heap pages back this long after it started, then after each
#: such quiet period without connections (stalwart.worker.memory).
TRIM_AFTER = 3.0
TRIM_INTERVAL = 60.0

_PR_SET_PDEATHSIG = 1


class Identity:
    """The account workers run as: resolved once by the master, applied in each child."""

    def __init__(self, user: str, uid: int, gid: int, home: str) -> None:
        self.user, self.uid, self.gid, self.home = user, uid, gid, home

    @classmethod
    def lookup(cls, user: str, group: str | None) -> "Identity":
        pw = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
        return cls(pw.pw_name, pw.pw_uid, gid, pw.pw_dir)

    def __repr__(self) -> str:
        return f"Identity({self.user!r}, uid={self.uid}, gid={self.gid})"


def drop_privileges(identity: Identity | None) -> None:
    """Switch to ``identity`` for good (only when running as root; else nothing to do)."""
    if identity is None or os.geteuid() != 0:
        return
    os.setgroups([identity.gid])
    os.setgid(identity.gid)
    os.setuid(identity.uid)
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:  # pragma: no cover - the kernel guarantees this; refuse to go on if not
            raise RuntimeError("privileges could be regained after setuid")
    os.environ.update(HOME=identity.home, USER=identity.user, LOGNAME=identity.user)


def _set_parent_death_signal(sig: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the heartbeat task's ppid check remains
        pass


def _set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - a declared dependency
        return
    setproctitle.setproctitle(title)


async def _beat(ctx: WorkerContext, master_pid: int, interval: float) -> None:
    from .memory import trim

    title = ""
    next_trim = time.monotonic() + TRIM_AFTER
    while True:
        ctx.heartbeat()
        now = time.monotonic()
        if now >= next_trim and not ctx.connections:
            trim()
            next_trim = now + TRIM_INTERVAL
        if ctx.title != title:
            title = ctx.title
            _set_title(title)
        if os.getppid() != master_pid and not ctx.shutdown.is_set():
            log.error("the master (pid %d) is gone: draining", master_pid)
            ctx.shutdown.set()
        if ctx.retiring and not ctx.connections and not ctx.shutdown.is_set():
            log.info("%s: replaced, and its last connection ended", ctx.label)
            ctx.shutdown.set()
        if (ctx.idle_exit is not None and not ctx.shutdown.is_set()
                and ctx.idle_for(time.monotonic()) >= ctx.idle_exit
                and (ctx.may_leave is None or _may_leave(ctx))):
            if ctx.singleton:
                log.info("%s: idle for %.0fs and nothing due soon: leaving until needed",
                         ctx.label, ctx.idle_exit)
            else:
                log.info("%s: no connection for %.0fs: leaving until the next one",
                         ctx.label, ctx.idle_exit)
            ctx.idle_exited = True
            ctx.shutdown.set()
        if ctx.shutdown.is_set():
            await asyncio.sleep(interval)    # draining: the master still watches us
            continue
        try:     # wake at once on shutdown, so the title says "(draining)" right away
            await asyncio.wait_for(ctx.shutdown.wait(), interval)
        except asyncio.TimeoutError:
            pass


def _may_leave(ctx: WorkerContext) -> bool:
    try:
        return bool(ctx.may_leave())
    except Exception:                 # cannot tell (the store is away): stay
        log.warning("%s: idle check failed; staying", ctx.label, exc_info=True)
        ctx.touch()
        return False


async def _main(ctx: WorkerContext, serve: Callable[[Any], Awaitable[None]],
                master_pid: int, interval: float) -> int:
    from stalwart import log as stalwart_log

    loop = asyncio.get_running_loop()
    ctx.shutdown = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, ctx.shutdown.set)
    loop.add_signal_handler(signal.SIGUSR1, stalwart_log.reopen)
    loop.add_signal_handler(signal.SIGUSR2, ctx.retire)
    task = asyncio.ensure_future(serve(ctx))
    await asyncio.sleep(0)           # let serve start before the first beat says "serving"
    beats = asyncio.ensure_future(_beat(ctx, master_pid, interval))
    try:
        await task
    except Exception:
        log.exception("%s crashed", ctx.label)
        return EXIT_CRASHED
    finally:
        beats.cancel()
    if not ctx.shutdown.is_set():
        log.error("%s: serve() returned without being asked to stop", ctx.label)
        return EXIT_RETURNED
    return EXIT_IDLE if ctx.idle_exited else EXIT_OK


def run(ctx: WorkerContext, serve: Callable[[Any], Awaitable[None]], *, master_pid: int,
        identity: Identity | None, heartbeat_timeout: float) -> NoReturn:
    """The child's whole life after ``fork``; never returns."""
    code = EXIT_CRASHED
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                    signal.SIGCHLD, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        gc.enable()

        from stalwart import log as stalwart_log
        stalwart_log.set_label(ctx.label)
        _set_title(ctx.title)
        drop_privileges(identity)
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != master_pid:          # the master died before prctl took effect
            os._exit(EXIT_CRASHED)

        import uvloop
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        interval = min(BEAT_INTERVAL, heartbeat_timeout / 4)
        try:
            code = loop.run_until_complete(_main(ctx, serve, master_pid, interval))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
    except BaseException:
        try:
            log.exception("%s failed to run", ctx.label)
        except BaseException:
            pass
        code = EXIT_CRASHED
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)
