"""The delivery engine: picks due messages, delivers, reschedules, bounces, notifies.

    queue = Queue(store, blobs, resolver, settings)
    qid = await queue.enqueue(raw, return_path="a@example.org", recipients=["b@example.net"])
    await queue.run_due()             # one pass over what is due now (tests, CLI "retry")
    await queue.run(shutdown_event)   # the queue process: loop until shutdown

One attempt of a message delivers every pending recipient, grouped by domain, the domains
concurrently (each through ``Deliverer``). Then, per recipient: 2xx -> delivered, 5xx ->
failed, 4xx -> still pending; pending recipients whose message has passed ``expires``
fail (4.4.7). The next attempt is due after the schedule's interval for this attempt
number (``next_retry``), but never later than the expiry, so the last try happens at the
deadline. Owed DSNs (failure, delay once after ``notify_delay``, success when relayed to a
non-DSN host and asked for) are queued to the return path, from the null reverse-path.

Durability and ordering
- ``enqueue`` writes the blob (fsynced) before the queue entry.
- After an attempt, DSNs are queued first, then the entry is updated or deleted. A crash
  between the two repeats the DSN at worst (at-least-once, like every MTA), never loses it.
- Messages being delivered are kept in ``_inflight`` so the loop does not start them twice;
  the stored ``due`` of an in-flight message is left as it was, so a crash mid-attempt
  means the message is simply tried again at restart.
- At most ``concurrency`` messages are in flight; per destination address the pool bounds
  the connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable, Protocol

from stalwart.dns import Resolver
from stalwart.store.errors import StoreError

from .delivery import Deliverer, DomainResult, LocalDeliver
from .dsn import build_dsn
from .model import QueuedMessage, QueuedRecipient, RcptStatus, Reply
from .pool import ConnectionPool
from .settings import QueueSettings, next_retry
from .store import QueueStore

__all__ = ["Queue", "Blobs"]

log = logging.getLogger("stalwart.queue")


class Blobs(Protocol):
    async def put_async(self, data: bytes) -> bytes: ...
    def get(self, digest: bytes) -> bytes: ...


class Queue:
    def __init__(self, store: QueueStore, blobs: Blobs, resolver: Resolver,
                 settings: QueueSettings, *, local: LocalDeliver | None = None,
                 is_local_domain: Callable[[str], bool] | None = None,
                 tls_verified: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.clock = clock
        self.pool = ConnectionPool(idle=settings.reuse_idle,
                                   max_messages=settings.reuse_max_messages,
                                   per_host=settings.max_connections_per_host)
        self.deliverer = Deliverer(settings, resolver, self.pool, local=local,
                                   is_local_domain=is_local_domain,
                                   tls_verified=tls_verified, clock=clock)
        self._inflight: dict[int, asyncio.Task] = {}
        self._wake: asyncio.Event | None = None

    # ------------------------------------------------------------------ submission
    async def enqueue(self, message: bytes, *, return_path: str,
                      recipients: Iterable[str | QueuedRecipient], env_id: str | None = None,
                      ret: str | None = None, requiretls: bool = False,
                      smtputf8: bool = False, body: str = "7BIT", is_dsn: bool = False) -> int:
        """Store ``message`` and queue it for ``recipients``; returns the queue id."""
        rcpts = [r if isinstance(r, QueuedRecipient) else QueuedRecipient(r) for r in recipients]
        if not rcpts:
            raise ValueError("a queued message needs at least one recipient")
        blob = await self.blobs.put_async(message)
        now = self.clock()
        entry = QueuedMessage(return_path=return_path, recipients=rcpts, blob=blob,
                              size=len(message), created=now, due=now,
                              expires=now + self.settings.expire, env_id=env_id, ret=ret,
                              requiretls=requiretls, smtputf8=smtputf8, body=body,
                              is_dsn=is_dsn)
        qid = await self.store.queue_put(entry.to_record())
        log.info("queue %s: from=<%s> nrcpt=%d size=%d%s", qid, return_path, len(rcpts),
                 len(message), " (dsn)" if is_dsn else "")
        self.wake()
        return qid

    @property
    def busy(self) -> bool:
        """Delivery attempts are in progress."""
        return bool(self._inflight)

    def wake(self) -> None:
        """Look for due messages now (new mail, an admin's retry)."""
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ admin
    def get(self, qid: int) -> QueuedMessage | None:
        rec = self.store.queue_get(qid)
        return QueuedMessage.from_record(rec) if rec is not None else None

    def list(self, limit: int = 1000, after: int = 0) -> list[QueuedMessage]:
        return [QueuedMessage.from_record(r) for r in self.store.queue_list(limit, after)]

    async def retry(self, qid: int) -> bool:
        """Make a message due now; False if it is not queued. A message being delivered
        right now is left alone: its attempt is the retry, and writing its entry here
        would race with the attempt's own update."""
        if qid in self._inflight:
            return True
        msg = self.get(qid)
        if msg is None:
            return False
        msg.due = self.clock()
        await self.store.queue_update(qid, msg.to_record())
        self.wake()
        return True

    async def cancel(self, qid: int) -> bool:
        """Remove a message without notifying anyone (``postsuper -d``)."""
        if self.store.queue_get(qid) is None:
            return False
        task = self._inflight.get(qid)
        if task is not None:
            task.cancel()
        await self.store.queue_delete(qid)
        return True

    # ------------------------------------------------------------------ running
    async def run_due(self, now: float | None = None) -> int:
        """Attempt every message due at ``now`` and wait for all of them; the count."""
        now = self.clock() if now is None else now
        started = self._start_due(now)
        if started:
            await asyncio.gather(*started, return_exceptions=True)
        return len(started)

    def _start_due(self, now: float) -> list[asyncio.Task]:
        free = self.settings.concurrency - len(self._inflight)
        if free <= 0:
            return []
        started = []
        for rec in self.store.queue_due(now, free + len(self._inflight)):
            qid = rec["id"]
            if qid in self._inflight:
                continue
            task = asyncio.create_task(self._guarded(QueuedMessage.from_record(rec)))
            self._inflight[qid] = task
            task.add_done_callback(lambda _t, qid=qid: self._finished(qid))
            started.append(task)
            if len(started) >= free:
                break
        return started

    def _finished(self, qid: int) -> None:
        """An attempt ended: its slot is free, so look for due messages now rather than
        at the next poll (otherwise at most ``concurrency`` messages leave per
        ``poll_interval``)."""
        self._inflight.pop(qid, None)
        self.wake()

    async def run(self, shutdown: asyncio.Event, *, drain_timeout: float = 30.0) -> None:
        """The queue process loop: start due messages, sleep until the next one is due,
        a new one is queued (``wake``) or ``shutdown`` is set; then let attempts in
        flight finish for up to ``drain_timeout`` seconds."""
        self._wake = asyncio.Event()
        try:
            while not shutdown.is_set():
                self._wake.clear()
                await self.pool.expire()
                now = self.clock()
                self._start_due(now)
                next_due = self.store.queue_next_due()
                delay = self.settings.poll_interval
                if next_due is not None and len(self._inflight) < self.settings.concurrency:
                    delay = min(delay, max(0.0, next_due - now))
                waits = [asyncio.ensure_future(shutdown.wait()),
                         asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(waits, timeout=max(delay, 0.05),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
        finally:
            pending = list(self._inflight.values())
            if pending:
                _done, still = await asyncio.wait(pending, timeout=drain_timeout)
                for task in still:
                    task.cancel()
                if still:
                    await asyncio.gather(*still, return_exceptions=True)
            await self.pool.close()
            self._wake = None

    async def _guarded(self, message: QueuedMessage) -> None:
        try:
            await self.attempt(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug must not turn into a hot loop: push the message back and go on.
            log.exception("queue %s: attempt failed unexpectedly", message.id)
            message.due = self.clock() + next_retry(self.settings, max(message.attempts, 1))
            try:
                await self.store.queue_update(message.id, message.to_record())
            except Exception:
                log.exception("queue %s: could not reschedule", message.id)

    # ------------------------------------------------------------------ one attempt
    async def attempt(self, message: QueuedMessage) -> None:
        """Deliver the pending recipients of ``message`` once, then record the outcome."""
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, self.blobs.get,
                                                                    message.blob)
        except (FileNotFoundError, KeyError):
            log.error("queue %s: message content %s is missing", message.id,
                      message.blob.hex())
            data = None
        message.attempts += 1
        if not message.expires:
            # Entries queued by the SMTP workers leave the deadline to the queue's setting.
            message.expires = message.created + self.settings.expire
        if data is None:
            lost = Reply(554, "5.3.0", "message content lost from the queue", remote=False)
            for r in message.pending:
                r.status, r.reply = RcptStatus.FAILED, lost
        else:
            domains = message.domains()
            results: list[DomainResult] = await asyncio.gather(*(
                self.deliverer.deliver(message, data, domain, rcpts)
                for domain, rcpts in domains.items()))
            for result in results:
                for attempt in result.attempts:
                    message.record_attempt(attempt)
                for o in result.outcomes:
                    r = o.rcpt
                    r.reply, r.remote_mta = o.reply, o.host
                    if o.reply.code < 300:
                        r.status, r.relayed = RcptStatus.DELIVERED, o.relayed
                        log.info("queue %s: to=<%s> relay=%s status=sent (%s)", message.id,
                                 r.address, o.host, o.reply)
                    elif o.reply.permanent:
                        r.status = RcptStatus.FAILED
                        log.info("queue %s: to=<%s> relay=%s status=bounced (%s)",
                                 message.id, r.address, o.host or "none", o.reply)
                    else:
                        log.info("queue %s: to=<%s> relay=%s status=deferred (%s)",
                                 message.id, r.address, o.host or "none", o.reply)
        now = self.clock()
        if now >= message.expires:
            for r in message.pending:
                r.status = RcptStatus.FAILED
                if r.reply is None:
                    r.reply = Reply(451, "4.4.7", "delivery time expired", remote=False)
                log.info("queue %s: to=<%s> status=expired (%s)", message.id, r.address,
                         r.reply)
        await self._notify(message, data, now)
        if message.done:
            await self.store.queue_delete(message.id)
            return
        message.due = min(now + next_retry(self.settings, message.attempts), message.expires)
        try:
            await self.store.queue_update(message.id, message.to_record())
        except StoreError as exc:
            if exc.code != "not_found":
                raise
            log.info("queue %s: removed while being delivered", message.id)

    async def _notify(self, message: QueuedMessage, data: bytes | None, now: float) -> None:
        if not message.return_path:
            return                      # never a DSN for the null reverse-path
        owed: dict[str, list[QueuedRecipient]] = {"failure": [], "success": [], "delay": []}
        for r in message.recipients:
            if r.status is RcptStatus.FAILED:
                kind = "failure"
            elif r.status is RcptStatus.DELIVERED and r.relayed:
                kind = "success"
            elif (r.status is RcptStatus.PENDING and self.settings.notify_delay is not None
                  and now - message.created >= self.settings.notify_delay):
                kind = "delay"
            else:
                continue
            if kind not in r.notified and r.wants(kind):
                owed[kind].append(r)
        for kind, rcpts in owed.items():
            if not rcpts:
                continue
            report = build_dsn(kind, message, rcpts, data, hostname=self.settings.hostname,
                               now=now, max_body=self.settings.dsn_max_body)
            dsn_id = await self.enqueue(
                report, return_path="", recipients=[message.return_path],
                requiretls=message.requiretls, smtputf8=not message.return_path.isascii(),
                body="7BIT" if report.isascii() else "8BITMIME", is_dsn=True)
            log.info("queue %s: %s notification queued as %s for %d recipient(s)",
                     message.id, kind, dsn_id, len(rcpts))
            for r in rcpts:
                r.notified = (*r.notified, kind)
