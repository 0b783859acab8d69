"""Forwarding aliases through the SMTP machine, the default policy and ``LocalDelivery``
over a memory store: what is accepted (never a relay), where the copies go (mailboxes,
queue entries with the original envelope sender), and the ARC seal on forwarded copies,
checked by dkimpy's ARC verifier (``dkim.arc_verify``) and by ours. Also the hop limit."""

from __future__ import annotations

import asyncio
import re

import dkim as dkimpy
import pytest

from stalwart.dns import FakeBackend, Resolver
from stalwart.mailauth import arc, keys
from stalwart.mailauth.inbound import InboundAuth, InboundSettings
from stalwart.protocols.smtp import forward
from stalwart.protocols.smtp.delivery import LocalDelivery
from stalwart.protocols.smtp.events import Session
from stalwart.protocols.smtp.machine import SmtpConfig
from stalwart.protocols.smtp.testing import Transcript
from stalwart.store.api import Store

HOST = "mx.example.org"
CLIENT = "203.0.113.5"
MESSAGE = ("From: Sender <x@sender.example>\r\nTo: info@example.org\r\n"
           "Subject: forwarded\r\nMessage-ID: <fwd-1@sender.example>\r\n"
           "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nHello through a forward.\r\n")


@pytest.fixture(scope="module")
def keyset():
    return {"example.org": keys.generate("rsa-sha256", 1024),
            "example.net": keys.generate("rsa-sha256", 1024),
            "hop.example": keys.generate("rsa-sha256", 1024)}


def _zone(keyset) -> dict:
    zone = {"sender.example": {"TXT": "v=spf1 ip4:203.0.113.5 -all"},
            "quarantine.example": {"TXT": "v=spf1 -all"},
            "_dmarc.quarantine.example": {"TXT": "v=DMARC1; p=quarantine"},
            "reject.example": {"TXT": "v=spf1 -all"},
            "_dmarc.reject.example": {"TXT": "v=DMARC1; p=reject"}}
    for domain, key in keyset.items():
        record = keys.dns_record(domain, "sel", key)
        zone[record.name] = {"TXT": record.value}
    return zone


def dnsfunc(zone):
    def lookup(name, timeout=5):
        entry = zone.get(name.decode().rstrip(".").lower())
        return entry["TXT"].encode() if entry else None
    return lookup


class World:
    def __init__(self, keyset, *, inbound: bool = True, seal_keys: bool = True):
        self.loop = asyncio.new_event_loop()
        self.store = Store.memory()
        self.zone = _zone(keyset)
        self.resolver = Resolver(FakeBackend(self.zone))

        async def setup():
            s = self.store
            await s.create_domain("example.org")
            await s.create_domain("example.net")
            await s.create_domain("example.com", alias_of="example.org")
            self.alice = (await s.create_account("alice", password="alice-pw",
                                                 emails=["alice@example.org"]))["id"]
            self.carol = (await s.create_account("carol", emails=["carol@example.net"]))["id"]
            await s.forward_create("info@example.org", ["alice@example.org",
                                                        "bob@remote.example"])
            await s.forward_create("team@example.net", ["info@example.org",
                                                        "carol@example.net",
                                                        "dave@far.example"])
            await s.forward_create("out@example.net", ["bob@remote.example"])
            if seal_keys:
                for domain in ("example.org", "example.net"):
                    await s.dkim_key_put(domain, "sel", "rsa-sha256",
                                         keys.private_key_pem(keyset[domain]))
        self.loop.run_until_complete(setup())
        self.delivery = LocalDelivery(self.store, HOST)
        if inbound:
            self.delivery.inbound = InboundAuth(InboundSettings(hostname=HOST), self.resolver)

    def transcript(self, *, lmtp: bool = False, authenticated: bool = False) -> Transcript:
        t = Transcript(SmtpConfig(hostname=HOST, lmtp=lmtp) if lmtp else SmtpConfig(hostname=HOST),
                       store=self.store, loop=self.loop,
                       session=Session(remote_ip=CLIENT, lmtp=lmtp),
                       deliver=lambda ev: self.loop.run_until_complete(self.delivery.deliver(ev)))
        t.cmd("LHLO c.sender.example" if lmtp else "EHLO c.sender.example", "250")
        if authenticated:
            t.m.session.identity = self.store.get_account("alice")
        return t

    def send(self, rcpts, message=MESSAGE, sender="x@sender.example", **kw) -> list[str]:
        t = self.transcript(**kw)
        t.cmd(f"MAIL FROM:<{sender}>", "250")
        for r in rcpts:
            t.cmd(f"RCPT TO:<{r}>", "250")
        t.cmd("DATA", "354")
        stuffed = message if message.endswith("\r\n") else message + "\r\n"
        return t.send(stuffed + ".\r\n")

    def inbox(self, account) -> list[bytes]:
        box = self.store.find_mailbox(account, "INBOX")
        return [self.store.read_message(account, e) for _, e in
                self.store.mailbox_uids(account, box["id"])]

    def queued(self) -> list[tuple[dict, bytes]]:
        return [(q, self.store.blobs.get(q["blob"])) for q in self.store.queue_list()]


