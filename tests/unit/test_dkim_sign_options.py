"""DKIM signing options from the config (``auth.dkim.sign.*``): which algorithms sign,
the canonicalization, the signed header fields and the expiry, threaded from the config
to the signer (``SignOptions`` on ``LocalDelivery.dkim_sign``, the TLS report job). Each
option changes the DKIM-Signature we produce, and dkimpy (an independent verifier)
still verifies it; a bad value is a config error naming the key."""

from __future__ import annotations

import asyncio
import re

import dkim as dkimpy
import pytest

from stalwart.config import ConfigError, loads
from stalwart.config.settings.dkim import DEFAULT_SIGNED_HEADERS
from stalwart.mailauth import dkim, keys
from stalwart.mailauth.signopts import SignOptions
from stalwart.mailauth.tlsrpt import signed_enqueue
from stalwart.store.api import Store

MESSAGE = (b"From: Jane <jane@example.org>\r\nTo: bob@remote.example\r\n"
           b"Subject: signed   with  options\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
           b"Message-ID: <opt-1@example.org>\r\nX-Custom: kept out\r\n\r\nHello Bob.  \r\n")


def run(coro):
    return asyncio.run(coro)


async def store_with_keys() -> tuple[Store, dict]:
    store = Store.memory()
    await store.create_domain("example.org")
    zone = {}
    for algorithm in keys.ALGORITHMS:
        key = keys.generate(algorithm)
        selector = keys.new_selector(algorithm, [])
        await store.dkim_key_put("example.org", selector, algorithm, keys.private_key_pem(key))
        rec = keys.dns_record("example.org", selector, key)
        zone[f"{rec.name}."] = "".join(rec.strings).encode()
    return store, zone


async def submit(store: Store, options: SignOptions | None) -> bytes:
    """The message as the SMTP server queues it for a remote recipient (submission)."""
    from stalwart.protocols.smtp.address import Address, Path
    from stalwart.protocols.smtp.delivery import LocalDelivery
    from stalwart.protocols.smtp.events import Deliver, Envelope, Recipient, Session
    from stalwart.protocols.smtp.params import MailParams, RcptParams

    rcpt = Recipient(Path(Address("bob", "remote.example")), RcptParams(),
                     {"relay": "bob@remote.example"})
    session = Session(remote_ip="192.0.2.7", helo="laptop", esmtp=True, submission=True,
                      identity={"name": "jane", "emails": ["jane@example.org"]}, authcid="jane")
    event = Deliver(session, Envelope(Path(Address("jane", "example.org")), MailParams(), [rcpt]),
                    MESSAGE)
    delivery = LocalDelivery(store, "mx.example.org")
    delivery.dkim_sign = options
    [reply] = await delivery.deliver(event)
    assert reply.code == 250
    return store.blobs.get(store.queue_list()[-1]["blob"])


