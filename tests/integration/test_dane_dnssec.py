"""DANE through a real validating resolver: NSD serves signed and unsigned zones with TLSA
records, Unbound validates them (``dnsserver``), and the queue (in this process, its
resolver pointed at Unbound) delivers to a TLS SMTP sink on loopback.

Every domain's MX host is the same sink (127.0.0.1), whose certificate (for
``mx.ta.test``, issued by a private intermediate) is what the TLSA records are compared
with:

============  ========  =====================================  ============================
domain        signed    TLSA at ``_<port>._tcp.mx.<domain>``   outcome
============  ========  =====================================  ============================
ee.test       yes       3 1 1 of the sink's key                delivered over TLS
ta.test       yes       2 1 1 of the intermediate              delivered (chain + MX name)
bad.test      yes       3 1 1 of another key                   deferred, 451 4.7.5, unsent
plain.test    no        3 1 1 of another key                   delivered: no AD bit, no DANE
bogus.test    yes       3 1 1 of the sink's key, in a child    deferred, 451 4.7.5: the TLSA
                        zone whose signatures have expired     lookup is SERVFAIL (bogus)
============  ========  =====================================  ============================

A second test covers CNAME MX hosts (RFC 7672 2.2.2) and REQUIRETLS (RFC 8689 4.2.1) the
same way (its own table).
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from stalwart.dns import Resolver, TempFail
from stalwart.mailauth.dane import Dane
from stalwart.mailauth.tlsrpt import TlsRptRecorder
from stalwart.queue import MemoryQueueStore, Queue, QueueSettings
from stalwart.store.blobs import MemoryBlobStore

from .dnsserver import dns_server  # noqa: F401  (fixture)
from .test_dane_queue import EXT, Pki, free_port, tlsa
from .test_mtasts_queue import BoundSink
from .test_queue_delivery import Clock

pytestmark = pytest.mark.integration


def record(t: tuple) -> str:
    usage, selector, mtype, data = t
    return f"{usage} {selector} {mtype} {data.hex()}"


def message(domain: str) -> bytes:
    return (f"From: a@sender.test\r\nTo: b@{domain}\r\nSubject: dane {domain}\r\n\r\n"
            f"Body for {domain}\r\n").encode()


def test_dane_against_signed_and_unsigned_zones(dns_server, tmp_path):  # noqa: F811
    pki = Pki(tmp_path)
    port = free_port()
    ctx, cert = pki.context("mx.ta.test")
    _, other = pki.context("mx.bad.test")
    tlsa_name = f"_{port}._tcp.mx"
    for domain, signed, tlsa_value in (("ee.test", True, tlsa(3, cert)),
                                       ("ta.test", True, tlsa(2, pki.inter)),
                                       ("bad.test", True, tlsa(3, other)),
                                       ("plain.test", False, tlsa(3, other))):
        dns_server.zone(domain, [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1"),
                                 (tlsa_name, "TLSA", record(tlsa_value))], signed=signed)
    # bogus.test itself is fine; it delegates its TLSA name (NS + DS) to a zone of its
    # own whose signatures expired yesterday.
    child = dns_server.zone(f"{tlsa_name}.bogus.test", [("@", "TLSA", record(tlsa(3, cert)))],
                            signed=True)
    child.signature_window = (datetime.timedelta(days=-10), datetime.timedelta(days=-1))
    dns_server.zone("bogus.test", [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1"),
                                   (tlsa_name, "NS", "ns.bogus.test."),
                                   (tlsa_name, "DS", child.ds().split(" DS ", 1)[1])],
                    signed=True)
    dns_server.publish()
    unbound = dns_server.validating_resolver()

    async def main():
        resolver = Resolver.from_settings([unbound.address], timeout=2.0, lifetime=6.0)
        # What the queue builds on: the AD bit on the signed zones' TLSA answers only.
        assert (await resolver.tlsa(f"{tlsa_name}.ee.test")).secure
        assert not (await resolver.tlsa(f"{tlsa_name}.plain.test")).secure
        assert (await resolver.addresses("mx.bogus.test")).secure
        with pytest.raises(TempFail):
            await resolver.tlsa(f"{tlsa_name}.bogus.test")
        clock = Clock()
        store, blobs = MemoryQueueStore(), MemoryBlobStore()
        queue = Queue(store, blobs, resolver,
                      QueueSettings(hostname="mail.sender.test", mx_port=port, retry=(60.0,)),
                      clock=clock)
        queue.deliverer.dane = Dane(resolver)
        report = TlsRptRecorder(clock=clock)
        queue.deliverer.tlsrpt = report
        sink = BoundSink("127.0.0.1", port, extensions=EXT, tls=ctx)
        async with sink:
            for domain in ("ee.test", "ta.test", "bad.test", "plain.test", "bogus.test"):
                await queue.enqueue(message(domain), return_path="a@sender.test",
                                    recipients=[f"b@{domain}"])
                await queue.run_due()
                await queue.pool.close()
        return store, sink, report, clock
    store, sink, report, clock = asyncio.run(main())

    got = sorted(m.split(b"\r\n")[1].decode() for m in sink.messages)
    assert got == ["To: b@ee.test", "To: b@plain.test", "To: b@ta.test"]
    assert all(s.tls for s in sink.sessions)
    # Five domains, four sessions: bogus.test's host was never connected to.
    assert len(sink.sessions) == 4
    pending = {m["rcpt"][0]["a"]: m["rcpt"][0] for m in store.queue_list() if m["from"]}
    assert sorted(pending) == ["b@bad.test", "b@bogus.test"]
    assert all(r["s"] == "pending" and r["r"][:2] == [451, "4.7.5"] for r in pending.values())
    assert "DANE" in pending["b@bad.test"]["r"][2]
    assert "TLSA lookup" in pending["b@bogus.test"]["r"][2]
    # TLS-RPT: DANE sessions under the tlsa policy, the unsigned domain without a policy.
    day = int(clock.now // 86400 * 86400)

    def kinds(domain: str) -> dict:
        return {k.type: (c.success, sorted(f[0] for f in c.failures))
                for k, c in report.days[day][domain].items()}
    assert kinds("ee.test") == {"tlsa": (1, [])} and kinds("ta.test") == {"tlsa": (1, [])}
    assert kinds("bad.test") == {"tlsa": (0, ["tlsa-invalid"])}
    assert kinds("plain.test") == {"no-policy-found": (1, [])}
    assert kinds("bogus.test")["tlsa"] == (0, ["dnssec-invalid"])


def test_cname_mx_and_requiretls_with_unbound(dns_server, tmp_path):  # noqa: F811
    """RFC 7672 2.2.2 and RFC 8689 4.2.1 against NSD + Unbound:

    ==============  =====================================  ==================================
    domain          MX host                                outcome
    ==============  =====================================  ==================================
    cname.test      mx -> CNAME smtp.provider.test         TLSA at the expanded name (DANE-TA,
                                                           certificate for the expanded name):
                                                           delivered, SNI smtp.provider.test
    fallback.test   mx -> CNAME bare.provider.test         no TLSA there: the MX name's 3 1 1
                                                           record is used; delivered
    first.test      mx -> CNAME other.provider.test        its mismatching record wins over
                                                           the MX name's matching one: 4.7.5
    rt.test         mx (signed, TLSA 3 1 1)                REQUIRETLS delivered over DANE
    plainrt.test    mx (unsigned zone)                     REQUIRETLS refused, 5.7.10 DSN,
                                                           no connection
    ==============  =====================================  ==================================
    """
    pki = Pki(tmp_path)
    port = free_port()
    ctx, cert = pki.context("smtp.provider.test")
    _, other = pki.context("other.provider.test")
    sni: list = []
    ctx.sni_callback = lambda _obj, name, _ctx: sni.append(name)
    prefix = f"_{port}._tcp."
    dns_server.zone("provider.test", [
        ("smtp", "A", "127.0.0.1"), ("bare", "A", "127.0.0.1"), ("other", "A", "127.0.0.1"),
        (prefix + "smtp", "TLSA", record(tlsa(2, pki.inter))),
        (prefix + "other", "TLSA", record(tlsa(3, other)))], signed=True)
    for domain, target in (("cname.test", "smtp"), ("fallback.test", "bare"),
                           ("first.test", "other")):
        records = [("@", "MX", "10 mx"), ("mx", "CNAME", f"{target}.provider.test.")]
        if domain != "cname.test":
            records.append((prefix + "mx", "TLSA", record(tlsa(3, cert))))
        dns_server.zone(domain, records, signed=True)
    for domain, signed in (("rt.test", True), ("plainrt.test", False)):
        dns_server.zone(domain, [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1"),
                                 (prefix + "mx", "TLSA", record(tlsa(3, cert)))],
                        signed=signed)
    dns_server.publish()
    unbound = dns_server.validating_resolver()

    async def main():
        resolver = Resolver.from_settings([unbound.address], timeout=2.0, lifetime=6.0)
        # The real backend reports the CNAME target and a secure chain.
        addrs = await resolver.addresses("mx.cname.test")
        assert addrs.secure and addrs.canonical == "smtp.provider.test"
        assert (await resolver.addresses("mx.rt.test")).canonical == ""
        assert not (await resolver.mx_hosts("plainrt.test")).secure
        clock = Clock()
        store, blobs = MemoryQueueStore(), MemoryBlobStore()
        queue = Queue(store, blobs, resolver,
                      QueueSettings(hostname="mail.sender.test", mx_port=port, retry=(60.0,)),
                      clock=clock)
        queue.deliverer.dane = Dane(resolver)
        sink = BoundSink("127.0.0.1", port, extensions=(*EXT, "REQUIRETLS"), tls=ctx)
        async with sink:
            for domain in ("cname.test", "fallback.test", "first.test", "rt.test",
                           "plainrt.test"):
                await queue.enqueue(message(domain), return_path="a@sender.test",
                                    recipients=[f"b@{domain}"],
                                    requiretls=domain.endswith("rt.test"))
                await queue.run_due()
                await queue.pool.close()
        return store, blobs, sink
    store, blobs, sink = asyncio.run(main())

    got = sorted(m.split(b"\r\n")[1].decode() for m in sink.messages)
    assert got == ["To: b@cname.test", "To: b@fallback.test", "To: b@rt.test"]
    assert len(sink.sessions) == 4 and all(s.tls for s in sink.sessions)
    assert sni == ["smtp.provider.test", "mx.fallback.test", "other.provider.test",
                   "mx.rt.test"]
    assert any(c.endswith(" REQUIRETLS") and c.startswith("MAIL FROM")
               for c in sink.sessions[3].commands)
    pending = {m["rcpt"][0]["a"]: m["rcpt"][0] for m in store.queue_list() if m["from"]}
    assert list(pending) == ["b@first.test"]
    assert pending["b@first.test"]["r"][:2] == [451, "4.7.5"]
    [dsn] = [blobs.get(m["blob"]).decode() for m in store.queue_list() if not m["from"]]
    assert "b@plainrt.test" in dsn and "Status: 5.7.10" in dsn
    assert "not DNSSEC-validated" in dsn