@pytest.fixture
def world(keyset):
    w = World(keyset)
    yield w
    w.loop.close()


# ----------------------------------------------------------------------------- accepting

# (address, expected reply) for an unauthenticated client: the forward's address is local,
# tricks built on it are unknown users or relays, exactly as for an account address.
TRICKS = [
    ("info@example.org", "250"),
    ("INFO@Example.ORG", "250"),
    ("info+tag@example.org", "250"),                        # sub-address of the forward
    ("info@example.com", "250"),                            # alias domain
    ("info%bob@example.org", "550 5.1.1"),                  # percent hack on the forward
    ("bob%remote.example@example.org", "550 5.1.1"),
    ("remote.example!bob@example.org", "550 5.1.1"),        # bang path
    ('"bob@remote.example"@example.org', "550 5.1.1"),      # quoted @
    ('"info@remote.example"@example.org', "550 5.1.1"),
    ("@example.org:bob@remote.example", "550 5.7.1"),       # source route via the forward
    ("bob@remote.example", "550 5.7.1"),                    # a target, addressed directly
    ("dave@far.example", "550 5.7.1"),
    ("info@remote.example", "550 5.7.1"),
    ("info@[127.0.0.1]", "550 5.7.1"),
    ("info@example.org.remote.example", "550 5.7.1"),
    ("infox@example.org", "550 5.1.1"),
    ("info.x@example.org", "550 5.1.1"),
]


@pytest.mark.parametrize("address,expected", TRICKS)
def test_relay_battery_on_the_forward(world, address, expected):
    t = world.transcript()
    t.cmd("MAIL FROM:<x@sender.example>", "250")
    reply = t.send(f"RCPT TO:<{address}>\r\n")[0]
    assert reply.startswith(expected), reply
    if expected == "250":
        target = t.m.envelope.recipients[-1].target
        assert target["forward"] == "info@example.org"
        assert target["remote"] == ["bob@remote.example"]        # only the configured one
        assert target["accounts"] == [["alice@example.org", world.alice]]


def test_only_the_configured_targets_are_reached(world):
    replies = world.send(["info@example.org", "info+x@example.org"])
    assert replies[-1].startswith("250 2.0.0"), replies
    entries = world.queued()
    assert len(entries) == 1
    record, data = entries[0]
    assert [r["a"] for r in record["rcpt"]] == ["bob@remote.example"]
    assert record["from"] == "x@sender.example"             # original envelope sender
    assert [r["o"] for r in record["rcpt"]] == [["rfc822", "info@example.org"]]
    assert len(world.inbox(world.alice)) == 1                # one copy for two addresses
    assert b"DKIM-Signature" not in data                     # not signed as the From domain


def test_nested_forward_one_copy_per_account_and_one_entry_per_domain(world):
    replies = world.send(["team@example.net", "alice@example.org"])
    assert replies[-1].startswith("250 2.0.0"), replies
    assert len(world.inbox(world.alice)) == 1                # direct + via info@: one copy
    assert len(world.inbox(world.carol)) == 1
    entries = world.queued()
    assert len(entries) == 1                                 # all remote targets: team's domain
    record, data = entries[0]
    assert sorted(r["a"] for r in record["rcpt"]) == ["bob@remote.example", "dave@far.example"]
    assert re.search(rb"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example\.net", data)


def test_two_forwards_of_two_domains_get_two_sealed_entries(world):
    assert world.send(["info@example.org", "out@example.net"])[-1].startswith("250")
    sealed_by = sorted(re.search(rb"ARC-Seal:.*?d=([a-z.]+);", d, re.S).group(1).decode()
                       for _, d in world.queued())
    assert sealed_by == ["example.net", "example.org"]


# ----------------------------------------------------------------------------- ARC

def _aar(data: bytes, instance: int) -> str:
    """The payload of ARC-Authentication-Results i=N, unfolded."""
    found = re.search(rb"ARC-Authentication-Results: i=%d; ((?:[^\r\n]|\r\n[ \t])*)" % instance,
                      data)
    return re.sub(r"\r\n[ \t]+", " ", found.group(1).decode())


