"""ARC (RFC 8617): chains of 1 to 3 hops sealed by us and checked by dkimpy's ARC verifier,
chains sealed by dkimpy checked by us, mixed chains, broken chains of every kind, the
instance limits, DNS failures and random damage."""

from __future__ import annotations

import asyncio
import random
import re

import dkim as dkimpy
import pytest

from stalwart.dns import TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth import arc, dkim, keys

MESSAGE = (b"From: Joe <joe@origin.example>\r\n"
           b"To: list@hop1.example\r\n"
           b"Subject: ARC test\r\n"
           b"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
           b"Message-ID: <arc-1@origin.example>\r\n"
           b"\r\n"
           b"Hello through three hops.\r\n")
HOPS = ("hop1.example", "hop2.example", "hop3.example")


@pytest.fixture(scope="module")
def world():
    rsa_key = keys.generate("rsa-sha256", 2048)
    ed = keys.generate("ed25519-sha256")
    zone: dict = {}
    for domain in HOPS + ("far.example",):
        for selector, key in (("arc", rsa_key), ("ed", ed)):
            record = keys.dns_record(domain, selector, key)
            zone[record.name] = {"TXT": record.value}
    return rsa_key, ed, zone


def resolver(zone) -> Resolver:
    return Resolver(FakeBackend(zone))


def dnsfunc_for(zone):
    def lookup(name, timeout=5):
        text = name.decode() if isinstance(name, bytes) else name
        entry = zone.get(text.rstrip(".").lower())
        if not isinstance(entry, dict) or not isinstance(entry.get("TXT"), str):
            return None
        return entry["TXT"].encode()
    return lookup


def ours(message, zone) -> arc.ArcResult:
    return asyncio.run(arc.verify(message, resolver(zone)))


def theirs(message, zone):
    cv, _, reason = dkimpy.arc_verify(message, dnsfunc=dnsfunc_for(zone))
    return cv, reason


def our_hop(message: bytes, domain: str, key, zone, selector="arc", modify=None) -> bytes:
    chain = ours(message, zone)
    if modify is not None:               # a list that changes the message after checking it
        message = modify(message)
    signer = dkim.DkimSigner(domain, selector, key)
    results = f"{domain}; dkim=none; {chain.auth_results()}"
    return b"Received: from relay by " + domain.encode() + b"\r\n" + \
        arc.seal(message, signer, results, chain) + message


def their_hop(message: bytes, domain: str, key, zone) -> bytes:
    """dkimpy seals from the Authentication-Results of its authserv-id."""
    cv, _ = theirs(message, zone)
    arc_result = "none" if cv == b"none" else ("pass" if cv == b"pass" else "fail")
    results = f"Authentication-Results: {domain}; arc={arc_result}\r\n".encode()
    if arc_result == "none":
        results = f"Authentication-Results: {domain}; dkim=none\r\n".encode()
    message = results + message
    pem = keys.private_key_pem(key).encode()
    headers = dkimpy.arc_sign(message, b"arc", domain.encode(), pem, domain.encode())
    assert len(headers) == 3
    return b"".join(headers) + message


# ---------------------------------------------------------------- good chains

@pytest.mark.parametrize("hops", [1, 2, 3])
@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_chains_we_seal_pass_dkimpy_and_us(world, hops, algorithm):
    rsa_key, ed, zone = world
    key, selector = (rsa_key, "arc") if algorithm == "rsa" else (ed, "ed")
    message = MESSAGE
    for domain in HOPS[:hops]:
        message = our_hop(message, domain, key, zone, selector)
    result = ours(message, zone)
    assert (result.result, result.instance, result.oldest_pass) == ("pass", hops, 1), result
    assert [s.seal_domain for s in result.sets] == list(HOPS[:hops])
    assert [s.cv for s in result.sets] == ["none"] + ["pass"] * (hops - 1)
    assert result.sets[0].authentication_results == "hop1.example; dkim=none; arc=none"
    if algorithm == "rsa":              # dkimpy's ARC verifier knows only rsa-sha256
        assert theirs(message, zone) == (b"pass", "success")
    text = message.decode()
    assert text.startswith("Received:") and "ARC-Seal: i=%d;" % hops in text
    assert all(len(line) <= 78 for line in text.split("\r\n")
               if line.startswith(("ARC-Seal", "ARC-Message", "\t")))


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_chains_dkimpy_seals_pass_us(world, hops):
    rsa_key, _, zone = world
    message = MESSAGE
    for domain in HOPS[:hops]:
        message = their_hop(message, domain, rsa_key, zone)
    result = ours(message, zone)
    assert (result.result, result.instance) == ("pass", hops), result


