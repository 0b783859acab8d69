"""The periodic-job loop shared by the scheduler, DMARC and TLS reports."""

from __future__ import annotations

import asyncio

from stalwart.periodic import every
from stalwart.store.errors import StoreError


def test_runs_each_period_survives_failures_and_stops_at_once():
    async def main() -> tuple[list[int], float]:
        stop = asyncio.Event()
        calls: list[int] = []

        async def job() -> None:
            calls.append(len(calls))
            if len(calls) == 2:
                raise StoreError("unavailable", "store restarting")
            if len(calls) == 3:
                raise RuntimeError("a bug")
            if len(calls) == 5:
                stop.set()

        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(every(0.01, job, stop, first=0.0, name="t"))
        await asyncio.wait_for(task, 5)
        started = loop.time()
        stop2 = asyncio.Event()
        idle = asyncio.ensure_future(every(3600, job, stop2, name="idle"))
        await asyncio.sleep(0.01)
        stop2.set()
        await asyncio.wait_for(idle, 1)
        return calls, loop.time() - started

    calls, stopped_in = asyncio.run(main())
    assert calls == [0, 1, 2, 3, 4]          # failures at 2 and 3 did not end the loop
    assert stopped_in < 1                     # an hour-long wait ends as soon as stop is set
