"""Queue parts without a network: the reply parser fed whole, byte by byte and split,
DATA preparation (CRLF, dot-stuffing), xtext/ORCPT encoding, address ordering, the retry
schedule, record round trips and the memory queue store's due index."""

from __future__ import annotations

import asyncio
import random

import pytest

from stalwart.dns import Addresses
from stalwart.queue import (MemoryQueueStore, QueuedMessage, QueuedRecipient, QueueSettings,
                            RcptStatus, Reply, Route, next_retry)
from stalwart.queue.client import ReplyParser, SmtpProtocolError, prepare_data
from stalwart.queue.delivery import orcpt_param, order_addresses, xtext
from stalwart.queue.model import Attempt

EHLO = b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n550 5.1.1 no such user\r\n"


@pytest.mark.parametrize("split", ["whole", "bytes", "random"])
def test_reply_parser_any_split(split):
    p = ReplyParser()
    if split == "whole":
        chunks = [EHLO]
    elif split == "bytes":
        chunks = [EHLO[i:i + 1] for i in range(len(EHLO))]
    else:
        rng = random.Random(7)
        cuts = sorted(rng.sample(range(1, len(EHLO)), 6))
        chunks = [EHLO[a:b] for a, b in zip([0, *cuts], [*cuts, len(EHLO)])]
    replies = [r for c in chunks for r in p.feed(c)]
    assert [(r.code, r.lines, r.status) for r in replies] == [
        (250, ("mx.example", "PIPELINING", "SIZE 1000"), ""),
        (550, ("no such user",), "5.1.1")]


@pytest.mark.parametrize("bad", [b"hello\r\n", b"25\r\n", b"250x\r\n", b"999 no\r\n",
                                 b"250-a\r\n251 b\r\n", b"2" * 9000])
def test_reply_parser_rejects_garbage(bad):
    with pytest.raises(SmtpProtocolError):
        ReplyParser().feed(bad)


def test_prepare_data_normalises_and_stuffs():
    assert prepare_data(b".a\nb\r.c\r\n..d") == b"..a\r\nb\r\n..c\r\n...d\r\n.\r\n"
    assert prepare_data(b"x\r\n") == b"x\r\n.\r\n"


def test_xtext_and_orcpt():
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert orcpt_param("rfc822", "u@example.org") == "rfc822;u@example.org"
    assert orcpt_param("utf-8", "pé+@example.org") == "utf-8;p\\x{E9}\\x{2B}@example.org"


def test_address_order_alternates_families():
    a = Addresses("h", ("192.0.2.1", "192.0.2.2"), ("2001:db8::1",))
    assert order_addresses(a, prefer_ipv6=True) == ["2001:db8::1", "192.0.2.1", "192.0.2.2"]
    assert order_addresses(a, prefer_ipv6=False) == ["192.0.2.1", "2001:db8::1", "192.0.2.2"]
    assert order_addresses(a, prefer_ipv6=True, ipv6=False) == ["192.0.2.1", "192.0.2.2"]


def test_retry_schedule_and_routes():
    s = QueueSettings()
    assert [next_retry(s, n) for n in range(1, 10)] == [
        120, 300, 600, 900, 1800, 3600, 7200, 7200, 7200]
    relay = Route(kind="relay", host="smtp.example", port=587, tls="starttls")
    s = QueueSettings(routes={"*": Route(), "example.org": relay, ".corp.test": relay})
    assert s.route_for("EXAMPLE.org") is relay and s.route_for("a.b.corp.test") is relay
    assert s.route_for("other.test").kind == "mx"
    with pytest.raises(ValueError):
        Route(kind="relay")
    with pytest.raises(ValueError):
        Route(tls="sometimes")


def test_record_round_trip():
    m = QueuedMessage("a@x.test", [QueuedRecipient("b@y.test", ("SUCCESS",), ("rfc822", "b@y.test")),
                                   QueuedRecipient("c@Y.test", status=RcptStatus.FAILED,
                                                   reply=Reply(550, "5.1.1", "no"))],
                      blob=b"\x01" * 32, size=10, created=1.0, due=2.0, expires=3.0,
                      env_id="e", ret="FULL", requiretls=True, smtputf8=True, body="8BITMIME")
    for i in range(30):
        m.record_attempt(Attempt(float(i), "y.test", "mx", "192.0.2.1", Reply(451, "", "later")))
    back = QueuedMessage.from_record(m.to_record())
    assert back.to_record() == m.to_record()
    assert len(back.history) == 20 and back.history[0].at == 10.0
    assert list(back.domains()) == ["y.test"]
    assert back.recipients[0].wants("success") and not back.recipients[0].wants("delay")
    assert QueuedRecipient("d@z.test").wants("delay")          # no NOTIFY: failure + delay
    assert Reply(451, "", "x").enhanced == "4.0.0"


def test_memory_store_due_index():
    async def main():
        s = MemoryQueueStore()
        rec = QueuedMessage("", [QueuedRecipient("a@b.test")], b"\0" * 32, 1).to_record()
        ids = []
        for due in (30.0, 10.0, 20.0):
            ids.append(await s.queue_put({**rec, "due": due}))
        assert [r["id"] for r in s.queue_due(25.0, 10)] == [ids[1], ids[2]]
        assert [r["id"] for r in s.queue_due(100.0, 1)] == [ids[1]]
        assert s.queue_next_due() == 10.0
        await s.queue_update(ids[1], {**rec, "due": 50.0})
        assert s.queue_next_due() == 20.0
        await s.queue_delete(ids[2])
        assert [r["id"] for r in s.queue_list()] == [ids[0], ids[1]]
        from stalwart.store.errors import StoreError
        with pytest.raises(StoreError):
            await s.queue_update(ids[2], rec)
    asyncio.run(main())
