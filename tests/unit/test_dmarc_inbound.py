"""The inbound pipeline through ``LocalDelivery.deliver``: SPF, DKIM (a fake verifier with
the ``stalwart.mailauth.dkim.verify`` contract), DMARC, the action, and the fields we
prepend, over a memory store and ``FakeBackend`` DNS."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from stalwart.dns import FakeBackend, Resolver
from stalwart.mailauth import authres
from stalwart.mailauth.inbound import InboundAuth, InboundSettings
from stalwart.protocols.smtp.address import Address, Path
from stalwart.protocols.smtp.delivery import LocalDelivery
from stalwart.protocols.smtp.events import Deliver, Envelope, Recipient, Session
from stalwart.protocols.smtp.params import MailParams, RcptParams
from stalwart.store.api import Store

HOST = "mx.example.net"
ZONE = {
    "example.org": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
    "_dmarc.example.org": {"TXT": "v=DMARC1; p=reject; rua=mailto:dmarc@example.org"},
    "quarantine.example": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
    "_dmarc.quarantine.example": {"TXT": "v=DMARC1; p=quarantine"},
    "mail.example.org": {"TXT": "v=spf1 a -all", "A": "192.0.2.1"},
}


@dataclass
class FakeDkim:
    result: str
    domain: str
    selector: str = "sel"
    algorithm: str = "rsa-sha256"
    reason: str = ""
    header_b: str = "abcdefgh"


class Harness:
    def __init__(self, *, signatures=(), zone=ZONE, **settings):
        self.dkim = list(signatures)
        self.verified: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        self.store = self.run(self._store())
        auth = InboundAuth(InboundSettings(hostname=HOST, **settings),
                           Resolver(FakeBackend(zone)), dkim_verify=self._verify)
        self.delivery = LocalDelivery(self.store, HOST, inbound=auth)

    async def _store(self):
        store = Store.memory()
        await store.create_domain("example.net")
        self.account = (await store.create_account("bob", emails=["bob@example.net"]))["id"]
        self.other = (await store.create_account("carol", emails=["carol@example.net"]))["id"]
        return store

    async def _verify(self, message, resolver):
        self.verified.append(message)
        return self.dkim

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def send(self, message: bytes, *, ip="192.0.2.1", mail_from="alice@example.org",
             helo="mail.example.org", identity=None, rcpts=("bob", "carol")):
        local, _, domain = mail_from.rpartition("@")
        path = Path(Address(local, domain)) if mail_from else Path(None)
        recipients = []
        for name in rcpts:
            acc = self.account if name == "bob" else self.other
            recipients.append(Recipient(Path(Address(name, "example.net")), RcptParams(),
                                        {"account": acc, "address": f"{name}@example.net"}))
        session = Session(remote_ip=ip, helo=helo, esmtp=True, identity=identity)
        event = Deliver(session, Envelope(path, MailParams(), recipients), message)
        return self.run(self.delivery.deliver(event))

    def mailbox_of(self, account, role):
        for mbox in self.store.list_mailboxes(account):
            if mbox["role"] == role:
                return mbox
        raise AssertionError(role)

    def messages(self, account, role):
        mbox = self.mailbox_of(account, role)
        return [self.store.read_message(account, eid)
                for _, eid, *_ in self.store.mailbox_messages(account, mbox["id"])]


MESSAGE = (b"Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=x@forged.example;"
           b" dmarc=pass header.from=example.org\r\n"
           b"Authentication-Results: upstream.example; spf=fail\r\n"
           b"BIMI-Location: v=BIMI1; l=https://evil.example/logo.svg\r\n"
           b"From: Alice <alice@example.org>\r\n"
           b"To: bob@example.net\r\n"
           b"Subject: hello\r\n"
           b"\r\n"
           b"Hello Bob\r\n")


@pytest.fixture
def h():
    harness = Harness()
    yield harness
    harness.loop.close()


def test_pass_goes_to_inbox_with_our_fields(h):
    replies = h.send(MESSAGE)
    assert [r.code for r in replies] == [250, 250]
    [stored] = h.messages(h.account, "inbox")
    assert h.messages(h.account, "junk") == []
    ours = [v for v in authres.field_values(stored, "authentication-results")
            if authres.authserv_id(v) == HOST]
    assert len(ours) == 1                        # the forged one is gone, ours is there
    assert "spf=pass smtp.mailfrom=alice@example.org" in ours[0]
    assert "spf=pass smtp.helo=mail.example.org" in ours[0]
    assert "dkim=none" in ours[0]
    assert "dmarc=pass (p=REJECT dis=NONE) header.from=example.org" in ours[0]
    assert authres.field_values(stored, "authentication-results")[1].strip() == \
        "upstream.example; spf=fail"             # other hosts' results are kept
    assert authres.field_values(stored, "bimi-location") == []
    [received_spf] = authres.field_values(stored, "received-spf")
    assert received_spf.startswith(" pass (mx.example.net: domain of alice@example.org")
    # The DKIM verifier saw the message without the forged field.
    assert b"forged.example" not in h.verified[0]


def test_reject_policy_is_550_for_every_recipient(h):
    replies = h.send(MESSAGE, ip="203.0.113.9")
    assert [(r.code, r.status) for r in replies] == [(550, "5.7.1"), (550, "5.7.1")]
    assert h.messages(h.account, "inbox") == [] and h.messages(h.other, "junk") == []


def test_quarantine_policy_files_into_junk(h):
    msg = MESSAGE.replace(b"alice@example.org>", b"alice@quarantine.example>")
    replies = h.send(msg, ip="203.0.113.9", mail_from="alice@quarantine.example")
    assert [r.code for r in replies] == [250, 250]
    for account in (h.account, h.other):
        assert h.messages(account, "inbox") == []
        [junk] = h.messages(account, "junk")
        assert b"dmarc=fail (p=QUARANTINE dis=QUARANTINE)" in junk


def test_aligned_dkim_pass_overrides_spf_fail():
    h = Harness(signatures=[FakeDkim("pass", "mail.example.org"), FakeDkim("fail", "evil.example",
                                                                      header_b="zzzzzzzz")])
    replies = h.send(MESSAGE, ip="203.0.113.9")
    assert replies[0].code == 250
    [stored] = h.messages(h.account, "inbox")
    text = stored.decode()
    assert "spf=fail smtp.mailfrom=alice@example.org" in text
    assert "dkim=pass header.d=mail.example.org header.s=sel header.a=rsa-sha256 " \
           "header.b=abcdefgh" in text
    assert "dkim=fail header.d=evil.example" in text
    assert "dmarc=pass" in text
    h.loop.close()


def test_authenticated_sessions_are_not_checked(h):
    replies = h.send(MESSAGE, ip="203.0.113.9", identity={"id": 1, "name": "bob"})
    assert replies[0].code == 250
    [stored] = h.messages(h.account, "inbox")
    assert b"Received-SPF" not in stored and h.verified == []
    # ... but a user cannot forge our verdicts for another user either.
    assert b"forged.example" not in stored and b"BIMI-Location" not in stored
    assert b"Authentication-Results: upstream.example; spf=fail" in stored


def test_relaxed_dmarc_delivers_and_disabled_checks_add_nothing():
    h = Harness(dmarc="relaxed")
    assert h.send(MESSAGE, ip="203.0.113.9")[0].code == 250
    [stored] = h.messages(h.account, "inbox")
    assert b"dmarc=fail (p=REJECT dis=REJECT)" in stored
    h.loop.close()
    h = Harness(dmarc="disabled", dkim="disabled", spf_helo="disabled",
                spf_mail_from="disabled")
    assert h.send(MESSAGE, ip="203.0.113.9")[0].code == 250
    [stored] = h.messages(h.account, "inbox")
    assert b"Authentication-Results: mx.example.net; none\r\n" in stored
    assert b"Received-SPF" not in stored and h.verified == []
    h.loop.close()


def test_strict_spf_and_strict_dkim():
    h = Harness(spf_mail_from="strict", dmarc="relaxed")
    msg = MESSAGE.replace(b"alice@example.org>", b"alice@other.example>")
    replies = h.send(msg, ip="203.0.113.9")
    assert (replies[0].code, replies[0].status) == (550, "5.7.23")
    h.loop.close()
    h = Harness(signatures=[FakeDkim("fail", "example.org")], dkim="strict")
    replies = h.send(MESSAGE)
    assert (replies[0].code, replies[0].status) == (550, "5.7.20")
    h.loop.close()
    h = Harness(signatures=[FakeDkim("temperror", "example.org")], dkim="strict")
    replies = h.send(MESSAGE)
    assert (replies[0].code, replies[0].status) == (451, "4.7.5")
    h.loop.close()


def test_aggregate_row_and_null_sender():
    h = Harness()
    verdict = h.run(h.delivery.inbound.check("203.0.113.9", "mail.example.org", "", MESSAGE))
    assert verdict.action == "reject"
    row = verdict.aggregate
    assert row["domain"] == "example.org" and row["rua"] == ["mailto:dmarc@example.org"]
    assert row["source_ip"] == "203.0.113.9" and row["disposition"] == "reject"
    assert row["spf"] == [{"domain": "mail.example.org", "scope": "mfrom", "result": "fail"}]
    assert (row["dkim_aligned"], row["spf_aligned"]) == ("fail", "fail")
    h.loop.close()


def test_message_without_from_is_permerror_not_a_crash(h):
    replies = h.send(b"Subject: no from\r\n\r\nbody\r\n")
    assert replies[0].code == 250
    [stored] = h.messages(h.account, "inbox")
    assert b'dmarc=permerror reason="no From header field"' in stored


def test_arc_result_is_reported():
    from stalwart.mailauth.arc import ArcResult

    async def no_dkim(message, resolver):
        return []

    async def arc_pass(message, resolver):
        return ArcResult("pass", instance=2, oldest_pass=1)

    async def arc_none(message, resolver):
        return ArcResult("none")

    loop = asyncio.new_event_loop()
    try:
        for verify, expected in ((arc_pass, True), (arc_none, False)):
            auth = InboundAuth(InboundSettings(hostname=HOST), Resolver(FakeBackend(ZONE)),
                               dkim_verify=no_dkim, arc_verify=verify)
            verdict = loop.run_until_complete(auth.check("192.0.2.1", "mail.example.org",
                                                         "alice@example.org", MESSAGE))
            [ours] = [v for v in authres.field_values(verdict.message,
                                                      "authentication-results")
                      if authres.authserv_id(v) == HOST]
            assert ("arc=pass header.oldest-pass=1;" in ours) is expected
            assert ("\tarc=" in ours) is expected
    finally:
        loop.close()


def test_a_verifier_crash_is_a_temporary_failure():
    h = Harness()

    async def broken(message, resolver):
        raise RuntimeError("bug")

    async def broken_check(*args):
        raise RuntimeError("bug in the pipeline")

    h.delivery.inbound._dkim_verify = broken         # contained: DKIM reports nothing
    assert h.send(MESSAGE)[0].code == 250
    h.delivery.inbound.check = broken_check          # the pipeline itself: 451, kept
    replies = h.send(MESSAGE)
    assert [(r.code, r.status) for r in replies] == [(451, "4.3.0")] * 2
    assert len(h.messages(h.account, "inbox")) == 1
    h.loop.close()


def test_several_from_domains_get_the_strictest_result(h):
    # A forged bank address next to the attacker's own aligned domain: still rejected.
    zone_msg = MESSAGE.replace(b"From: Alice <alice@example.org>",
                               b"From: ceo@example.org, me@quarantine.example")
    replies = h.send(zone_msg, ip="203.0.113.9", mail_from="me@quarantine.example")
    assert [(r.code, r.status) for r in replies] == [(550, "5.7.1")] * 2
    # Two From fields, the first one passing: the second one's failure decides.
    two_fields = MESSAGE.replace(b"From: Alice <alice@example.org>\r\n",
                                 b"From: alice@example.org\r\n"
                                 b"From: alice@quarantine.example\r\n")
    replies = h.send(two_fields, ip="192.0.2.1", mail_from="alice@example.org")
    assert [r.code for r in replies] == [250, 250]
    [junk] = h.messages(h.account, "junk")
    assert b"dmarc=fail (p=QUARANTINE dis=QUARANTINE) header.from=quarantine.example" in junk
    assert b"bimi=" not in junk


def test_real_messages_through_the_pipeline():
    """Every message of a corpus sample (../shared/corpora: real mail with folded
    headers, 8-bit bodies, odd From fields) through the whole pipeline with the real DKIM
    and ARC verifiers: no crash, the message kept byte for byte below our fields."""
    import re

    from bench.micro.mime import CORPUS, load_corpus

    if not CORPUS.exists():
        pytest.fail(f"corpus {CORPUS} is missing (see ../shared/corpora/README.md)")
    messages = [re.sub(rb"\r?\n", b"\r\n", raw) for _, raw in load_corpus()][::8]
    zone = dict(ZONE)

    async def go():
        auth = InboundAuth(InboundSettings(hostname=HOST), Resolver(FakeBackend(zone)))
        actions = set()
        for raw in messages:
            verdict = await auth.check("203.0.113.9", "mail.example.org", "x@example.org", raw)
            actions.add(verdict.action)
            assert verdict.message.startswith(verdict.headers)
            assert verdict.message.endswith(raw.split(b"\r\n\r\n", 1)[-1])
            [ours] = [v for v in authres.field_values(verdict.message,
                                                      "authentication-results")
                      if authres.authserv_id(v) == HOST]
            assert "dmarc=" in ours and "spf=" in ours
        return actions

    actions = asyncio.run(go())
    assert len(messages) > 50 and actions <= {"accept", "junk", "reject"}
