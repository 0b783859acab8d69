"""The queue process: ``async def serve(ctx)`` for the singleton kind ``queue``.

It opens the store, builds the process-wide resolver from the ``resolver.*`` settings,
routes the server's own domains to local delivery (a DSN to a local sender must not go
out to the MX of our own domain and come back; the store is asked at each attempt, so a
domain created later counts), serves the control socket ``<run_dir>/queue.sock``
(``control``: retry and cancel from the management API), and runs ``Queue.run`` until
``ctx.shutdown`` is set; attempts in flight get ``server.shutdown-timeout`` to finish.

New entries (queued by the SMTP workers) are found by polling the store's due index every
``queue.poll-interval``; an entry being delivered when the process dies is simply due
again when it restarts (its stored state is that of before the attempt), so a SIGKILL
loses nothing and at worst repeats an attempt.

Local delivery goes through ``Store.deliver`` with the account each address resolves to;
an address that resolves to no account fails with 550 5.1.1.

On demand (``server.on-demand``; ``ctx.idle_exit`` set): the control socket is the
master's (``ctx.control_socket``). The process leaves (``EXIT_IDLE``) once it has been idle
for ``server.idle-exit`` (no attempt in flight, no control request) and no entry is due
within that time, nor a TLS report of a finished day waiting. Leaving, it first stops
accepting on the control socket (a request from then on waits in the master's socket and
starts the next queue process), reads the due index again and records in its heartbeat
when the master must start it again: ``WAKE_LEAD`` before the earliest entry is due, now
if anything became due or a request arrived while it was deciding, and otherwise after
midnight UTC when the TLS-RPT counts of today must be reported (they are saved to
``run/queue-tls-report.json`` and read back by the next queue process). New mail never
waits for that time: whoever queues it wakes the queue through the socket (the SMTP
workers' ``QueueWaker``, the scheduler's report job, the queue's own DSNs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from stalwart.dns import Resolver, set_default_resolver

from .control import SOCKET_NAME, ControlServer
from .engine import Queue
from .model import QueuedMessage, QueuedRecipient, Reply
from .settings import QueueSettings

__all__ = ["serve", "resolver_from_config", "store_local_delivery", "WAKE_LEAD",
           "save_tls_counts", "load_tls_counts"]

log = logging.getLogger("stalwart.queue")

#: The master starts a dormant queue this long before its earliest entry is due.
WAKE_LEAD = 2.0
#: TLS-RPT counts kept between two queue processes (``run_dir`` / this name).
TLS_STATE = "queue-tls-report.json"
_DAY = 86400


def resolver_from_config(config: Any) -> Resolver:
    """``resolver.nameservers`` (``["127.0.0.1:53"]``; empty: /etc/resolv.conf),
    ``resolver.timeout``, ``resolver.lifetime``, ``resolver.cache-size``."""
    return Resolver.from_settings(config.get("resolver.nameservers") or (),
                                  timeout=config.get("resolver.timeout"),
                                  lifetime=config.get("resolver.lifetime"),
                                  cache_size=config.get("resolver.cache-size"))


def store_local_delivery(store: Any, enqueue: Callable[..., Awaitable[int]]):
    """A ``LocalDeliver`` over ``Store.deliver`` (one commit for all local recipients).

    A recipient that is a forwarding alias (``store.resolve_recipient``; a DSN sent back
    to a sender who wrote from an alias) is expanded as SMTP expands it: one copy per
    local account, and the remote targets queued again as a new entry through
    ``enqueue`` (``Queue.enqueue``) with the same return path, so nothing addressed to
    an alias is refused here. The alias's reply is the outcome of its local copies (the
    worst of them), else 250 once its remote targets are queued."""
    async def deliver(message: QueuedMessage, data: bytes,
                      rcpts: list[QueuedRecipient]) -> list[Reply]:
        header = f"Return-Path: <{message.return_path}>\r\n".encode("utf-8")
        targets = [store.resolve_recipient(r.address) for r in rcpts]
        accounts: list[list[int]] = []            # per recipient: the accounts it reaches
        remote: list[str] = []
        for target in targets:
            if target is None:
                accounts.append([])
            elif "account" in target:
                accounts.append([target["account"]])
            else:
                accounts.append([a for _, a in target.get("accounts", ())])
                remote += [r for r in target.get("remote", ()) if r not in remote]
        unique = list(dict.fromkeys(a for reached in accounts for a in reached))
        by_account: dict[int, Reply] = {}
        if unique:
            results = await store.deliver([{"account": a} for a in unique], header + data)
            for account, result in zip(unique, results):
                if isinstance(result, dict) and "error" in result:
                    code = result["error"]
                    by_account[account] = (
                        Reply(552, "5.2.2", "mailbox full", remote=False)
                        if code == "over_quota" else
                        Reply(451, "4.3.0", f"local delivery failed: {code}", remote=False))
                else:
                    by_account[account] = Reply(250, "2.0.0", "delivered", remote=False)
        forwarded: Reply | None = None
        if remote:
            try:
                qid = await enqueue(data, return_path=message.return_path,
                                    recipients=remote, is_dsn=message.is_dsn,
                                    smtputf8=message.smtputf8, body=message.body)
                forwarded = Reply(250, "2.0.0", f"forwarded as queue entry {qid}",
                                  remote=False)
            except Exception as exc:              # StoreError, a full disk: retry later
                log.warning("queue %s: could not queue %d forwarded recipient(s): %s",
                            message.id, len(remote), exc)
                forwarded = Reply(451, "4.3.0", "forwarding failed, will retry",
                                  remote=False)
        out = []
        for target, reached in zip(targets, accounts):
            if target is None:
                out.append(Reply(550, "5.1.1", "no such local user", remote=False))
                continue
            replies = [by_account[a] for a in reached]
            if "account" not in target and target.get("remote"):
                replies.append(forwarded)
            failed = [r for r in replies if r.code >= 400]
            # A temporary failure wins (the queue retries), then a permanent one.
            failed.sort(key=lambda r: r.code >= 500)
            out.append(failed[0] if failed else replies[0])
        return out
    return deliver


async def serve(ctx: Any) -> None:
    from stalwart.store.api import Store

    config = ctx.config
    resolver = resolver_from_config(config)
    set_default_resolver(resolver)
    store = await Store.open(config)
    control = None
    tls_reports = None
    recorder = None
    tls_state = Path(config.run_dir) / TLS_STATE
    try:
        settings = QueueSettings.from_config(config)
        queue = Queue(store, store.blobs, resolver, settings,
                      local=store_local_delivery(
                          store, lambda *a, **kw: queue.enqueue(*a, **kw)),
                      is_local_domain=store.is_local_domain)
        control = ControlServer(queue, Path(config.run_dir) / SOCKET_NAME,
                                sock=ctx.control_socket)
        await control.start()
        # MTA-STS and TLS-RPT on the deliverer; the daily TLS report job (RFC 8460).
        from stalwart.mailauth.tlsrpt import install as install_transport_security
        tls_reports = install_transport_security(queue, resolver, config, ctx.shutdown)
        recorder = getattr(queue.deliverer, "tlsrpt", None)
        if recorder is not None:
            load_tls_counts(recorder, tls_state)
        if tls_reports is not None:
            tls_reports = asyncio.ensure_future(tls_reports)
        decided = _IdleCheck(ctx, queue, store, recorder, control)
        if ctx.idle_exit is not None:
            ctx.may_leave = decided
        log.info("queue process running: concurrency %d, %d configured route(s)",
                 settings.concurrency, len(settings.routes))
        await queue.run(ctx.shutdown, drain_timeout=config.get("server.shutdown-timeout"))
        if ctx.idle_exited:
            await control.close()     # from now on a request waits for the next process
            control = None
            ctx.set_wake_at(decided.wake_at())
    finally:
        if tls_reports is not None:
            tls_reports.cancel()
        if control is not None:
            await control.close()
        if recorder is not None and recorder.days:
            try:
                save_tls_counts(recorder, tls_state)
            except OSError as exc:
                log.error("tls report counts not saved to %s (lost): %s", tls_state, exc)
        await store.close()


class _IdleCheck:
    """``ctx.may_leave`` of the queue process, and the wake-up time it leaves with."""

    def __init__(self, ctx: Any, queue: Any, store: Any, recorder: Any,
                 control: ControlServer) -> None:
        self.ctx, self.queue, self.store, self.recorder = ctx, queue, store, recorder
        self.control = control
        self.decided_at = float("inf")

    def _next_due(self) -> float | None:
        self.store.refresh()
        return self.store.queue_next_due()

    def __call__(self) -> bool:
        now = time.time()
        idle_exit = float(self.ctx.idle_exit or 0.0)
        horizon = max(idle_exit, 2 * WAKE_LEAD)
        if self.control.last_request > self.ctx.last_activity:
            self.ctx.last_activity = self.control.last_request    # a request is activity
            if time.monotonic() - self.ctx.last_activity < idle_exit:
                return False
        if self.queue.busy:                 # attempts in progress: a busy queue stays
            self.ctx.touch()
            return False
        if self.recorder is not None and self.recorder.finished_days(now):
            return False              # the hourly report job has a day to send
        due = self._next_due()
        if due is not None and due <= now + horizon:
            return False
        self.decided_at = time.monotonic()
        return True

    def wake_at(self) -> float | None:
        """When the master must start the next queue process (read after the control
        socket stopped accepting, so nothing queued before now is missed)."""
        now = time.time()
        asked = self.control.last_request >= self.decided_at
        due = self._next_due()
        wake = None if due is None else due - WAKE_LEAD
        if self.recorder is not None and self.recorder.days:
            # Today's TLS-RPT counts: reported by the job of the next process, after the
            # day is over (the job's first run is a minute after start).
            report = min(self.recorder.days) + _DAY + 1
            wake = report if wake is None else min(wake, report)
        if asked or (wake is not None and wake <= now):
            return now
        return wake


def save_tls_counts(recorder: Any, path: Path) -> None:
    """Write the TLS-RPT recorder's counts to ``path`` (JSON, replaced atomically)."""
    days = []
    for day, domains in recorder.days.items():
        for domain, policies in domains.items():
            for key, counts in policies.items():
                days.append({"day": day, "domain": domain,
                             "policy": [key.type, list(key.string), list(key.mx_host)],
                             "success": counts.success,
                             "failures": [[list(k), n] for k, n in counts.failures.items()]})
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"version": 1, "entries": days}, f)
    os.replace(tmp, path)


def load_tls_counts(recorder: Any, path: Path) -> int:
    """Add the counts saved by ``save_tls_counts`` to ``recorder`` and remove the file;
    returns how many entries were read. A damaged file is logged and dropped."""
    from stalwart.mailauth.tlsrpt import PolicyKey, _Counts

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        log.warning("tls report counts in %s unreadable, dropped: %s", path, exc)
        path.unlink(missing_ok=True)
        return 0
    read = 0
    try:
        for e in data["entries"]:
            key = PolicyKey(str(e["policy"][0]), tuple(map(str, e["policy"][1])),
                            tuple(map(str, e["policy"][2])))
            counts = recorder.days.setdefault(int(e["day"]), {}).setdefault(
                str(e["domain"]), {}).setdefault(key, _Counts())
            counts.success += int(e["success"])
            for k, n in e["failures"]:
                counts.failures[tuple(map(str, k))] += int(n)
            read += 1
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        log.warning("tls report counts in %s malformed after %d entries: %s", path, read, exc)
    path.unlink(missing_ok=True)
    return read
