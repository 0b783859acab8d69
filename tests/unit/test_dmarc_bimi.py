"""BIMI after DMARC: requirements, record discovery, BIMI-Location, forged fields removed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from stalwart.dns import TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth import authres, bimi, dmarc
from stalwart.mailauth.inbound import InboundAuth, InboundSettings

LOGO = "https://brand.example/logo.svg"


@dataclass
class Spf:
    result: str
    domain: str


def run(coro):
    return asyncio.run(coro)


def dmarc_pass(zone, domain="example.org"):
    return run(dmarc.check(domain, Spf("pass", domain), [], Resolver(FakeBackend(zone))))


def lookup(zone, domain="example.org"):
    return run(bimi.lookup(dmarc_pass(zone, domain), Resolver(FakeBackend(zone))))


def test_pass_and_location_header():
    zone = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=reject"},
            "default._bimi.example.org": {"TXT": f"v=BIMI1; l={LOGO}; a="}}
    result = lookup(zone)
    assert (result.result, result.domain, result.record.location) == ("pass", "example.org",
                                                                      LOGO)
    assert result.location_header() == f"BIMI-Location: v=BIMI1;\r\n\tl={LOGO}"
    ar = authres.authentication_results("mx", bimi=result)
    assert ar.endswith(f"bimi=pass header.d=example.org header.selector=default "
                       f"policy.authority=none policy.indicator-uri=\"{LOGO}\"")


@pytest.mark.parametrize("record", [
    "v=DMARC1; p=none",
    "v=DMARC1; p=quarantine; pct=50",
    "v=DMARC1; p=reject; sp=none",
])
def test_requirements_skip(record):
    zone = {"_dmarc.example.org": {"TXT": record},
            "default._bimi.example.org": {"TXT": f"v=BIMI1; l={LOGO}"}}
    result = lookup(zone)
    assert result.result == "skipped" and result.location_header() is None


def test_dmarc_failure_skips():
    zone = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=reject"},
            "default._bimi.example.org": {"TXT": f"v=BIMI1; l={LOGO}"}}
    failed = run(dmarc.check("example.org", Spf("fail", "example.org"), [],
                             Resolver(FakeBackend(zone))))
    assert run(bimi.lookup(failed, Resolver(FakeBackend(zone)))).reason == \
        "message failed DMARC"


def test_org_domain_fallback_declined_and_errors():
    zone = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=quarantine"},
            "default._bimi.example.org": {"TXT": f"v=BIMI1; l={LOGO}"}}
    result = lookup(zone, "news.example.org")
    assert (result.result, result.domain) == ("pass", "example.org")
    zone["default._bimi.example.org"] = {"TXT": "v=BIMI1; l=; a="}
    assert lookup(zone).result == "declined"
    zone["default._bimi.example.org"] = {"TXT": "v=BIMI1; l=http://insecure.example/x.svg"}
    assert lookup(zone).result == "fail"
    zone["default._bimi.example.org"] = {"TXT": ["v=BIMI1; l=" + LOGO, "v=BIMI1; l=" + LOGO]}
    assert lookup(zone).result == "fail"
    zone["default._bimi.example.org"] = {"TXT": "v=BIMI2; l=" + LOGO}
    assert lookup(zone).result == "none"
    zone["default._bimi.example.org"] = TEMPFAIL
    assert lookup(zone).result == "temperror"


@pytest.mark.parametrize("text", ["l=" + LOGO, "v=BIMI1; l=" + LOGO + "; l=" + LOGO,
                                  "v=BIMI1; a=" + LOGO, "v=BIMI1; l=a,b",
                                  "v=BIMI1; l=https://x.example/\u00e9"])
def test_malformed_records(text):
    with pytest.raises(bimi.BimiError):
        bimi.parse_record(text)


def test_pipeline_adds_location_and_strips_forged_fields():
    zone = {"example.org": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
            "_dmarc.example.org": {"TXT": "v=DMARC1; p=reject"},
            "default._bimi.example.org": {"TXT": f"v=BIMI1; l={LOGO}"}}

    async def no_dkim(message, resolver):
        return []

    auth = InboundAuth(InboundSettings(hostname="mx.example.net"),
                       Resolver(FakeBackend(zone)), dkim_verify=no_dkim)
    message = (b"BIMI-Location: v=BIMI1; l=https://evil.example/fake.svg\r\n"
               b"BIMI-Indicator: PHN2Zz4=\r\n"
               b"From: a@example.org\r\n\r\nhi\r\n")
    verdict = run(auth.check("192.0.2.1", "mail.example.org", "a@example.org", message))
    assert authres.field_values(verdict.message, "bimi-location") == [f" v=BIMI1;\tl={LOGO}"]
    assert authres.field_values(verdict.message, "bimi-indicator") == []
    # Disabled: no lookup, no field, and the forged ones still go.
    auth = InboundAuth(InboundSettings(hostname="mx.example.net", bimi=False),
                       Resolver(FakeBackend(zone)), dkim_verify=no_dkim)
    verdict = run(auth.check("192.0.2.1", "mail.example.org", "a@example.org", message))
    assert authres.field_values(verdict.message, "bimi-location") == []
    assert b"bimi=" not in verdict.message


# ---------------------------------------------------------------------- the indicator
GOOD_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" '
            b'viewBox="0 0 10 10"><title>Brand</title><rect width="10" height="10" '
            b'fill="#c00"/></svg>')


@pytest.mark.parametrize("svg,problem", [
    (GOOD_SVG.replace(b"tiny-ps", b"tiny"), "tiny-ps"),
    (GOOD_SVG.replace(b"<title>Brand</title>", b""), "no title"),
    (GOOD_SVG.replace(b"<rect", b"<script>alert(1)</script><rect"), "'script'"),
    (GOOD_SVG.replace(b"<rect", b'<image href="https://x.test/a.png"/><rect'), "'image'"),
    (GOOD_SVG.replace(b'fill="#c00"', b'fill="url(https://x.test/p)"'), "external"),
    (GOOD_SVG.replace(b'fill="#c00"', b'onclick="x()"'), "event attribute"),
    (GOOD_SVG.replace(b'version="1.2"', b'version="1.2" x="1"'), "x= and y="),
    (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "b">]>' + GOOD_SVG, "DTD"),
    (GOOD_SVG.replace(b"</svg>", b"<desc>" + b"x" * 40000 + b"</desc></svg>"), "larger"),
    (b"<html/>", "not an SVG"),
    (b"\x1f\x8bnot gzip", "SVGZ"),
])
def test_svg_tiny_ps_check(svg, problem):
    assert problem in bimi.check_svg(svg)


def test_good_svg_and_svgz_pass():
    import gzip

    assert bimi.check_svg(GOOD_SVG) == ""
    assert bimi.check_svg(gzip.compress(GOOD_SVG)) == ""


class HttpsLogoServer:
    """A tiny HTTPS server on 127.0.0.1 (this suite's ports, 22800-22999) with a
    self-signed certificate for logo.test; ``pages`` maps a path to (status, body)."""

    def __init__(self, tmp_path):
        import datetime
        import ssl

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "logo.test")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("logo.test")]),
                               critical=False)
                .sign(key, hashes.SHA256()))
        (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "k.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
        self.client_ctx = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
        self.pages = {}
        self.requests = []

    async def start(self):
        import socket

        for port in range(22800, 23000):
            try:
                self.server = await asyncio.start_server(self._serve, "127.0.0.1", port,
                                                         ssl=self.server_ctx)
                self.port = port
                return self
            except OSError:
                continue
        raise RuntimeError("no free port in 22800-22999") from socket.error

    async def _serve(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            self.requests.append(path)
            status, body = self.pages.get(path, (404, b"missing"))
            extra = b"Location: https://logo.test/elsewhere\r\n" if status == 302 else b""
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n"
                         % (status, len(body), extra) + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self):
        self.server.close()


def test_indicator_fetched_checked_and_added(tmp_path):
    import gzip

    async def go():
        srv = await HttpsLogoServer(tmp_path).start()
        base = f"https://logo.test:{srv.port}"
        srv.pages = {"/good.svg": (200, GOOD_SVG), "/good.svgz": (200, gzip.compress(GOOD_SVG)),
                     "/bad.svg": (200, GOOD_SVG.replace(b"tiny-ps", b"full")),
                     "/big.svg": (200, b"<svg>" + b" " * 40000), "/gone.svg": (404, b"no"),
                     "/moved.svg": (302, b"")}
        zone = {"_dmarc.example.org": {"TXT": "v=DMARC1; p=reject"},
                "default._bimi.example.org": {"TXT": f"v=BIMI1; l={base}/good.svg"},
                "logo.test": {"A": "127.0.0.1"}}
        resolver = Resolver(FakeBackend(zone))
        fetcher = bimi.IndicatorFetcher(resolver, ssl_context=srv.client_ctx,
                                        allow_private=True)
        try:
            passed = await dmarc.check("example.org", Spf("pass", "example.org"), [],
                                       resolver)
            result = await bimi.lookup(passed, resolver, fetcher=fetcher)
            assert result.result == "pass" and result.indicator == GOOD_SVG
            header = result.indicator_header()
            assert header.startswith("BIMI-Indicator: ")
            import base64
            assert base64.b64decode("".join(header[16:].split())) == GOOD_SVG
            assert all(len(line) <= 78 for line in header.split("\r\n"))
            ar = authres.authentication_results("mx", bimi=result)
            assert f"policy.indicator-hash={result.indicator_hash}" in ar
            # Cached: a second message does not fetch again.
            await bimi.lookup(passed, resolver, fetcher=fetcher)
            assert fetcher.fetches == 1
            outcomes = {}
            for path in ("good.svgz", "bad.svg", "big.svg", "gone.svg", "moved.svg"):
                zone["default._bimi.example.org"]["TXT"] = f"v=BIMI1; l={base}/{path}"
                r = await bimi.lookup(passed, Resolver(FakeBackend(zone)), fetcher=fetcher)
                outcomes[path] = (r.result, r.reason)
            assert outcomes["good.svgz"] == ("pass", "")
            assert outcomes["bad.svg"][0] == "fail" and "tiny-ps" in outcomes["bad.svg"][1]
            assert "larger than" in outcomes["big.svg"][1]
            assert "answered 404" in outcomes["gone.svg"][1]
            assert "answered 302" in outcomes["moved.svg"][1]
            # Loopback is refused unless allowed; an untrusted certificate fails.
            strict = bimi.IndicatorFetcher(resolver, ssl_context=srv.client_ctx)
            data, problem = await strict(f"{base}/good.svg")
            assert data is None and "no public address" in problem
            untrusted = bimi.IndicatorFetcher(resolver, allow_private=True)
            data, problem = await untrusted(f"{base}/good.svg")
            assert data is None and "certificate" in problem.lower()
            assert (await fetcher("http://logo.test/x.svg"))[1].endswith("not https")
        finally:
            srv.close()
    asyncio.run(go())


def test_pipeline_adds_indicator_or_nothing(tmp_path):
    async def no_dkim(message, resolver):
        return []

    async def go():
        srv = await HttpsLogoServer(tmp_path).start()
        srv.pages = {"/good.svg": (200, GOOD_SVG), "/bad.svg": (200, b"<svg/>")}
        zone = {"example.org": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
                "_dmarc.example.org": {"TXT": "v=DMARC1; p=reject"},
                "default._bimi.example.org": {
                    "TXT": f"v=BIMI1; l=https://logo.test:{srv.port}/good.svg"},
                "logo.test": {"A": "127.0.0.1"}}
        message = b"From: a@example.org\r\n\r\nhi\r\n"
        try:
            for path, expect in (("good.svg", True), ("bad.svg", False)):
                zone["default._bimi.example.org"]["TXT"] = \
                    f"v=BIMI1; l=https://logo.test:{srv.port}/{path}"
                resolver = Resolver(FakeBackend(zone))
                auth = InboundAuth(InboundSettings(hostname="mx.example.net"), resolver,
                                   dkim_verify=no_dkim, bimi_fetcher=bimi.IndicatorFetcher(
                                       resolver, ssl_context=srv.client_ctx,
                                       allow_private=True))
                verdict = await auth.check("192.0.2.1", "mail.example.org", "a@example.org",
                                           message)
                fields = (authres.field_values(verdict.message, "bimi-location")
                          + authres.field_values(verdict.message, "bimi-indicator"))
                assert len(fields) == (2 if expect else 0)
                assert (b"bimi=pass" in verdict.message) is expect
                assert (b"bimi=fail" in verdict.message) is not expect
        finally:
            srv.close()
    asyncio.run(go())
