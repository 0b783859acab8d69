"""MTA-STS (RFC 8461) without the network: the TXT record, the policy, MX patterns, the
policy we publish, the cache's rules (fetch once per id, keep the old policy when the
new one cannot be fetched, expire after max_age), the TLS-Required header and the
certificate checks of testing mode. The HTTPS fetch and the queue's enforcement are in
tests/integration/test_mtasts_queue.py."""

from __future__ import annotations

import asyncio
import datetime
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.dns import TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth import mtasts
from stalwart.mailauth.mtasts import (MtaSts, PolicyError, check_leaf_certificate,
                                      parse_policy, parse_txt_record, pattern_matches,
                                      policy_text, select_record, tls_required_no)

# ---------------------------------------------------------------------- TXT record
TXT_CASES = [
    ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
    ("v=STSv1;id=abc", "abc"),
    ("v=STSv1; id=abc; ext-1=val", "abc"),
    ("v=STSv1 ; id=A1b2", "A1b2"),
    ("v=STSv1; id=" + "a" * 32, "a" * 32),
    ("v=STSv1; id=" + "a" * 33, None),         # id longer than 32
    ("v=STSv1; id=ab-c", None),                # id: letters and digits only
    ("v=STSv1;", None),                        # no id
    ("v=STSv1; id=a; id=b", None),             # id twice
    ("id=abc; v=STSv1", None),                 # v not first
    ("v=STSv2; id=abc", None),
    ("v=STSv1; id=abc; junk", None),           # a field without "="
    ("v=STSv1; id=abc; bad name=x", None),
    ("v=STSv1; id=abc; v=STSv1", None),
    ("", None),
]


@pytest.mark.parametrize("text,ident", TXT_CASES)
def test_txt_record(text, ident):
    if ident is None:
        with pytest.raises(PolicyError):
            parse_txt_record(text)
    else:
        assert parse_txt_record(text).id == ident


def test_select_record_needs_exactly_one_stsv1_record():
    assert select_record(["v=spf1 -all", "v=STSv1; id=x1"]).id == "x1"
    with pytest.raises(PolicyError):
        select_record(["v=STSv1; id=a", "v=STSv1; id=b"])
    with pytest.raises(PolicyError):
        select_record(["v=spf1 -all"])


# ---------------------------------------------------------------------- policy
GOOD = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"

POLICY_CASES = [
    (GOOD, ("enforce", ("mail.example.com", "*.example.net"), 604800)),
    (GOOD.replace("\r\n", "\n"), ("enforce", ("mail.example.com", "*.example.net"), 604800)),
    ("version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 0", ("testing", ("mx.example.com",), 0)),
    ("version: STSv1\nmode: none\nmax_age: 86400\n", ("none", (), 86400)),
    ("version:STSv1\nmode:  enforce  \nmx:a.b\nmax_age:31557600\nfuture: x\n", ("enforce", ("a.b",), 31557600)),
    ("version: STSv1\nmode: enforce\nmode: none\nmx: a.b\nmax_age: 5\n", ("enforce", ("a.b",), 5)),
    ("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 5\n", None),            # version
    ("mode: enforce\nmx: a.b\nmax_age: 5\n", None),                            # no version
    ("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 5\n", None),             # mode
    ("version: STSv1\nmode: enforce\nmax_age: 5\n", None),                     # no mx
    ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", None),     # too long
    ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", None),
    ("version: STSv1\nmode: enforce\nmx: a.b\n", None),                        # no max_age
    ("version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 5\n", None),          # bad pattern
    ("version: STSv1\nmode: enforce\nmx: -a.b\nmax_age: 5\n", None),
    ("version: STSv1\nmode enforce\nmx: a.b\nmax_age: 5\n", None),             # no colon
    ("<html>not a policy</html>", None),
    (b"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 5\n\xff", None),       # not UTF-8
]


@pytest.mark.parametrize("text,expected", POLICY_CASES)
def test_policy(text, expected):
    if expected is None:
        with pytest.raises(PolicyError):
            parse_policy(text)
        return
    policy = parse_policy(text)
    assert (policy.mode, policy.mx, policy.max_age) == expected


def test_policy_over_64k_is_refused():
    text = GOOD + "x-pad: " + "a" * (64 * 1024) + "\n"
    with pytest.raises(PolicyError, match="64 KiB"):
        parse_policy(text)


