"""SPF beyond the RFC 7208 suite: the identities, the limits, %{p}, Received-SPF, and
hostile records, over ``stalwart.dns.FakeBackend``."""

from __future__ import annotations

import asyncio

from stalwart.dns import NXDOMAIN, TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth import spf


def run(coro):
    return asyncio.run(coro)


def resolver(zone: dict) -> Resolver:
    return Resolver(FakeBackend(zone))


def test_mail_from_pass_and_header():
    r = resolver({"example.org": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all", "other=text"]}})
    result = run(spf.check_mail_from("192.0.2.7", "alice@example.org", "mail.example.org", r))
    assert (result.result, result.mechanism, result.identity) == ("pass", "ip4:192.0.2.0/24",
                                                                  "mailfrom")
    header = result.received_spf("mx.example.net")
    assert header.splitlines()[0] == (
        "Received-SPF: pass (mx.example.net: domain of alice@example.org designates "
        "192.0.2.7 as permitted sender)")
    assert "\tclient-ip=192.0.2.7;" in header and "\tenvelope-from=alice@example.org;" in header
    assert "\thelo=mail.example.org;" in header and "\tidentity=mailfrom;" in header


def test_fail_carries_expanded_explanation():
    r = resolver({"example.org": {"TXT": "v=spf1 -all exp=why.example.org"},
                  "why.example.org": {"TXT": "%{i} may not send for %{d} (%{l})"}})
    result = run(spf.check_mail_from("192.0.2.9", "bob@example.org", "h.example", r))
    assert result.result == "fail"
    assert result.explanation == "192.0.2.9 may not send for example.org (bob)"


def test_null_sender_checks_helo_postmaster():
    r = resolver({"mail.example.org": {"TXT": "v=spf1 a -all", "A": "192.0.2.1"}})
    result = run(spf.check_mail_from("192.0.2.1", "", "mail.example.org", r))
    assert result.result == "pass" and result.sender == "postmaster@mail.example.org"
    helo = run(spf.check_helo("192.0.2.2", "mail.example.org", r))
    assert (helo.result, helo.identity) == ("fail", "helo")
    assert "identity=helo;" in helo.received_spf("mx")


def test_helo_literal_and_single_label_are_none():
    r = resolver({})
    assert run(spf.check_helo("192.0.2.1", "[192.0.2.1]", r)).result == "none"
    assert run(spf.check_helo("192.0.2.1", "localhost", r)).result == "none"


def test_ten_dns_mechanisms_limit():
    zone = {"example.org": {"TXT": "v=spf1 " + " ".join(f"a:h{i}.example.org"
                                                        for i in range(11)) + " -all"}}
    for i in range(11):
        zone[f"h{i}.example.org"] = {"A": "198.51.100.1"}
    result = run(spf.check_mail_from("192.0.2.1", "a@example.org", "x.example", resolver(zone)))
    assert result.result == "permerror" and "10" in result.reason
    # Exactly ten is allowed.
    zone["example.org"]["TXT"] = "v=spf1 " + " ".join(f"a:h{i}.example.org"
                                                      for i in range(10)) + " -all"
    result = run(spf.check_mail_from("192.0.2.1", "a@example.org", "x.example", resolver(zone)))
    assert result.result == "fail"


def test_void_lookup_limit():
    zone = {"example.org": {"TXT": "v=spf1 a:n1.example.org a:n2.example.org "
                                   "a:n3.example.org -all"}}
    result = run(spf.check_mail_from("192.0.2.1", "a@example.org", "x.example", resolver(zone)))
    assert result.result == "permerror" and "void" in result.reason
    zone["example.org"]["TXT"] = "v=spf1 a:n1.example.org a:n2.example.org -all"
    result = run(spf.check_mail_from("192.0.2.1", "a@example.org", "x.example", resolver(zone)))
    assert result.result == "fail"


def test_include_loop_ends_in_permerror():
    zone = {"a.example": {"TXT": "v=spf1 include:b.example -all"},
            "b.example": {"TXT": "v=spf1 include:a.example -all"}}
    result = run(spf.check_mail_from("192.0.2.1", "x@a.example", "h.example", resolver(zone)))
    assert result.result == "permerror"


def test_temperror_on_dns_timeout():
    r = resolver({"example.org": TEMPFAIL})
    result = run(spf.check_mail_from("192.0.2.1", "x@example.org", "h.example", r))
    assert result.result == "temperror"
    assert "problem=" in result.received_spf("mx")
    r = resolver({"example.org": {"TXT": "v=spf1 include:t.example -all"}, "t.example": TEMPFAIL})
    assert run(spf.check_mail_from("192.0.2.1", "x@example.org", "h", r)).result == "temperror"


def test_p_macro_is_safe_and_bounded():
    # 12 PTR names, none of them resolving back: %{p} is "unknown"; only 10 are tried.
    ptrs = [f"n{i}.example.net" for i in range(12)]
    zone = {"1.2.0.192.in-addr.arpa": {"PTR": ptrs},
            "example.org": {"TXT": "v=spf1 exists:%{p}.allow.example.org -all"},
            "unknown.allow.example.org": {"A": "127.0.0.2"}}
    backend = FakeBackend(zone)
    result = run(spf.check_mail_from("192.0.2.1", "x@example.org", "h.example",
                                     Resolver(backend)))
    assert result.result == "pass"      # "unknown" was the validated name
    asked = [name for (name, rtype) in backend.queries if rtype == "A" and name in ptrs]
    assert len(asked) == 10
    # A validated name is used.
    zone["n3.example.net"] = {"A": "192.0.2.1"}
    zone["n3.example.net.allow.example.org"] = {"A": "127.0.0.2"}
    zone.pop("unknown.allow.example.org")
    result = run(spf.check_mail_from("192.0.2.1", "x@example.org", "h.example", resolver(zone)))
    assert result.result == "pass"


def test_hostile_records_are_permerror():
    cases = [
        "v=spf1 ip4:192.0.2.1/33 -all",          # CIDR out of range
        "v=spf1 a:example.org/024 -all",          # leading zero in CIDR
        "v=spf1 foo -all",                        # unknown mechanism
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 exists:%{z}.example.org",         # unknown macro letter
        "v=spf1 a:%{d0}.example.org",             # zero transformer
        "v=spf1 -all\u00e9",                      # non-ASCII
        "v=spf1 include:",                        # empty domain-spec
        "v=spf1 a:foo.123 -all",                  # numeric top label
    ]
    for text in cases:
        r = resolver({"example.org": {"TXT": text}})
        result = run(spf.check_mail_from("192.0.2.1", "x@example.org", "h.example", r))
        assert result.result == "permerror", (text, result)


def test_oversized_record_and_two_records():
    big = "v=spf1 " + " ".join(f"ip4:10.0.{i // 250}.{i % 250}" for i in range(2000)) + " -all"
    r = resolver({"example.org": {"TXT": big}})
    assert run(spf.check_mail_from("10.0.1.3", "x@example.org", "h", r)).result == "pass"
    r = resolver({"example.org": {"TXT": ["v=spf1 -all", "v=spf1 +all"]}})
    assert run(spf.check_mail_from("10.0.1.3", "x@example.org", "h", r)).result == "permerror"


def test_mx_ptr_and_ipv6():
    zone = {"example.org": {"TXT": "v=spf1 mx/24//64 ptr -all",
                            "MX": [(10, "mx.example.org")]},
            "mx.example.org": {"A": "198.51.100.10", "AAAA": "2001:db8::10"},
            "5.1.0.203.in-addr.arpa": {"PTR": "host.example.org"},
            "host.example.org": {"A": "203.0.1.5"}}
    r = resolver(zone)
    assert run(spf.check_mail_from("198.51.100.99", "x@example.org", "h", r)).result == "pass"
    assert run(spf.check_mail_from("2001:db8::ffff", "x@example.org", "h", r)).result == "pass"
    assert run(spf.check_mail_from("2001:db8:1::1", "x@example.org", "h", r)).result == "fail"
    assert run(spf.check_mail_from("203.0.1.5", "x@example.org", "h", r)).result == "pass"
    # An IPv4-mapped IPv6 client is checked as IPv4.
    assert run(spf.check_mail_from("::ffff:198.51.100.7", "x@example.org", "h",
                                   r)).result == "pass"


def test_no_record_and_bad_ip():
    r = resolver({"example.org": {"TXT": "not spf"}, "gone.example": NXDOMAIN})
    assert run(spf.check_mail_from("192.0.2.1", "x@example.org", "h", r)).result == "none"
    assert run(spf.check_mail_from("192.0.2.1", "x@gone.example", "h", r)).result == "none"
    assert run(spf.check_mail_from("not-an-ip", "x@example.org", "h", r)).result == "permerror"


def test_whole_check_times_out_as_temperror():
    class SlowBackend(FakeBackend):
        async def query(self, name, rdtype):
            if name == "slow.example":
                await asyncio.sleep(5)
            return await super().query(name, rdtype)

    zone = {"example.org": {"TXT": "v=spf1 include:slow.example -all"},
            "slow.example": {"TXT": "v=spf1 +all"}}
    result = run(spf.check_host("192.0.2.1", "example.org", "a@example.org", "h",
                                Resolver(SlowBackend(zone)), timeout=0.2))
    assert result.result == "temperror" and "longer than" in result.reason


def test_random_records_never_crash():
    import random

    rng = random.Random(7208)
    pieces = ["v=spf1", "a", "mx", "ptr", "all", "-all", "~all", "?all", "+", "include:",
              "exists:", "ip4:", "ip6:", "redirect=", "exp=", "%{", "}", "%%", "%_", "%-",
              "d", "i", "s", "l", "o", "h", "p", "v", "r", "1", "0", "/", "//", ".", ":", "=",
              "example.org", "x.example", "192.0.2.1", "::1", "24", "128", " ", " ", "\t",
              "\u00e9", "\x00", "a" * 70]
    for _ in range(400):
        text = "v=spf1 " + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        zone = {"example.org": {"TXT": text, "A": "192.0.2.1", "MX": [(0, "x.example")]},
                "x.example": {"TXT": text, "A": "192.0.2.2"}}
        for ip in ("192.0.2.1", "2001:db8::1"):
            result = run(spf.check_mail_from(ip, "a@example.org", "x.example",
                                             resolver(zone)))
            assert result.result in spf.RESULTS, text
            result.received_spf("mx")                  # renders whatever the result
