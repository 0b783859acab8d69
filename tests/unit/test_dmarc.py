"""DMARC (RFC 7489): records, organisational domains, alignment, policies, pct."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from stalwart.dns import TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth import dmarc


@dataclass
class Spf:
    result: str
    domain: str


@dataclass
class Dkim:
    result: str
    domain: str
    selector: str = "s1"


def run(coro):
    return asyncio.run(coro)


def check(zone, from_domain, spf=None, dkim=(), rng=None):
    return run(dmarc.check(from_domain, spf, list(dkim), Resolver(FakeBackend(zone)), rng=rng))


REJECT = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=reject; rua=mailto:agg@example.org"}}


def test_pass_by_spf_and_by_dkim():
    r = check(REJECT, "example.org", Spf("pass", "example.org"))
    assert (r.result, r.spf_aligned, r.dkim_aligned, r.disposition) == ("pass", True, False,
                                                                        "none")
    r = check(REJECT, "example.org", Spf("fail", "example.org"), [Dkim("pass", "example.org")])
    assert (r.result, r.spf_aligned, r.dkim_aligned) == ("pass", False, True)
    assert r.record.rua == ("mailto:agg@example.org",)


def test_fail_applies_policy():
    for policy in ("none", "quarantine", "reject"):
        zone = {"_dmarc.example.org": {"TXT": f"v=DMARC1; p={policy}"}}
        r = check(zone, "example.org", Spf("fail", "example.org"),
                  [Dkim("fail", "example.org")])
        assert (r.result, r.policy, r.disposition) == ("fail", policy, policy)


def test_passing_unaligned_identifiers_fail():
    r = check(REJECT, "example.org", Spf("pass", "other.example"),
              [Dkim("pass", "mailer.example")])
    assert (r.result, r.disposition) == ("fail", "reject")


def test_relaxed_and_strict_alignment():
    relaxed = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=reject"}}
    strict = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=reject; aspf=s; adkim=s"}}
    spf = Spf("pass", "bounces.example.org")
    dkim = [Dkim("pass", "mail.example.org")]
    assert check(relaxed, "example.org", spf).result == "pass"
    assert check(relaxed, "example.org", None, dkim).result == "pass"
    assert check(strict, "example.org", spf).result == "fail"
    assert check(strict, "example.org", None, dkim).result == "fail"
    assert check(strict, "example.org", Spf("pass", "EXAMPLE.org.")).result == "pass"


def test_organizational_domain():
    assert dmarc.organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert dmarc.organizational_domain("mail.example.com") == "example.com"
    assert dmarc.organizational_domain("example.com") == "example.com"
    assert dmarc.organizational_domain("co.uk") == "co.uk"
    # Private suffixes count: two github.io sites are two organisations.
    assert dmarc.organizational_domain("x.alice.github.io") == "alice.github.io"
    assert not dmarc.aligned("alice.github.io", "bob.github.io", "r")
    assert dmarc.aligned("a.example.co.uk", "b.example.co.uk", "r")
    assert not dmarc.aligned("example.co.uk", "other.co.uk", "r")


def test_subdomain_policy_from_org_record():
    zone = {"_dmarc.example.co.uk": {"TXT": "v=DMARC1; p=reject; sp=quarantine"}}
    r = check(zone, "news.example.co.uk", Spf("fail", "news.example.co.uk"))
    assert (r.record_domain, r.policy, r.disposition) == ("example.co.uk", "quarantine",
                                                          "quarantine")
    r = check(zone, "example.co.uk", Spf("fail", "example.co.uk"))
    assert r.policy == "reject"
    # Without sp= the subdomain gets p=.
    zone = {"_dmarc.example.co.uk": {"TXT": "v=DMARC1; p=reject"}}
    assert check(zone, "news.example.co.uk").policy == "reject"
    # A record at the subdomain itself wins over the organisational one.
    zone["_dmarc.news.example.co.uk"] = {"TXT": "v=DMARC1; p=none"}
    r = check(zone, "news.example.co.uk")
    assert (r.record_domain, r.policy) == ("news.example.co.uk", "none")


def test_pct_samples_and_downgrades():
    zone = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=reject; pct=30"}}
    rng = random.Random(7)
    outcomes = [check(zone, "example.org", rng=rng) for _ in range(400)]
    rejected = sum(1 for r in outcomes if r.disposition == "reject")
    downgraded = [r for r in outcomes if r.disposition != "reject"]
    assert all(r.disposition == "quarantine" and r.sampled_out for r in downgraded)
    assert 80 < rejected < 160          # 30% of 400 = 120
    zone = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=quarantine; pct=0"}}
    r = check(zone, "example.org")
    assert (r.policy, r.disposition) == ("quarantine", "none")


def test_no_record_temp_failure_and_two_records():
    assert check({}, "example.org").result == "none"
    assert check({"_dmarc.example.org": TEMPFAIL}, "example.org").result == "temperror"
    two = {"_dmarc.example.org": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]}}
    assert check(two, "example.org").result == "none"
    other = {"_dmarc.example.org": {"TXT": ["google-site-verification=x"]}}
    assert check(other, "example.org").result == "none"


@pytest.mark.parametrize("text,error", [
    ("v=DMARC1", "no p="),
    ("v=DMARC1; p=block", "invalid policy"),
    ("v=DMARC1; p=reject; =x", "malformed tag"),
    ("v=DMARC1; p=reject; junk", "malformed tag"),
    ("v=DMARC1; p=r\u00e9ject", "non-ASCII"),
    ("p=reject; v=DMARC1", "v=DMARC1"),
])
def test_malformed_records(text, error):
    with pytest.raises(dmarc.DmarcError, match=error):
        dmarc.parse_record(text)


def test_malformed_record_is_permerror_and_lenient_tags():
    zone = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=bogus"}}
    r = check(zone, "example.org")
    assert (r.result, r.disposition) == ("permerror", "none")
    rec = dmarc.parse_record("v=DMARC1 ; p = Quarantine ; sp=bad; adkim=x; aspf=s; pct=500;"
                             " rua=mailto:a@x.example!10m, https://nope, mailto:b@y.example;"
                             " future=1")
    assert (rec.p, rec.sp, rec.adkim, rec.aspf, rec.pct) == ("quarantine", None, "r", "s", 100)
    assert rec.rua == ("mailto:a@x.example", "mailto:b@y.example")
    # A bad p= with a valid rua= is kept as p=none (RFC 7489 6.6.3).
    assert dmarc.parse_record("v=DMARC1; p=nah; rua=mailto:r@example.org").p == "none"


def test_header_from():
    assert dmarc.header_from(["Alice <alice@Example.ORG>"]).domain == "example.org"
    assert dmarc.header_from([]).problem
    two = dmarc.header_from(["a@x.example", "b@y.example"])
    assert two.problem and not two.domain and two.all_domains == ["x.example", "y.example"]
    several = dmarc.header_from(["a@x.example, b@y.example, c@x.example"])
    assert several.problem and several.all_domains == ["x.example", "y.example"]
    assert dmarc.header_from(["a@x.example, b@x.example"]).domain == "x.example"
    assert dmarc.header_from(["undisclosed"]).problem
    # An internationalised From domain is compared as A-labels.
    assert dmarc.header_from(["Jörg <jörg@bücher.example>"]).domain == "xn--bcher-kva.example"
    r = check(REJECT, "")
    assert r.result == "permerror"


def test_check_all_keeps_the_strictest():
    zone = {"_dmarc.a.example": {"TXT": "v=DMARC1; p=none"},
            "_dmarc.b.example": {"TXT": "v=DMARC1; p=reject"},
            "_dmarc.c.example": {"TXT": "v=DMARC1; p=quarantine"}}
    r = run(dmarc.check_all(["a.example", "b.example", "c.example"], None, [],
                            Resolver(FakeBackend(zone))))
    assert (r.header_from, r.disposition) == ("b.example", "reject")
    # Passing for one domain and having no record for another is not a pass.
    r = run(dmarc.check_all(["a.example", "nothing.example"], Spf("pass", "a.example"), [],
                            Resolver(FakeBackend(zone))))
    assert r.result == "none"


def test_random_records_never_crash():
    rng = random.Random(7489)
    pieces = ["v=DMARC1", ";", " ", "p=", "sp=", "pct=", "rua=", "mailto:", "a@b.example",
              "reject", "quarantine", "none", "adkim=", "aspf=", "s", "r", "=", ",", "!",
              "10m", "999", "-1", "\u00e9", "\t", "fo=", "ri=", "x"]
    for _ in range(1000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        try:
            rec = dmarc.parse_record(text)
        except dmarc.DmarcError:
            continue
        assert rec.p in dmarc.POLICIES and 0 <= rec.pct <= 100
        assert rec.adkim in ("r", "s") and rec.aspf in ("r", "s")
