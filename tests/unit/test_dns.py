"""The DNS layer over the fake backend: typed answers, MX rules (RFC 5321 5.1, RFC 7505),
TXT joining, the cache (TTL, negative, bounded, temp failures not cached), in-flight
sharing and name validation."""

from __future__ import annotations

import asyncio
import random

import pytest

from stalwart.dns import (MX, NXDOMAIN, TEMPFAIL, TLSA, DnsCache, FakeBackend, InvalidName,
                          MxHost, NoData, NxDomain, Resolver, TempFail, canonical_name,
                          parse_nameserver, reverse_name)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ZONE = {
    "example.org": {"MX": [(20, "mx2.example.org"), (10, "mx1.example.org"),
                           (10, "mx1b.example.org")],
                    "TXT": [("v=spf1 ", "ip4:192.0.2.0/24 ", "-all"), "plain"],
                    "A": "192.0.2.10", "ttl": 60},
    "mx1.example.org": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
    "v4only.example.org": {"A": ["192.0.2.2"], "AAAA": TEMPFAIL},
    "null.example": {"MX": [(0, ".")]},
    "mixed.example": {"MX": [(0, "."), (10, "mx.mixed.example")]},
    "implicit.example": {"A": "192.0.2.3"},
    "gone.example": NXDOMAIN,
    "broken.example": TEMPFAIL,
    "_25._tcp.mx1.example.org": {"TLSA": [(3, 1, 1, "ab" * 32)], "secure": True},
    "10.2.0.192.in-addr.arpa": {"PTR": "host.example.org."},
    "bad8bit.example": {"TXT": [b"v=spf1 \xff -all"]},
}


def run(coro):
    return asyncio.run(coro)


def resolver(zone=ZONE, **kw) -> tuple[Resolver, FakeBackend]:
    backend = FakeBackend(zone)
    return Resolver(backend, kw.pop("cache", None), rng=random.Random(1)), backend


def test_mx_sorted_by_preference_and_equal_ones_shuffled():
    orders = set()
    for seed in range(20):
        r = Resolver(FakeBackend(ZONE), rng=random.Random(seed))
        mx = run(r.mx_hosts("Example.ORG."))
        assert [h.preference for h in mx.hosts] == [10, 10, 20]
        assert mx.hosts[2] == MxHost(20, "mx2.example.org")
        orders.add(tuple(h.host for h in mx.hosts[:2]))
        assert not mx.implicit and not mx.null
    assert orders == {("mx1.example.org", "mx1b.example.org"),
                      ("mx1b.example.org", "mx1.example.org")}


def test_null_mx_alone_means_no_mail_and_mixed_null_is_ignored():
    r, _ = resolver()
    null = run(r.mx_hosts("null.example"))
    assert null.null and null.hosts == ()
    mixed = run(r.mx_hosts("mixed.example"))
    assert not mixed.null and mixed.hosts == (MxHost(10, "mx.mixed.example"),)


def test_implicit_mx_when_no_mx_records_and_nxdomain_propagates():
    r, _ = resolver()
    mx = run(r.mx_hosts("implicit.example"))
    assert mx.implicit and mx.hosts == (MxHost(0, "implicit.example"),)
    with pytest.raises(NxDomain):
        run(r.mx_hosts("gone.example"))
    with pytest.raises(TempFail):
        run(r.mx_hosts("broken.example"))


def test_typed_records():
    r, _ = resolver()
    assert run(r.mx("example.org")).records[0] == MX(20, "mx2.example.org")
    txt = run(r.txt("example.org"))
    assert txt.records == ("v=spf1 ip4:192.0.2.0/24 -all", "plain")
    assert txt.ttl == 60
    tlsa = run(r.tlsa("_25._tcp.mx1.example.org"))
    assert tlsa.records == (TLSA(3, 1, 1, b"\xab" * 32),) and tlsa.secure
    assert run(r.ptr("192.0.2.10")).records == ("host.example.org",)
    # Undecodable bytes in a TXT record do not raise: the parser above sees U+FFFD.
    assert run(r.txt("bad8bit.example")).records == ("v=spf1 \ufffd -all",)


def test_error_kinds():
    r, _ = resolver()
    with pytest.raises(NoData) as nodata:
        run(r.aaaa("implicit.example"))
    assert nodata.value.permanent
    with pytest.raises(NxDomain):
        run(r.a("gone.example"))
    with pytest.raises(TempFail) as temp:
        run(r.a("broken.example"))
    assert not temp.value.permanent
    for bad in ("", "a..b", "x" * 64 + ".example", ".".join(["abcdefghi"] * 30)):
        with pytest.raises(InvalidName):
            run(r.a(bad))
    with pytest.raises(InvalidName):
        run(r.ptr("not-an-ip"))


def test_addresses_tolerate_one_family_failing():
    r, _ = resolver()
    both = run(r.addresses("mx1.example.org"))
    assert both.ipv4 == ("192.0.2.1",) and both.ipv6 == ("2001:db8::1",)
    v4 = run(r.addresses("v4only.example.org"))
    assert v4.ipv4 == ("192.0.2.2",) and v4.ipv6 == ()
    with pytest.raises(NxDomain):
        run(r.addresses("gone.example"))
    with pytest.raises(NoData):
        run(r.addresses("null.example"))
    with pytest.raises(TempFail):
        run(r.addresses("broken.example"))