def signatures(message: bytes) -> list[dict[str, str]]:
    """The tags of each DKIM-Signature field, in order."""
    out = []
    for m in re.finditer(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", message, re.M | re.S):
        text = re.sub(r"\s+", "", m.group(1).decode())
        out.append(dict(t.split("=", 1) for t in text.split(";") if t))
    return out


def dkimpy_verifies(message: bytes, zone: dict) -> bool:
    d = dkimpy.DKIM(message)
    return all(d.verify(idx=i, dnsfunc=lambda name, timeout=5: zone.get(name.decode()))
               for i in range(len(signatures(message))))


def options(toml: str = "") -> SignOptions:
    return SignOptions.from_config(loads("[auth.dkim.sign]\n" + toml))


def test_the_defaults_match_what_was_signed_before():
    assert options() == SignOptions(headers=dkim.DEFAULT_HEADERS)
    assert DEFAULT_SIGNED_HEADERS == dkim.DEFAULT_HEADERS

    async def go():
        store, zone = await store_with_keys()
        signed = await submit(store, options())
        sigs = signatures(signed)
        assert sorted(s["a"] for s in sigs) == ["ed25519-sha256", "rsa-sha256"]
        for s in sigs:
            assert s["c"] == "relaxed/relaxed" and "x" not in s
            names = s["h"].split(":")
            assert names.count("from") == 2 and names[-1] == "from"        # oversigned
            assert "subject" in names and "x-custom" not in names
        assert dkimpy_verifies(signed, zone)
        # No options at all (a caller that has none) signs the same way.
        plain = signatures(await submit(store, None))
        assert [(s["a"], s["c"], s["h"]) for s in plain] == [(s["a"], s["c"], s["h"])
                                                            for s in sigs]
    run(go())


@pytest.mark.parametrize("algorithms,expected", [
    ('["rsa-sha256"]', ["rsa-sha256"]),
    ('["ed25519-sha256"]', ["ed25519-sha256"]),
])
def test_the_configured_algorithms_restrict_the_domains_keys(algorithms, expected):
    async def go():
        store, zone = await store_with_keys()
        signed = await submit(store, options(f"algorithms = {algorithms}\n"))
        assert [s["a"] for s in signatures(signed)] == expected
        assert dkimpy_verifies(signed, zone)
    run(go())


def test_no_key_of_an_allowed_algorithm_means_unsigned():
    async def go():
        store = Store.memory()
        await store.create_domain("example.org")
        key = keys.generate("ed25519-sha256")
        await store.dkim_key_put("example.org", "e", "ed25519-sha256", keys.private_key_pem(key))
        queued = await submit(store, options('algorithms = ["rsa-sha256"]\n'))
        assert queued.startswith(b"Received:") and b"DKIM-Signature" not in queued
    run(go())


@pytest.mark.parametrize("canon", ["simple/simple", "simple/relaxed", "relaxed/simple"])
def test_canonicalization(canon):
    async def go():
        store, zone = await store_with_keys()
        signed = await submit(store, options(f'canonicalization = "{canon}"\n'))
        assert {s["c"] for s in signatures(signed)} == {canon}
        assert dkimpy_verifies(signed, zone)
    run(go())


def test_signed_headers():
    async def go():
        store, zone = await store_with_keys()
        signed = await submit(store, options('headers = ["From", "Subject", "X-Custom", '
                                             '"List-Id"]\n'))
        for s in signatures(signed):
            # Each present field once (List-Id is absent), From once more.
            assert s["h"] == "from:subject:x-custom:from"
        assert dkimpy_verifies(signed, zone)
        # Changing a field outside the list keeps the signature; one inside breaks it.
        outside = signed.replace(b"Message-ID: <opt-1@", b"Message-ID: <opt-2@")
        assert dkimpy_verifies(outside, zone)
        inside = signed.replace(b"X-Custom: kept out", b"X-Custom: changed!")
        assert not dkimpy.DKIM(inside).verify(
            idx=0, dnsfunc=lambda name, timeout=5: zone.get(name.decode()))
    run(go())


def test_expiry():
    async def go():
        store, zone = await store_with_keys()
        signed = await submit(store, options('expire = "2h"\n'))
        for s in signatures(signed):
            assert int(s["x"]) == int(s["t"]) + 7200
        assert dkimpy_verifies(signed, zone)
    run(go())


@pytest.mark.parametrize("toml,key", [
    ('algorithms = ["rsa-sha1"]', "auth.dkim.sign.algorithms"),
    ("algorithms = []", "auth.dkim.sign.algorithms"),
    ('canonicalization = "relaxed"', "auth.dkim.sign.canonicalization"),
    ("canonicalization = 1", "auth.dkim.sign.canonicalization"),
    ('headers = ["subject", "date"]', "auth.dkim.sign.headers"),
    ('headers = ["from", "bad name"]', "auth.dkim.sign.headers"),
    ("headers = []", "auth.dkim.sign.headers"),
    ('expire = "30s"', "auth.dkim.sign.expire"),
    ('expire = "soon"', "auth.dkim.sign.expire"),
])
def test_bad_values_are_config_errors_naming_the_key(toml, key):
    with pytest.raises(ConfigError) as e:
        loads("[auth.dkim.sign]\n" + toml + "\n")
    assert e.value.key == key and key in str(e.value)


def test_the_tls_report_job_signs_with_the_configured_options():
    async def go():
        store, zone = await store_with_keys()
        queued: list[bytes] = []

        class Queue:
            pass
        queue = Queue()
        queue.store = store

        async def enqueue(message, *, return_path, recipients):
            queued.append(message)
        queue.enqueue = enqueue
        report = MESSAGE.replace(b"From: Jane <jane@example.org>", b"From: jane@example.org")
        send = signed_enqueue(queue, options('algorithms = ["ed25519-sha256"]\n'
                                             'canonicalization = "simple/simple"\n'))
        await send(report, ["tls@remote.example"])
        [sig] = signatures(queued[0])
        assert sig["a"] == "ed25519-sha256" and sig["c"] == "simple/simple"
        assert dkimpy_verifies(queued[0], zone)
    run(go())


def test_dmarc_aggregate_reports_are_signed_with_the_configured_options():
    from stalwart.mailauth import reports

    async def go():
        store, zone = await store_with_keys()
        t0 = 1_790_000_000 // 86400 * 86400
        await store.dmarc_record({
            "time": t0 + 60, "domain": "remote.example", "rua": ["mailto:d@remote.example"],
            "policy": {"domain": "remote.example", "p": "none"}, "source_ip": "192.0.2.1",
            "header_from": "remote.example", "disposition": "none", "dkim_aligned": "pass",
            "spf_aligned": "pass", "dkim": [], "spf": []})
        opts = options('algorithms = ["rsa-sha256"]\n')
        result = await reports.send_aggregate_reports(
            store, hostname="mx.example.org", org_name="Example", sender="dmarc@example.org",
            now=t0 + 86400 + 60, sign=lambda m: keys.sign_outbound(store, m, options=opts))
        assert result["reports"] == 1
        queued = store.blobs.get(store.queue_list()[-1]["blob"])
        [sig] = signatures(queued)
        assert sig["d"] == "example.org" and sig["a"] == "rsa-sha256"
        assert dkimpy_verifies(queued, zone)
        # A signer that fails still sends the report, unsigned.
        await store.dmarc_record({
            "time": t0 + 120, "domain": "remote.example", "rua": ["mailto:d@remote.example"],
            "policy": {"domain": "remote.example", "p": "none"}, "source_ip": "192.0.2.1",
            "header_from": "remote.example", "disposition": "none", "dkim_aligned": "pass",
            "spf_aligned": "pass", "dkim": [], "spf": []})

        def broken(message: bytes) -> bytes:
            raise ValueError("no key")
        result = await reports.send_aggregate_reports(
            store, hostname="mx.example.org", org_name="Example", sender="dmarc@example.org",
            now=t0 + 86400 + 60, sign=broken)
        assert result["reports"] == 1
        assert signatures(store.blobs.get(store.queue_list()[-1]["blob"])) == []
    run(go())