def test_mixed_chain(world):
    rsa_key, _, zone = world
    message = our_hop(MESSAGE, HOPS[0], rsa_key, zone)
    message = their_hop(message, HOPS[1], rsa_key, zone)
    message = our_hop(message, HOPS[2], rsa_key, zone)
    assert ours(message, zone).result == "pass"
    assert theirs(message, zone)[0] == b"pass"


def test_oldest_pass_marks_where_the_message_changed(world):
    rsa_key, _, zone = world
    message = our_hop(MESSAGE, HOPS[0], rsa_key, zone)
    # hop 2 checks the chain (pass), then adds a subject tag and seals with cv=pass
    message = our_hop(message, HOPS[1], rsa_key, zone,
                      modify=lambda m: m.replace(b"Subject: ARC", b"Subject: [list] ARC"))
    # hop 3: hop 1's AMS no longer verifies, the seals and hop 2's AMS do
    message = our_hop(message, HOPS[2], rsa_key, zone)
    result = ours(message, zone)
    assert (result.result, result.oldest_pass) == ("pass", 2)
    assert result.auth_results() == "arc=pass header.oldest-pass=2"
    assert theirs(message, zone)[0] == b"pass"


def test_no_arc_fields_is_none(world):
    assert ours(MESSAGE, world[2]) == arc.ArcResult("none")
    assert ours(MESSAGE, world[2]).cv == "none"


# ---------------------------------------------------------------- broken chains

def two_hops(world) -> bytes:
    rsa_key, _, zone = world
    return our_hop(our_hop(MESSAGE, HOPS[0], rsa_key, zone), HOPS[1], rsa_key, zone)


def test_body_changed_after_the_last_seal(world):
    message = two_hops(world).replace(b"three hops", b"four hops")
    result = ours(message, world[2])
    assert (result.result, result.reason) == ("fail", "ARC-Message-Signature: body hash did not verify")
    assert theirs(message, world[2])[0] == b"fail"


def test_signed_header_changed_after_the_last_seal(world):
    message = two_hops(world).replace(b"Subject: ARC test", b"Subject: ARC test!")
    result = ours(message, world[2])
    assert (result.result, result.reason) == ("fail", "ARC-Message-Signature: signature did not verify")
    assert theirs(message, world[2])[0] == b"fail"


def test_tampered_older_set_breaks_the_seals(world):
    message = two_hops(world).replace(b"hop1.example; dkim=none; arc=none",
                                      b"hop1.example; dkim=pass; arc=none")
    result = ours(message, world[2])
    assert (result.result, result.reason) == ("fail", "ARC-Seal i=2 did not verify")
    assert theirs(message, world[2])[0] == b"fail"


def _drop_field(message: bytes, name: bytes, instance: int) -> bytes:
    pattern = re.compile(rb"(?im)^" + re.escape(name) + rb": i=" + str(instance).encode()
                         + rb";.*?\r\n(?![ \t])", re.S)
    out, n = pattern.subn(b"", message, count=1)
    assert n == 1
    return out


@pytest.mark.parametrize("mutate,reason", [
    (lambda m: _drop_field(m, b"ARC-Seal", 2), "ARC set 2 has 0 arc-seal fields"),
    (lambda m: _drop_field(m, b"ARC-Authentication-Results", 1),
     "ARC set 1 has 0 arc-authentication-results fields"),
    (lambda m: m.replace(b"ARC-Authentication-Results: i=1;",
                         b"ARC-Authentication-Results: i=1; x\r\nARC-Authentication-Results: i=1;"),
     "ARC set 1 has 2 arc-authentication-results fields"),
    (lambda m: m.replace(b"i=2;", b"i=3;"), "ARC sets are not numbered 1 to 3"),
    (lambda m: m.replace(b"i=2;", b"i=51;"), "ARC instance 51 is outside 1..50"),
    (lambda m: m.replace(b"i=1;", b"i=0;"), "ARC instance 0 is outside 1..50"),
    (lambda m: m.replace(b"ARC-Authentication-Results: i=1;", b"ARC-Authentication-Results: x;"),
     "arc-authentication-results field without a valid i= instance"),
    (lambda m: m.replace(b"cv=pass", b"cv=fail"), "ARC-Seal i=2 records a failed chain (cv=fail)"),
    (lambda m: m.replace(b"cv=pass", b"cv=none"), "ARC-Seal i=2 has cv=none, expected pass"),
    (lambda m: m.replace(b"cv=none", b"cv=pass"), "ARC-Seal i=1 has cv=pass, expected none"),
    (lambda m: m.replace(b"cv=none", b"cv=maybe"), "ARC-Seal cv=maybe is not none, pass or fail"),
    (lambda m: m.replace(b"ARC-Seal: i=2;", b"ARC-Seal: i=2; h=from;"), "ARC-Seal must not have an h= tag"),
    (lambda m: m.replace(b"ARC-Seal: i=2;", b"ARC-Seal: i=2; i=2;"),
     "arc-seal field without a valid i= instance"),
    (lambda m: m.replace(b"ARC-Seal: i=1; cv=none; a=rsa-sha256", b"ARC-Seal: i=1; cv=none; a=rsa-sha1"),
     "ARC-Seal: rsa-sha1 signatures are not accepted (RFC 8301)"),
    (lambda m: re.sub(rb"(ARC-Seal: i=2;[^\r]*\r\n(?:[ \t][^\r]*\r\n)*?)\tb=", rb"\1\tb=!!", m),
     "ARC-Seal: b= is not valid base64"),
])
def test_broken_structure(world, mutate, reason):
    message = mutate(two_hops(world))
    result = ours(message, world[2])
    assert (result.result, result.reason) == ("fail", reason)
    assert result.cv == "fail"
    cv, _ = theirs(message, world[2])
    assert cv != b"pass"