def test_cache_respects_ttl_and_negative_ttl():
    clock = Clock()
    r, backend = resolver(cache=DnsCache(100, clock=clock))
    run(r.txt("example.org"))
    run(r.txt("EXAMPLE.org."))
    assert backend.queries[("example.org", "TXT")] == 1
    clock.now += 61                                      # ttl 60
    run(r.txt("example.org"))
    assert backend.queries[("example.org", "TXT")] == 2
    for _ in range(3):
        with pytest.raises(NxDomain):
            run(r.a("gone.example"))
    assert backend.queries[("gone.example", "A")] == 1  # negative answers are cached
    clock.now += 301
    with pytest.raises(NxDomain):
        run(r.a("gone.example"))
    assert backend.queries[("gone.example", "A")] == 2


def test_temporary_failures_are_not_cached():
    r, backend = resolver()
    for _ in range(3):
        with pytest.raises(TempFail):
            run(r.a("broken.example"))
    assert backend.queries[("broken.example", "A")] == 3
    backend.set("broken.example", {"A": "192.0.2.99"})
    assert run(r.a("broken.example")).records == ("192.0.2.99",)


def test_cache_is_bounded_lru_and_clamps_ttl():
    clock = Clock()
    cache = DnsCache(2, max_ttl=100, max_negative_ttl=10, clock=clock)
    zone = {f"h{i}.example": {"A": f"192.0.2.{i}", "ttl": 10_000} for i in range(3)}
    r, backend = resolver(zone, cache=cache)
    run(r.a("h0.example"))
    run(r.a("h1.example"))
    run(r.a("h0.example"))                      # h0 now most recently used
    run(r.a("h2.example"))                      # evicts h1
    assert len(cache) == 2
    run(r.a("h0.example"))
    assert backend.queries[("h0.example", "A")] == 1
    run(r.a("h1.example"))
    assert backend.queries[("h1.example", "A")] == 2
    clock.now += 101                            # max_ttl clamps the 10000s TTL
    run(r.a("h1.example"))
    assert backend.queries[("h1.example", "A")] == 3
    with pytest.raises(NxDomain):
        run(r.a("nope.example"))
    clock.now += 11                             # negative TTL 300 clamped to 10
    with pytest.raises(NxDomain):
        run(r.a("nope.example"))
    assert backend.queries[("nope.example", "A")] == 2


def test_concurrent_lookups_share_one_query():
    class Slow(FakeBackend):
        async def query(self, name, rdtype):
            await asyncio.sleep(0.01)
            return await super().query(name, rdtype)

    backend = Slow(ZONE)
    r = Resolver(backend)

    async def main():
        return await asyncio.gather(*(r.a("mx1.example.org") for _ in range(10)),
                                    *(r.a("gone.example") for _ in range(5)),
                                    return_exceptions=True)

    results = run(main())
    assert all(x.records == ("192.0.2.1",) for x in results[:10])
    assert all(isinstance(x, NxDomain) for x in results[10:])
    assert backend.queries[("mx1.example.org", "A")] == 1
    assert backend.queries[("gone.example", "A")] == 1


def test_names_and_nameserver_addresses():
    assert canonical_name("Bücher.Example.") == "xn--bcher-kva.example"
    assert reverse_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")
    assert parse_nameserver("127.0.0.1:27053") == ("127.0.0.1", 27053)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    assert parse_nameserver("9.9.9.9") == ("9.9.9.9", 53)
    for bad in ("example.com", "[::1", "1.2.3.4:0", "1.2.3.4:99999"):
        with pytest.raises(ValueError):
            parse_nameserver(bad)


def test_cname_chains_give_the_canonical_name_and_their_dnssec_status():
    zone = {"mx.dest.test": {"CNAME": "alias.provider.test", "secure": True},
            "alias.provider.test": {"CNAME": "smtp.provider.test.", "secure": True},
            "smtp.provider.test": {"A": "192.0.2.7", "secure": True},
            "weak.dest.test": {"CNAME": "smtp.provider.test"},          # unsigned link
            "dangling.dest.test": {"CNAME": "nowhere.test", "secure": True},
            "loop1.test": {"CNAME": "loop2.test"}, "loop2.test": {"CNAME": "loop1.test"}}
    resolver = Resolver(FakeBackend(zone))

    async def main():
        addrs = await resolver.addresses("mx.dest.test")
        assert addrs.ipv4 == ("192.0.2.7",) and addrs.secure
        assert addrs.host == "mx.dest.test" and addrs.canonical == "smtp.provider.test"
        answer = await resolver.a("mx.dest.test")
        assert answer.canonical == "smtp.provider.test" and answer.secure
        # A chain with one unvalidated link is not secure, whatever its end.
        weak = await resolver.addresses("weak.dest.test")
        assert weak.canonical == "smtp.provider.test" and not weak.secure
        # The target itself: no alias.
        assert (await resolver.addresses("smtp.provider.test")).canonical == ""
        with pytest.raises(NxDomain):
            await resolver.addresses("dangling.dest.test")
        with pytest.raises(TempFail, match="CNAME chain too long"):
            await resolver.a("loop1.test")
    asyncio.run(main())