PATTERNS = [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.example.com.", True),
    ("mail.example.com", "mx.example.com", False),
    ("*.example.com", "mx1.example.com", True),
    ("*.example.com", "example.com", False),               # the wildcard needs a label
    ("*.example.com", "a.b.example.com", False),           # and only one (RFC 8461 4.1)
    ("*.example.com", "mx1.example.org", False),
    ("*.example.com", ".example.com", False),
]


@pytest.mark.parametrize("pattern,host,ok", PATTERNS)
def test_mx_patterns(pattern, host, ok):
    assert pattern_matches(pattern, host) is ok


def test_policy_matches_any_pattern():
    policy = parse_policy(GOOD)
    assert policy.matches("mail.example.com") and policy.matches("mx2.example.net")
    assert not policy.matches("evil.example.org")
    assert policy.lines == ["version: STSv1", "mode: enforce", "mx: mail.example.com",
                            "mx: *.example.net", "max_age: 604800"]


# ---------------------------------------------------------------------- our policy
def test_policy_text_round_trips():
    text = policy_text("enforce", ["mx1.example.org", "*.mx.example.org"], 86400)
    assert text == ("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\n"
                    "mx: *.mx.example.org\r\nmax_age: 86400\r\n")
    policy = parse_policy(text)
    assert policy.mode == "enforce" and policy.mx == ("mx1.example.org", "*.mx.example.org")
    with pytest.raises(ValueError):
        policy_text("enforce", [], 86400)
    with pytest.raises(ValueError):
        policy_text("enforce", ["bad host"], 86400)
    with pytest.raises(ValueError):
        policy_text("sometimes", ["a.b"], 86400)
    with pytest.raises(ValueError):
        policy_text("testing", ["a.b"], mtasts.MAX_AGE_LIMIT + 1)
    assert mtasts.txt_record(mtasts.policy_id(text)).startswith("v=STSv1; id=")
    assert parse_txt_record(mtasts.txt_record(mtasts.policy_id(text))).id == mtasts.policy_id(text)


def test_policy_from_config(tmp_path):
    from stalwart.config import ConfigError, load

    path = tmp_path / "config.toml"
    path.write_text('[server]\nhostname = "mail.example.org"\n'
                    '[storage]\ndirectory = "%s"\n' % tmp_path)
    text = mtasts.policy_from_config(load(path))
    assert text == "version: STSv1\r\nmode: testing\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"
    path.write_text('[server]\nhostname = "mail.example.org"\n'
                    '[storage]\ndirectory = "%s"\n'
                    '[auth.mta-sts]\nmode = "enforce"\nmx = ["mx1.example.org", "*.example.net"]\n'
                    'max-age = "1d"\n' % tmp_path)
    assert parse_policy(mtasts.policy_from_config(load(path))).mx == (
        "mx1.example.org", "*.example.net")
    path.write_text('[storage]\ndirectory = "%s"\n[auth.mta-sts]\nmx = ["not a host"]\n' % tmp_path)
    with pytest.raises(ConfigError, match="auth.mta-sts.mx"):
        load(path)
    path.write_text('[storage]\ndirectory = "%s"\n[auth.mta-sts]\nmax-age = "400d"\n' % tmp_path)
    with pytest.raises(ConfigError, match="max-age"):
        load(path)


# ---------------------------------------------------------------------- TLS-Required
@pytest.mark.parametrize("message,expected", [
    (b"From: a@b\r\nTLS-Required: No\r\n\r\nbody", True),
    (b"From: a@b\r\ntls-required:no\r\n\r\nbody", True),
    (b"From: a@b\nTLS-Required: No\n\nbody", True),
    (b"From: a@b\r\nTLS-Required: Yes\r\n\r\nbody", False),
    (b"From: a@b\r\n\r\nTLS-Required: No\r\n", False),          # in the body
    (b"From: a@b\r\nX-TLS-Required: No\r\n\r\n", False),
])
def test_tls_required_no(message, expected):
    assert tls_required_no(message) is expected


