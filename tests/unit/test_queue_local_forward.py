"""The queue's own local delivery (``queue.server.store_local_delivery``) expands
forwarding aliases: a DSN or any queued message addressed to an alias reaches the alias's
local accounts and is queued again for its remote targets, instead of 550."""

from __future__ import annotations

import asyncio

from stalwart.queue.model import QueuedMessage, QueuedRecipient
from stalwart.queue.server import store_local_delivery
from stalwart.store.api import Store

DSN = (b"From: MAILER-DAEMON@mx.example.org\r\nTo: info@example.org\r\n"
       b"Subject: Undelivered Mail Returned to Sender\r\n\r\nThe message bounced.\r\n")


def run(coro):
    return asyncio.run(coro)


async def setup() -> tuple[Store, int, int]:
    store = Store.memory()
    await store.create_domain("example.org")
    alice = (await store.create_account("alice", emails=["alice@example.org"]))["id"]
    bob = (await store.create_account("bob", emails=["bob@example.org"]))["id"]
    await store.forward_create("info@example.org",
                               ["alice@example.org", "bob@example.org", "ext@remote.example"])
    await store.forward_create("local-only@example.org", ["bob@example.org"])
    return store, alice, bob


def test_an_alias_gets_local_copies_and_its_remote_targets_queued():
    async def go():
        store, alice, bob = await setup()
        queued = []

        async def enqueue(data, **kw):
            queued.append((data, kw))
            return 42
        deliver = store_local_delivery(store, enqueue)
        message = QueuedMessage(return_path="", recipients=[], blob=b"", size=len(DSN),
                                is_dsn=True)
        rcpts = [QueuedRecipient("info@example.org"), QueuedRecipient("bob@example.org"),
                 QueuedRecipient("local-only@example.org"),
                 QueuedRecipient("nobody@example.org")]
        replies = await deliver(message, DSN, rcpts)
        assert [r.code for r in replies] == [250, 250, 250, 550]
        # One copy per account although bob is reached three ways.
        assert [len(store.list_email_ids(a)) for a in (alice, bob)] == [1, 1]
        [email] = store.list_email_ids(alice)
        assert store.read_message(alice, email).endswith(DSN)
        [(data, kw)] = queued
        assert data == DSN and kw["recipients"] == ["ext@remote.example"]
        assert kw["return_path"] == "" and kw["is_dsn"] is True
    run(go())


def test_a_failure_to_queue_the_remote_targets_is_temporary():
    async def go():
        store, alice, _ = await setup()

        async def enqueue(data, **kw):
            raise OSError("disk full")
        deliver = store_local_delivery(store, enqueue)
        message = QueuedMessage(return_path="jane@remote.example", recipients=[],
                                blob=b"", size=len(DSN))
        [reply] = await deliver(message, DSN, [QueuedRecipient("info@example.org")])
        assert reply.code == 451 and not reply.permanent
    run(go())
