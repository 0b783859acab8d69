"""No duplicate delivery of one message to one recipient: the same account named twice
(alias, sub-address, alias domain) gets one copy, and a byte-identical resend (Message-ID
and content) within the window is not delivered again: the store operation
``deliver_once`` and the SMTP adapter over real sockets (ports 22000-22099 band, this file
uses 22060-22099)."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from stalwart.protocols.smtp.delivery import LocalDelivery
from stalwart.protocols.smtp.machine import SmtpConfig
from stalwart.protocols.smtp.policy import StoreAuthenticator, StorePolicy
from stalwart.protocols.smtp.session import DeduplicatingStore, SmtpHandler, dedup_key
from stalwart.store import engine
from stalwart.store import keys
from stalwart.store.api import Store
from stalwart.store.errors import StoreError

PORTS = iter(range(22060, 22100))

MESSAGE = b"From: a@remote.test\r\nMessage-ID: <m1@remote.test>\r\nSubject: s\r\n\r\nbody\r\n"


# ------------------------------------------------------------------ the key
def test_dedup_key_names_message_id_and_content():
    k = dedup_key(MESSAGE)
    assert isinstance(k, bytes) and len(k) == 16
    assert dedup_key(MESSAGE) == k
    assert dedup_key(MESSAGE.replace(b"body", b"other")) != k       # same id, new content
    assert dedup_key(MESSAGE.replace(b"<m1@", b"<m2@")) != k
    folded = b"Message-ID:\r\n <m1@remote.test>\r\nSubject: s\r\n\r\nbody\r\n"
    assert dedup_key(folded) is not None
    assert dedup_key(b"Subject: no id\r\n\r\nbody\r\n") is None
    # A Message-ID line in the body is not a header.
    assert dedup_key(b"Subject: s\r\n\r\nMessage-ID: <x@y>\r\n") is None
    assert dedup_key(b"\r\nMessage-ID: <x@y>\r\n") is None
    assert dedup_key(b"Message-ID:   \r\n\r\n") is None


# ------------------------------------------------------------------ the store operation
def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _store():
    store = Store.memory()
    await store.create_domain("example.com")
    await store.create_domain("alias.example", alias_of="example.com")
    jane = (await store.create_account("jane", password="jane-pw",
                                       emails=["jane@example.com", "j.doe@example.com"]))["id"]
    bob = (await store.create_account("bob", emails=["bob@example.com"]))["id"]
    return store, jane, bob


def _count(store, account):
    return len(store.mailbox_uids(account, store.find_mailbox(account, "INBOX")["id"]))


def test_deliver_once_skips_accounts_that_have_the_message():
    async def main():
        store, jane, bob = await _store()
        key = b"k" * 16
        first = await store.deliver_once([{"account": jane}], MESSAGE, dedup=key, window=3600)
        assert "id" in first[0]
        again = await store.deliver_once([{"account": jane}, {"account": bob}], MESSAGE,
                                         dedup=key, window=3600)
        assert again[0] == {"duplicate": True, "account": jane}
        assert "id" in again[1]                        # bob had not received it
        other = await store.deliver_once([{"account": jane}], MESSAGE, dedup=b"x" * 16,
                                         window=3600)
        assert "id" in other[0]
        assert (_count(store, jane), _count(store, bob)) == (2, 1)
        with pytest.raises(StoreError) as err:
            await store.deliver_once([{"account": jane}], MESSAGE, dedup=b"short", window=60)
        assert err.value.code == "invalid"
        with pytest.raises(StoreError):
            await store.deliver_once([{"account": jane}], MESSAGE, dedup=key, window=0)
        # A failed recipient records nothing: the next attempt delivers.
        failed = await store.deliver_once([{"account": 999}], MESSAGE, dedup=b"f" * 16,
                                          window=60)
        assert failed[0]["error"] == "not_found"
    run(main())


def test_records_expire_and_are_purged(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(engine.time, "time", lambda: now[0])

    async def main():
        store, jane, _ = await _store()
        for i in range(5):
            await store.deliver_once([{"account": jane}], MESSAGE, dedup=bytes([i]) * 16,
                                     window=100)
        records = lambda: list(store._kv.scan(keys.DEDUP, keys.DEDUP_EXP + b"\xff"))
        assert len(records()) == 10                    # record + expiry index each
        now[0] += 50
        dup = await store.deliver_once([{"account": jane}], MESSAGE, dedup=b"\x00" * 16,
                                       window=100)
        assert dup[0]["duplicate"]
        now[0] += 51                                   # past the window of the first five
        fresh = await store.deliver_once([{"account": jane}], MESSAGE, dedup=b"\x00" * 16,
                                         window=100)
        assert "id" in fresh[0]                        # expired: delivered again
        # The purge ran in that same operation: only the new record is left.
        assert len(records()) == 2
        assert _count(store, jane) == 6
    run(main())


# ------------------------------------------------------------------ through SMTP
class FlakyQueue:
    """A store whose queue refuses the first entry: the local copy is committed, then
    SMTP must answer 451 to the whole message (delivery.py)."""

    def __init__(self, store):
        self._store = store
        self.failures = 1

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def queue_put(self, record):
        if self.failures:
            self.failures -= 1
            raise StoreError("unavailable", "queue write failed (test)")
        return await self._store.queue_put(record)


async def _serve(store, window, *, lmtp=False, submission=False, flaky=False):
    port = next(PORTS)
    delivery_store = DeduplicatingStore(store, window) if window else store
    if flaky:
        delivery_store = FlakyQueue(delivery_store)
    config = SmtpConfig(hostname="mx.test", starttls=False, auth_without_tls=True, lmtp=lmtp,
                        submission=submission)
    handler = SmtpHandler(config, policy=StorePolicy(store),
                          authenticator=StoreAuthenticator(store),
                          delivery=LocalDelivery(delivery_store, "mx.test"), auth_delay=0.0,
                          dedup_window=window)
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    return server, port


def _in_thread(fn, *args):
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


@pytest.mark.parametrize("window", [0, 3600])
def test_same_account_named_many_ways_gets_one_copy(window):
    rcpts = ["jane@example.com", "JANE@example.com", "j.doe@example.com",
             "jane+tag@example.com", "jane@alias.example", "j.doe+x@alias.example"]

    async def main():
        store, jane, _ = await _store()
        server, port = await _serve(store, window)

        def send():
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                return s.sendmail("a@remote.test", rcpts, MESSAGE)
        assert await _in_thread(send) == {}
        assert _count(store, jane) == 1
        server.close()
    run(main())


@pytest.mark.parametrize("window, copies", [(0, 2), (3600, 1)])
def test_resend_after_451_following_a_committed_local_delivery(window, copies):
    """Submission to a local and a remote recipient: the local copy commits, the queue
    entry fails, the client gets 451 and sends again. Without the window jane gets two
    copies (never none); with it, one."""
    async def main():
        store, jane, _ = await _store()
        server, port = await _serve(store, window, submission=True, flaky=True)

        def send():
            out = []
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.login("jane", "jane-pw")
                for _ in range(2):
                    try:
                        out.append(s.sendmail("jane@example.com",
                                              ["jane@example.com", "x@remote.test"], MESSAGE))
                    except smtplib.SMTPDataError as exc:
                        out.append(exc.smtp_code)
            return out
        assert await _in_thread(send) == [451, {}]
        assert _count(store, jane) == copies
        server.close()
    run(main())


def _lmtp(port, rcpts, message):
    """One LMTP transaction by hand (smtplib reads one reply after DATA; LMTP sends one
    per recipient, RFC 2033 4.2). Returns the replies to the content."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")

        def reply():
            while True:
                line = f.readline().decode()
                if line[3:4] != "-":
                    return line.rstrip("\r\n")

        def cmd(line):
            sock.sendall(line.encode() + b"\r\n")
            return reply()
        assert reply().startswith("220")
        assert cmd("LHLO client.test").startswith("250")
        assert cmd("MAIL FROM:<a@remote.test>").startswith("250")
        for r in rcpts:
            assert cmd(f"RCPT TO:<{r}>").startswith("250")
        assert cmd("DATA").startswith("354")
        sock.sendall(message + b".\r\n")
        out = [reply() for _ in rcpts]
        cmd("QUIT")
        return out


def test_lmtp_resend_is_deduplicated_per_recipient():
    async def main():
        store, jane, bob = await _store()
        server, port = await _serve(store, 3600, lmtp=True)
        first = await _in_thread(_lmtp, port, ["jane@example.com"], MESSAGE)
        assert [r[:3] for r in first] == ["250"]
        # The MTA retries for both (say, it lost our replies): bob gets his, jane no second,
        # and both are answered 250 (jane's copy is there).
        again = await _in_thread(_lmtp, port, ["jane@example.com", "bob@example.com"], MESSAGE)
        assert [r[:3] for r in again] == ["250", "250"]
        assert (_count(store, jane), _count(store, bob)) == (1, 1)
        # A message without a Message-ID is never suppressed.
        plain = b"Subject: no id\r\n\r\nbody\r\n"
        for _ in range(2):
            await _in_thread(_lmtp, port, ["jane@example.com"], plain)
        assert _count(store, jane) == 3
        server.close()
    run(main())