# ---------------------------------------------------------------------- certificates
def _cert(name: str, days: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    begin, end = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)) \
        if days > 0 else (now - datetime.timedelta(days=10), now + datetime.timedelta(days=days))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(begin).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_leaf_certificate_checks():
    assert check_leaf_certificate(_cert("mx.example.org", 30), "mx.example.org") is None
    assert check_leaf_certificate(_cert("*.example.org", 30), "mx.example.org") is None
    assert check_leaf_certificate(_cert("mx.example.org", 30), "other.example.org")[0] == \
        "certificate-host-mismatch"
    assert check_leaf_certificate(_cert("mx.example.org", -1), "mx.example.org")[0] == \
        "certificate-expired"
    assert check_leaf_certificate(None, "mx.example.org")[0] == "validation-failure"
    assert check_leaf_certificate(b"garbage", "mx.example.org")[0] == "validation-failure"


# ---------------------------------------------------------------------- the cache
class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeFetch:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.result: object = parse_policy(GOOD)

    async def __call__(self, domain, resolver, **kwargs):
        self.calls.append(domain)
        await asyncio.sleep(0)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _cache(zone):
    backend = FakeBackend(zone)
    clock, fetch = Clock(), FakeFetch()
    resolver = Resolver(backend)
    sts = MtaSts(resolver, clock=clock, fetch=fetch, retry_after=300)
    return sts, backend, resolver, clock, fetch


def _txt(ident):
    return {"TXT": [f"v=STSv1; id={ident}"], "ttl": 0}


def test_cache_fetches_once_per_id_and_again_when_the_id_changes():
    async def main():
        sts, backend, resolver, clock, fetch = _cache({"_mta-sts.example.com": _txt("one")})
        first = await sts.lookup("Example.COM")
        assert first.enforced and first.policy.mode == "enforce" and not first.cached
        second, third = await asyncio.gather(sts.lookup("example.com"),
                                              sts.lookup("example.com"))
        assert second.cached and third.policy == first.policy
        assert fetch.calls == ["example.com"]
        resolver.cache.clear()
        backend.set("_mta-sts.example.com", _txt("two"))
        fetch.result = parse_policy(GOOD.replace("enforce", "testing"))
        fourth = await sts.lookup("example.com")
        assert fetch.calls == ["example.com", "example.com"]
        assert fourth.policy.mode == "testing" and fourth.policy_id == "two"
    asyncio.run(main())


def test_failed_fetch_keeps_the_cached_policy_and_waits_before_retrying():
    async def main():
        sts, backend, resolver, clock, fetch = _cache({"_mta-sts.example.com": _txt("one")})
        assert (await sts.lookup("example.com")).enforced
        resolver.cache.clear()
        backend.set("_mta-sts.example.com", _txt("two"))
        fetch.result = PolicyError("connection refused", "sts-policy-fetch-error")
        found = await sts.lookup("example.com")
        assert found.enforced and found.policy_id == "one"     # the old policy holds
        assert found.error[0] == "sts-policy-fetch-error"
        await sts.lookup("example.com")
        assert len(fetch.calls) == 2                             # not retried at once
        clock.now += 301
        await sts.lookup("example.com")
        assert len(fetch.calls) == 3                             # retried after 5 minutes
    asyncio.run(main())


def test_policy_survives_a_missing_txt_record_until_max_age():
    async def main():
        sts, backend, resolver, clock, fetch = _cache({"_mta-sts.example.com": _txt("one")})
        assert (await sts.lookup("example.com")).enforced
        resolver.cache.clear()
        backend.set("_mta-sts.example.com", TEMPFAIL)
        assert (await sts.lookup("example.com")).enforced        # DNS trouble: cached
        resolver.cache.clear()
        backend.zone.pop("_mta-sts.example.com")
        assert (await sts.lookup("example.com")).enforced        # record gone: cached
        clock.now += 604800
        resolver.cache.clear()
        gone = await sts.lookup("example.com")
        assert gone.policy is None and gone.error is None        # expired: no policy
    asyncio.run(main())


def test_no_record_bad_record_and_bad_policy():
    async def main():
        zone = {"_mta-sts.two.test": {"TXT": ["v=STSv1; id=a", "v=STSv1; id=b"]},
                "_mta-sts.bad.test": {"TXT": ["v=STSv1; id=!!"]},
                "_mta-sts.broken.test": _txt("x")}
        sts, backend, resolver, clock, fetch = _cache(zone)
        assert (await sts.lookup("none.test")).policy is None
        assert (await sts.lookup("two.test")).policy is None
        bad = await sts.lookup("bad.test")
        assert bad.policy is None and bad.error[0] == "sts-policy-invalid"
        fetch.result = PolicyError("bad mode 'x'")
        broken = await sts.lookup("broken.test")
        assert broken.policy is None and broken.error == ("sts-policy-invalid", "bad mode 'x'")
        assert fetch.calls == ["broken.test"]
    asyncio.run(main())