def test_ams_that_signs_arc_seal_is_refused(world):
    message = two_hops(world)
    message = re.sub(rb"(ARC-Message-Signature: i=2;.*?h=)from", rb"\1arc-seal:from", message,
                     count=1, flags=re.S)
    result = ours(message, world[2])
    assert result.reason == "ARC-Message-Signature: an ARC-Message-Signature must not sign ARC-Seal"


def test_dns_failures(world):
    message = two_hops(world)
    zone = dict(world[2])
    zone["arc._domainkey.hop1.example"] = TEMPFAIL
    result = ours(message, zone)
    assert result.result == "fail" and result.temporary
    assert result.reason.startswith("ARC-Seal i=1: key lookup failed")
    del zone["arc._domainkey.hop1.example"]
    result = ours(message, zone)
    assert (result.result, result.reason, result.temporary) == \
        ("fail", "ARC-Seal i=1: no key for signature", False)
    zone = dict(world[2])
    zone["arc._domainkey.hop2.example"] = {"TXT": "v=DKIM1; p="}
    assert ours(message, zone).reason == "ARC-Message-Signature: key revoked"


def test_sealing_a_failed_chain(world):
    rsa_key, _, zone = world
    message = two_hops(world).replace(b"three hops", b"four hops")
    chain = ours(message, zone)
    assert chain.cv == "fail"
    sealed = our_hop(message, HOPS[2], rsa_key, zone)
    assert b"cv=fail" in sealed
    result = ours(sealed, zone)
    assert (result.result, result.reason) == ("fail", "ARC-Seal i=3 records a failed chain (cv=fail)")
    assert theirs(sealed, zone)[0] != b"pass"


def test_instance_limit_of_50(world):
    _, ed, zone = world
    message = MESSAGE
    for _ in range(50):
        chain = ours(message, zone)
        message = arc.seal(message, dkim.DkimSigner("far.example", "ed", ed),
                           "far.example; arc=" + chain.result, chain) + message
    result = ours(message, zone)
    assert (result.result, result.instance) == ("pass", 50)
    with pytest.raises(ValueError, match="already has 50 sets"):
        arc.seal(message, dkim.DkimSigner("far.example", "ed", ed), "far.example; arc=pass", result)


def test_seal_refuses_a_chain_result_of_another_message(world):
    rsa_key, _, zone = world
    signer = dkim.DkimSigner("hop1.example", "arc", rsa_key)
    with pytest.raises(ValueError):
        arc.seal(MESSAGE, signer, "hop1.example; none", arc.ArcResult("pass", instance=2))
    with pytest.raises(ValueError):
        arc.seal(two_hops(world), signer, "hop1.example; none", arc.ArcResult("none"))
    with pytest.raises(ValueError):
        arc.seal(MESSAGE, signer, "bad\nresults", arc.ArcResult("none"))


def test_random_damage_never_crashes(world):
    zone = world[2]
    base = two_hops(world)
    rng = random.Random(8617)
    alphabet = b"=;: \t\r\nabi12cv\x00\xff"
    for _ in range(150):
        data = bytearray(base)
        for _ in range(rng.randint(1, 5)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[pos] = rng.choice(alphabet)
            else:
                del data[pos:pos + rng.randint(1, 30)]
        result = ours(bytes(data), zone)
        assert result.result in ("none", "pass", "fail")


def test_sealing_over_arc_fields_without_instance(world):
    """Junk ARC fields: the chain fails, and a sealer still adds its set with cv=fail."""
    rsa_key, _, zone = world
    message = b"ARC-Seal: garbage\r\n" + MESSAGE
    chain = ours(message, zone)
    assert (chain.result, chain.instance, chain.reason) == (
        "fail", 0, "arc-seal field without a valid i= instance")
    sealed = arc.seal(message, dkim.DkimSigner("hop1.example", "arc", rsa_key),
                      "hop1.example; arc=fail", chain) + message
    assert b"ARC-Seal: i=1; cv=fail;" in sealed
    assert ours(sealed, zone).result == "fail"