def test_forwarded_copy_is_sealed_and_dkimpy_accepts_it(world):
    assert world.send(["info@example.org"])[-1].startswith("250")
    (record, data), = world.queued()
    assert data.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.org; s=sel")
    aar = _aar(data, 1)
    assert aar.startswith(HOST + ";") and "spf=pass" in aar and "smtp.mailfrom=x@sender.example" in aar
    cv, _, reason = dkimpy.arc_verify(data, dnsfunc=dnsfunc(world.zone))
    assert cv == b"pass", reason
    ours = asyncio.run(arc.verify(data, world.resolver))
    assert ours.result == "pass" and ours.instance == 1


def _hop_sealed(keyset) -> bytes:
    first = b"Authentication-Results: mx.hop.example; spf=pass smtp.mailfrom=x@sender.example\r\n" \
        + MESSAGE.encode()
    pem = keys.private_key_pem(keyset["hop.example"]).encode()
    headers = dkimpy.arc_sign(first, b"sel", b"hop.example", pem, b"mx.hop.example")
    assert len(headers) == 3
    return b"".join(headers) + first


def test_existing_valid_chain_gets_instance_2(world, keyset):
    # A first hop (hop.example) sealed the message with dkimpy; we forward it: i=2, cv=pass.
    sealed = _hop_sealed(keyset)
    assert dkimpy.arc_verify(sealed, dnsfunc=dnsfunc(world.zone))[0] == b"pass"
    assert world.send(["info@example.org"], sealed.decode())[-1].startswith("250")
    (_, data), = world.queued()
    assert re.search(rb"ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=example\.org", data)
    assert "arc=pass" in _aar(data, 2)
    cv, results, reason = dkimpy.arc_verify(data, dnsfunc=dnsfunc(world.zone))
    assert cv == b"pass", reason
    assert [r["instance"] for r in results] == [2, 1]


def test_broken_chain_is_sealed_with_cv_fail(world, keyset):
    sealed = _hop_sealed(keyset)
    tampered = sealed.replace(b"Hello through a forward.", b"Hello, changed on the way.")
    assert world.send(["info@example.org"], tampered.decode())[-1].startswith("250")
    (_, data), = world.queued()
    assert re.search(rb"ARC-Seal: i=2; cv=fail; a=rsa-sha256; d=example\.org", data)
    assert "arc=fail" in _aar(data, 2)
    assert dkimpy.arc_verify(data, dnsfunc=dnsfunc(world.zone))[0] != b"pass"
    assert asyncio.run(arc.verify(data, world.resolver)).result == "fail"


def test_two_of_our_domains_in_a_row_give_i2(world):
    # The copy forwarded by example.org comes back in (from another server's address) to
    # out@example.net: the second hop seals i=2 over a passing chain.
    assert world.send(["info@example.org"])[-1].startswith("250")
    (_, first), = world.queued()
    world.loop.run_until_complete(world.store.queue_delete(world.store.queue_list()[0]["id"]))
    assert world.send(["out@example.net"], first.decode())[-1].startswith("250")
    (_, second), = world.queued()
    assert re.search(rb"ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=example\.net", second)
    cv, results, reason = dkimpy.arc_verify(second, dnsfunc=dnsfunc(world.zone))
    assert cv == b"pass", reason
    assert len(results) == 2


def test_domain_without_key_forwards_unsealed_and_logs_once(keyset, caplog):
    w = World(keyset, seal_keys=False)
    forward._unsealed_logged.discard("example.org")
    try:
        with caplog.at_level("WARNING", logger="stalwart.smtp"):
            assert w.send(["info@example.org"])[-1].startswith("250")
            assert w.send(["info@example.org"], MESSAGE.replace("fwd-1", "fwd-2"))[-1] \
                .startswith("250")
        datas = [d for _, d in w.queued()]
        assert len(datas) == 2 and not any(b"ARC-Seal" in d for d in datas)
        assert sum("no DKIM key" in r.message for r in caplog.records) == 1
    finally:
        w.loop.close()


def test_dmarc_quarantine_files_locally_into_junk_and_the_seal_says_why(world):
    message = MESSAGE.replace("x@sender.example", "boss@quarantine.example")
    assert world.send(["info@example.org"], message,
                      sender="boss@quarantine.example")[-1].startswith("250")
    junk = world.store.find_mailbox(world.alice, "Junk")
    assert len(world.store.mailbox_uids(world.alice, junk["id"])) == 1
    assert world.inbox(world.alice) == []
    (_, data), = world.queued()
    aar = _aar(data, 1)
    assert "spf=fail" in aar and "dmarc=fail" in aar and "header.from=quarantine.example" in aar
    assert dkimpy.arc_verify(data, dnsfunc=dnsfunc(world.zone))[0] == b"pass"