def test_cache_is_bounded():
    async def main():
        zone = {f"_mta-sts.d{i}.test": _txt("a") for i in range(20)}
        sts, backend, resolver, clock, fetch = _cache(zone)
        sts.max_entries = 5
        for i in range(20):
            await sts.lookup(f"d{i}.test")
        assert len(sts._cache) <= 5
    asyncio.run(main())


def test_random_garbage_never_crashes_the_parsers():
    rng = random.Random(8461)
    alphabet = "version: STSv1\nmode:enforce testing none mx *.a.b max_age 0123456789;=v\r\t"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        for fn in (parse_policy, parse_txt_record):
            try:
                fn(text)
            except PolicyError:
                pass


def test_an_unexpected_fetch_error_is_a_fetch_error_not_a_crash():
    async def main():
        sts, backend, resolver, clock, fetch = _cache({"_mta-sts.example.com": _txt("one")})
        fetch.result = RuntimeError("boom")
        found = await sts.lookup("example.com")
        assert found.policy is None and found.error[0] == "sts-policy-fetch-error"
    asyncio.run(main())


def test_waiters_survive_the_cancellation_of_the_caller_doing_the_lookup():
    async def main():
        sts, backend, resolver, clock, fetch = _cache({"_mta-sts.example.com": _txt("one")})
        gate = asyncio.Event()
        inner = fetch.__call__

        async def slow(domain, resolver, **kw):
            await gate.wait()
            return await inner(domain, resolver, **kw)
        sts._fetch = slow
        owner = asyncio.create_task(sts.lookup("example.com"))
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(sts.lookup("example.com"))
        await asyncio.sleep(0.01)
        owner.cancel()
        await asyncio.sleep(0.01)
        gate.set()
        found = await waiter
        assert found.enforced and owner.cancelled()
    asyncio.run(main())


# ---------------------------------------------------------------------- the HTTP route
def test_well_known_route_hostile_hosts_and_store_down(tmp_path):
    """The route as the http pool mounts it, over a memory store: our domain gets the
    policy; other, malformed and hostile Host values get 404; a store that cannot be
    opened gives 503 and is retried on the next request."""
    from stalwart.config import load
    from stalwart.http.message import HTTPError, Peer, Request
    from stalwart.http.router import Router
    from stalwart.http.server import StoreHandle
    from stalwart.http.wellknown import add_routes
    from stalwart.store.api import Store
    from stalwart.store.errors import StoreError

    path = tmp_path / "config.toml"
    path.write_text('[server]\nhostname = "mx.example.org"\n[storage]\ndirectory = "%s"\n'
                    % tmp_path)
    config = load(path)

    async def main():
        store = Store.memory()
        await store.create_domain("example.org")
        attempts = []

        async def opener():
            attempts.append(1)
            if len(attempts) == 1:
                raise StoreError("unavailable", "store process not running")
            return store
        router = Router()
        add_routes(router, config, StoreHandle(opener))

        async def get(host):
            headers = [("host", host)] if host is not None else []
            request = Request("GET", "/.well-known/mta-sts.txt", headers, b"",
                              Peer(("127.0.0.1", 1)))
            try:
                response = await router.dispatch(request)
            except HTTPError as exc:
                return exc.status, b""
            return response.status, response.body

        assert (await get("mta-sts.example.org"))[0] == 503
        status, body = await get("mta-sts.example.org")
        assert status == 200 and body == (b"version: STSv1\r\nmode: testing\r\n"
                                          b"mx: mx.example.org\r\nmax_age: 604800\r\n")
        for host in (None, "", "mta-sts.", "mta-sts.other.org", "example.org",
                     "mta-sts.example.org.evil", "mta-sts.exa mple.org", "mta-sts.\u00e9x.org",
                     "mta-sts." + "a" * 300 + ".org", "[::1]:80", "mta-sts.example.org\x00",
                     "mta-sts..example.org"):
            assert (await get(host))[0] == 404, host
        await store.close()
    asyncio.run(main())
