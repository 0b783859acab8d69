"""The queue refills a freed delivery slot at once, not at the next poll.

With ``queue.concurrency`` messages in flight the loop sleeps up to ``poll_interval``; an
attempt that ends must wake it, or at most ``concurrency`` messages leave per poll
interval (measured by ``bench/macro/smtp_outbound.py``: 32 per second at the default 1 s).
Here: concurrency 1, a poll interval of 60 s, three messages; all three are delivered
within a few seconds, one after the other.
"""

from __future__ import annotations

import asyncio
import time

from stalwart.dns import FakeBackend, Resolver
from stalwart.queue import MemoryQueueStore, Queue, QueueSettings, Reply
from stalwart.store.blobs import MemoryBlobStore


def test_a_finished_attempt_starts_the_next_due_message_at_once():
    delivered: list[tuple[float, bytes]] = []

    async def local(message, data, rcpts):
        await asyncio.sleep(0.01)
        delivered.append((time.monotonic(), data))
        return [Reply(250, "2.0.0", "delivered", remote=False) for _ in rcpts]

    async def scenario() -> float:
        settings = QueueSettings(concurrency=1, poll_interval=60.0)
        store = MemoryQueueStore()
        queue = Queue(store, MemoryBlobStore(), Resolver(FakeBackend({})), settings,
                      local=local, is_local_domain=lambda domain: True)
        shutdown = asyncio.Event()
        runner = asyncio.create_task(queue.run(shutdown, drain_timeout=1.0))
        await asyncio.sleep(0.05)                 # the loop is waiting (60 s poll)
        start = time.monotonic()
        for i in range(3):
            await queue.enqueue(f"Subject: {i}\r\n\r\nbody\r\n".encode(),
                                return_path="a@example.test", recipients=["b@example.test"])
        deadline = time.monotonic() + 10
        while len(delivered) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        shutdown.set()
        await runner
        assert store.queue_list() == []           # every entry done and removed
        return start

    start = asyncio.run(scenario())
    assert sorted(d for _, d in delivered) == [f"Subject: {i}\r\n\r\nbody\r\n".encode()
                                               for i in range(3)]
    assert delivered[-1][0] - start < 5.0         # not one message per 60 s poll


def test_queue_waker_coalesces_a_burst_and_ignores_an_absent_queue(tmp_path):
    """A burst of wake-ups makes at most two requests (one in flight, one after it), each
    reaching the queue's wake(); with no queue process listening nothing fails."""
    import asyncio as _asyncio

    from stalwart.queue.control import ControlServer, QueueWaker

    class FakeQueue:
        wakes = 0

        def wake(self) -> None:
            self.wakes += 1

    async def main() -> tuple[int, int, int]:
        queue = FakeQueue()
        server = ControlServer(queue, tmp_path / "queue.sock")
        await server.start()
        waker = QueueWaker(tmp_path / "queue.sock")
        for _ in range(500):
            waker()
        while waker._task is not None and not waker._task.done():
            await _asyncio.sleep(0.01)
        await server.close()
        absent = QueueWaker(tmp_path / "gone.sock")
        absent()
        await absent._task
        return waker.requests, queue.wakes, absent.requests

    requests, wakes, absent = _asyncio.run(main())
    # Calls made before the first request starts are covered by it; calls made while it
    # is in flight fold into one more.
    assert 1 <= requests <= 2 and wakes == requests and absent == 1