def test_dmarc_reject_refuses_before_anything_is_forwarded(world):
    message = MESSAGE.replace("x@sender.example", "ceo@reject.example")
    replies = world.send(["info@example.org"], message, sender="ceo@reject.example")
    assert replies[-1].startswith("550 5.7.1"), replies
    assert world.queued() == [] and world.inbox(world.alice) == []


# ----------------------------------------------------------------------------- other paths

def test_authenticated_sender_remote_targets_go_out_as_its_own_mail(world, keyset):
    """Submission to a forward: the client's own mail, DKIM-signed with its domain's
    keys by the relay path, not ARC-sealed."""
    message = MESSAGE.replace("From: Sender <x@sender.example>", "From: Alice <alice@example.org>")
    replies = world.send(["info@example.org"], message, sender="alice@example.org",
                         authenticated=True)
    assert replies[-1].startswith("250"), replies
    (record, data), = world.queued()
    assert [r["a"] for r in record["rcpt"]] == ["bob@remote.example"]
    assert data.startswith(b"DKIM-Signature:") and b"ARC-Seal" not in data


def test_lmtp_delivers_and_forwards(world):
    replies = world.send(["info@example.org", "carol@example.net"], lmtp=True)
    assert len(replies) == 2 and all(r.startswith("250") for r in replies), replies
    assert len(world.inbox(world.alice)) == 1 and len(world.inbox(world.carol)) == 1
    (_, data), = world.queued()
    assert b"ARC-Authentication-Results: i=1; mx.example.org; none" in data


def test_lmtp_two_forwards_sharing_a_remote_target_both_succeed(world):
    world.loop.run_until_complete(world.store.forward_create("bob2@example.org",
                                                             ["bob@remote.example"]))
    replies = world.send(["info@example.org", "bob2@example.org"], lmtp=True)
    assert [r[:3] for r in replies] == ["250", "250"], replies
    (record, _), = world.queued()
    assert [r["a"] for r in record["rcpt"]] == ["bob@remote.example"]     # one copy


def test_failed_local_target_is_not_dropped(world):
    world.loop.run_until_complete(world.store.update_account("alice", quota=10))
    assert world.send(["info@example.org"])[-1].startswith("250")
    (record, _), = world.queued()
    status = {r["a"]: r["s"] for r in record["rcpt"]}
    assert status == {"bob@remote.example": "pending", "alice@example.org": "failed"}
    assert world.inbox(world.alice) == []


def test_queue_failure_is_a_temporary_reply_for_everyone(world):
    async def broken(record):
        from stalwart.store.errors import StoreError
        raise StoreError("unavailable", "store down")
    world.store.queue_put = broken
    replies = world.send(["info@example.org", "carol@example.net"])
    assert replies[-1].startswith("451 4.3.0"), replies


def test_forward_whose_targets_are_all_gone_is_unknown(world):
    world.loop.run_until_complete(world.store.forward_create("gone@example.net",
                                                             ["carol@example.net"]))
    world.loop.run_until_complete(world.store.delete_account("carol"))
    t = world.transcript()
    t.cmd("MAIL FROM:<x@sender.example>", "250")
    t.cmd("RCPT TO:<gone@example.net>", "550 5.1.1")


# ----------------------------------------------------------------------------- hop limit

def _with_received(n: int) -> str:
    hops = "".join(f"Received: from h{i}.example by h{i + 1}.example; "
                   f"Fri, 04 Dec 2026 12:00:00 +0000\r\n" for i in range(n))
    return hops + MESSAGE


def test_hop_limit_refuses_a_looping_message(world):
    world.delivery.hop_limit = 5
    assert world.send(["alice@example.org"], _with_received(5))[-1].startswith("250")
    replies = world.send(["info@example.org", "alice@example.org"],
                         _with_received(6).replace("fwd-1", "fwd-2"))
    assert replies[-1].startswith("554 5.4.6"), replies
    assert len(world.inbox(world.alice)) == 1 and world.queued() == []


def test_received_count_reads_the_header_only():
    assert forward.received_count(b"Received: a\r\nreceived : b\r\nX: y\r\n\r\n"
                                  b"Received: in the body\r\n") == 2
    assert forward.received_count(b"X-Received: no\r\nSubject: Received: no\r\n\r\n") == 0
    assert forward.hop_limit_reply(_with_received(3).encode(), 0) is None   # 0: off
