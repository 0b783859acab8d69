"""Submission into the queue: smtplib against our SMTP adapter (``SmtpHandler`` with the
default ``StorePolicy`` and ``LocalDelivery``) over a memory store, on 127.0.0.1 ports
28000-28099. What the 250 stands for is read back from the store: the local copies, the
queue entry with the envelope's DSN parameters, and the queued bytes."""

from __future__ import annotations

import asyncio
import smtplib
import threading

import pytest

from stalwart.protocols.smtp.delivery import LocalDelivery
from stalwart.protocols.smtp.machine import SmtpConfig
from stalwart.protocols.smtp.policy import StoreAuthenticator, StorePolicy
from stalwart.protocols.smtp.session import SmtpHandler
from stalwart.queue import QueuedMessage, RcptStatus
from stalwart.store.api import Store
from stalwart.store.errors import StoreError

MESSAGE = b"From: jane@example.org\r\nSubject: to the queue\r\n\r\nhello\r\n"


class Server:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = self.run(self._setup())

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _setup(self) -> Store:
        store = Store.memory()
        await store.create_domain("example.org")
        self.jane = (await store.create_account("jane", password="jane-pw",
                                                emails=["jane@example.org"]))["id"]
        self.bob = (await store.create_account("bob", emails=["bob@example.org"]))["id"]
        self.full = (await store.create_account("full", emails=["full@example.org"],
                                                quota=10))["id"]
        config = SmtpConfig(hostname="mx.example.org", submission=False, starttls=False,
                            auth_without_tls=True)
        handler = SmtpHandler(config, policy=StorePolicy(store),
                              authenticator=StoreAuthenticator(store),
                              delivery=LocalDelivery(store, "mx.example.org"), auth_delay=0)
        for port in range(28000, 28100):
            try:
                self.server = await asyncio.start_server(handler, "127.0.0.1", port)
            except OSError:
                continue
            self.port = port
            return store
        raise RuntimeError("no free port in 28000-28099")

    def inbox(self, account: int) -> list[bytes]:
        async def read():
            box = self.store.find_mailbox(account, "INBOX")
            return [self.store.read_message(account, eid)
                    for _, eid in self.store.mailbox_uids(account, box["id"])]
        return self.run(read())

    def queued(self) -> list[QueuedMessage]:
        async def read():
            return [QueuedMessage.from_record(r) for r in self.store.queue_list()]
        return self.run(read())

    def close(self) -> None:
        async def stop():
            self.server.close()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def _client(server: Server, login: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    client.ehlo("client.example.org")
    if login:
        client.login("jane", "jane-pw")
    return client


def test_remote_recipients_are_queued_with_their_dsn_parameters(server):
    with _client(server) as c:
        assert c.mail("jane@example.org", ["RET=HDRS", "ENVID=env+2Bid", "BODY=8BITMIME"])[0] == 250
        assert c.rcpt("carol@remote.test", ["NOTIFY=SUCCESS,FAILURE",
                                            "ORCPT=rfc822;carol@remote.test"])[0] == 250
        assert c.rcpt("dave@other.test", ["NOTIFY=NEVER"])[0] == 250
        assert c.rcpt("bob@example.org")[0] == 250
        code, text = c.data(MESSAGE)
    assert code == 250 and text.startswith(b"2.0.0 Message accepted for delivery")

    [entry] = server.queued()
    assert entry.return_path == "jane@example.org"
    assert [(r.address, r.notify, r.orcpt, r.status) for r in entry.recipients] == [
        ("carol@remote.test", ("SUCCESS", "FAILURE"), ("rfc822", "carol@remote.test"),
         RcptStatus.PENDING),
        ("dave@other.test", ("NEVER",), None, RcptStatus.PENDING)]
    assert (entry.env_id, entry.ret, entry.body) == ("env+id", "HDRS", "8BITMIME")
    assert entry.expires == 0 and entry.due <= entry.created + 1   # the queue sets expiry
    queued = server.store.blobs.get(entry.blob)
    assert queued.startswith(b"Received: from client.example.org ([127.0.0.1])\r\n"
                             b"\tby mx.example.org with ESMTPA id ")
    assert b"Return-Path" not in queued and queued.endswith(MESSAGE)

    [local] = server.inbox(server.bob)
    assert local.startswith(b"Return-Path: <jane@example.org>\r\nReceived: ")
    assert local.endswith(MESSAGE)


def test_unauthenticated_clients_never_relay(server):
    with _client(server, login=False) as c:
        c.mail("jane@example.org")
        assert c.rcpt("carol@remote.test")[:1] == (550,)
        assert c.rcpt("carol%remote.test@example.org")[0] == 550
        assert c.rcpt("bob@example.org")[0] == 250
        assert c.data(MESSAGE)[0] == 250
    assert server.queued() == []
    assert len(server.inbox(server.bob)) == 1


def test_a_local_failure_beside_accepted_recipients_is_owed_a_dsn(server):
    with _client(server) as c:
        c.mail("jane@example.org")
        assert c.rcpt("carol@remote.test")[0] == 250
        assert c.rcpt("full@example.org")[0] == 250
        assert c.data(MESSAGE)[0] == 250                 # one reply: accepted...
    [entry] = server.queued()                            # ...so the queue owes the DSN
    remote, full = entry.recipients
    assert (remote.address, remote.status) == ("carol@remote.test", RcptStatus.PENDING)
    assert (full.address, full.status) == ("full@example.org", RcptStatus.FAILED)
    assert (full.reply.code, full.reply.status) == (552, "5.2.2")
    assert server.inbox(server.full) == []


def test_a_local_only_failure_is_the_reply_itself(server):
    with _client(server) as c:
        c.mail("jane@example.org")
        c.rcpt("full@example.org")
        code, text = c.data(MESSAGE)
    assert (code, text[:5]) == (552, b"5.2.2")
    assert server.queued() == []


def test_no_250_unless_the_queue_entry_is_committed(server, monkeypatch):
    async def refuse(record):
        raise StoreError("unavailable", "store restarting")
    monkeypatch.setattr(server.store, "queue_put", refuse)
    with _client(server) as c:
        c.mail("jane@example.org")
        c.rcpt("carol@remote.test")
        c.rcpt("bob@example.org")
        code, text = c.data(MESSAGE)
    assert (code, text[:5]) == (451, b"4.3.0")           # the client keeps the message
    # bob's copy was committed first: a retry gives him a duplicate, nobody loses mail.
    assert len(server.inbox(server.bob)) == 1
