"""The idle clock of a worker (``WorkerContext.idle_for``) that ends on-demand workers,
and the exit status that tells the master an idle exit is not a crash."""

from __future__ import annotations

import asyncio
import os
import time

from stalwart.worker import process
from stalwart.worker.context import WorkerContext


def make() -> WorkerContext:
    return WorkerContext(kind="imap", slot=0, generation=1, config=None)  # type: ignore[arg-type]


def test_idle_clock_starts_at_the_last_close_and_stops_while_a_connection_is_open():
    ctx = make()
    ctx.connection_opened()
    assert ctx.idle_for(time.monotonic() + 3600) == 0.0
    ctx.connection_opened()
    ctx.connection_closed()
    assert ctx.idle_for(time.monotonic() + 3600) == 0.0      # one is still open
    ctx.connection_closed()
    closed_at = ctx.last_activity
    assert ctx.idle_for(closed_at + 5) == 5
    ctx.connection_closed()                                   # never below zero
    assert ctx.connections == 0


def test_idle_worker_leaves_with_exit_idle_and_a_busy_one_stays(monkeypatch):
    monkeypatch.setattr(process, "_set_title", lambda title: None)   # not pytest's title

    async def serve(ctx):
        await ctx.shutdown.wait()

    async def run(ctx, busy: bool) -> tuple[int, bool]:
        if busy:
            ctx.connection_opened()
        main = asyncio.ensure_future(process._main(ctx, serve, master_pid=os.getppid(),
                                                   interval=0.05))
        done, _ = await asyncio.wait({main}, timeout=0.6)
        if main in done:
            return main.result(), ctx.idle_exited
        ctx.shutdown.set()
        return await main, ctx.idle_exited

    idle = make()
    idle.idle_exit = 0.2
    assert asyncio.run(run(idle, busy=False)) == (process.EXIT_IDLE, True)
    busy = make()
    busy.idle_exit = 0.2
    assert asyncio.run(run(busy, busy=True)) == (process.EXIT_OK, False)
    eager = make()                                            # idle_exit None: never
    assert asyncio.run(run(eager, busy=False)) == (process.EXIT_OK, False)


def test_retire_stops_accepting_and_leaves_when_the_last_connection_ends(monkeypatch):
    """SIGUSR2 after a reload: the retire hooks run (stop accepting), open sessions go on,
    and the worker loop ends serve() once none is left; without hooks it drains at once."""
    monkeypatch.setattr(process, "_set_title", lambda title: None)
    calls = []

    async def serve(ctx):
        ctx.on_retire(lambda: calls.append("stop accepting"))
        await ctx.shutdown.wait()

    async def run() -> tuple[int, list]:
        ctx = make()
        ctx.connection_opened()
        main = asyncio.ensure_future(process._main(ctx, serve, master_pid=os.getppid(),
                                                   interval=0.05))
        await asyncio.sleep(0.1)
        ctx.retire()
        assert calls == ["stop accepting"] and ctx.retiring
        assert "(retiring)" in ctx.title
        await asyncio.sleep(0.3)
        assert not main.done() and not ctx.shutdown.is_set()    # a session is still open
        ctx.connection_closed()
        return await asyncio.wait_for(main, 5), calls

    assert asyncio.run(run()) == (process.EXIT_OK, ["stop accepting"])

    bare = make()                                  # a serve() without hooks
    bare.retire()
    assert bare.shutdown.is_set() and not bare.retiring
