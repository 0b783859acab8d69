"""Outbound delivery: the queue of messages for remote recipients and its engine.

- ``model``     the queued message (envelope, per-recipient state, history) and its record
- ``store``     the store operations the queue needs (``QueueStore``) and a memory version
- ``settings``  retry schedule, expiry, DSN timing, timeouts, routes per domain
- ``client``    the SMTP client (sans-IO reply parser + asyncio session)
- ``pool``      idle sessions kept per destination for reuse
- ``delivery``  one attempt for one domain: route, MX, addresses, TLS, AUTH, transaction
- ``dsn``       RFC 3464 delivery status notifications
- ``engine``    ``Queue``: enqueue, the due loop, retries, expiry, DSNs
- ``control``   the queue process's control socket (retry, cancel) and its client
- ``server``    ``serve(ctx)``, the queue process
"""

from .engine import Queue
from .model import Attempt, QueuedMessage, QueuedRecipient, RcptStatus, Reply
from .settings import DEFAULT_RETRY, QueueSettings, Route, Timeouts, next_retry
from .store import MemoryQueueStore, QueueStore

__all__ = ["Queue", "QueuedMessage", "QueuedRecipient", "RcptStatus", "Reply", "Attempt",
           "QueueSettings", "Route", "Timeouts", "DEFAULT_RETRY", "next_retry",
           "MemoryQueueStore", "QueueStore"]
