"""MTA-STS over real sockets: the HTTPS policy fetch against a local server with a test
CA, and the queue enforcing what it fetched against SMTP sinks on loopback (answers from
the fake resolver). Also REQUIRETLS end to end in the queue (RFC 8689 4.2.1: an MX
answer DNSSEC-validated or covered by an enforce policy, verified TLS with the MX name,
an MTA-STS policy used when there is one, a bounce rather than a downgrade;
``TLS-Required: No`` honoured without REQUIRETLS and ignored with it) and the TLS-RPT
counts the deliveries leave.

Ports: 23200-23299 (HTTPS policy servers and SMTP sinks; 127.0.0.1 and 127.0.0.2)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.dns import FakeBackend, Resolver
from stalwart.mailauth.mtasts import MtaSts, PolicyError, fetch_policy
from stalwart.mailauth.tlsrpt import TlsRptRecorder
from stalwart.queue import MemoryQueueStore, Queue, QueueSettings
from stalwart.queue.delivery import verified_context
from stalwart.store.blobs import MemoryBlobStore

from . import ports

from .test_queue_delivery import MESSAGE, Clock, Sink

def free_port() -> int:
    return ports.free_port(("127.0.0.1", "127.0.0.2"))


# ---------------------------------------------------------------------- a test CA
class LocalCA:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stalwart Test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.name = name
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                                  crl_sign=True, content_commitment=False,
                                                  key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, encipher_only=False,
                                                  decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cafile = directory / "ca.pem"
        self.cafile.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def server_context(self, host: str, *, expired: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.issue(host, expired=expired))
        return ctx

    def issue(self, host: str, *, expired: bool = False) -> tuple[Path, Path]:
        """A certificate for ``host`` signed by this CA: (cert PEM path, key PEM path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        begin, end = ((now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
                      if expired else (now - datetime.timedelta(days=1),
                                       now + datetime.timedelta(days=30)))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                .issuer_name(self.name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(begin).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .sign(self.key, hashes.SHA256()))
        stem = self.dir / f"{host}-{x509.random_serial_number()}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path

    def client_context(self) -> ssl.SSLContext:
        return verified_context(str(self.cafile))


@pytest.fixture
def ca(tmp_path) -> LocalCA:
    return LocalCA(tmp_path)


# ---------------------------------------------------------------------- HTTPS server
ENFORCE = "version: STSv1\r\nmode: enforce\r\nmx: mx.dest.test\r\nmax_age: 86400\r\n"
TESTING = ENFORCE.replace("enforce", "testing")


class PolicyServer:
    """Serves one canned response to every request, over TLS."""

    def __init__(self, port: int, ctx: ssl.SSLContext, body: str = ENFORCE) -> None:
        self.port, self.ctx = port, ctx
        self.status, self.ctype = "200 OK", "text/plain; charset=utf-8"
        self.body = body.encode()
        self.chunked = False
        self.extra = ""
        self.delay = 0.0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> "PolicyServer":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port,
                                                 ssl=self.ctx)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader, writer) -> None:
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            if self.delay:
                await asyncio.sleep(self.delay)
            head = f"HTTP/1.1 {self.status}\r\nContent-Type: {self.ctype}\r\n{self.extra}"
            if self.chunked:
                body = b"".join(b"%x\r\n%s\r\n" % (len(c), c)
                                for c in (self.body[:10], self.body[10:]) if c) + b"0\r\n\r\n"
                head += "Transfer-Encoding: chunked\r\n"
            else:
                body = self.body
                head += f"Content-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


def policy_zone(**extra) -> dict:
    zone = {"mta-sts.dest.test": {"A": "127.0.0.1"},
            "_mta-sts.dest.test": {"TXT": ["v=STSv1; id=policy1"]}}
    zone.update(extra)
    return zone


# ---------------------------------------------------------------------- fetching
def test_fetch_policy_over_https(ca):
    async def main():
        port = free_port()
        resolver = Resolver(FakeBackend(policy_zone()))
        client = ca.client_context()
        fetch = lambda **kw: fetch_policy("dest.test", resolver, port=port,  # noqa: E731
                                          ssl_context=client, timeout=kw.get("timeout", 5.0))
        async with PolicyServer(port, ca.server_context("mta-sts.dest.test")) as srv:
            policy = await fetch()
            assert policy.mode == "enforce" and policy.mx == ("mx.dest.test",)
            req = srv.requests[0].decode()
            assert req.startswith("GET /.well-known/mta-sts.txt HTTP/1.1\r\n")
            assert "host: mta-sts.dest.test\r\n" in req.lower()
            srv.chunked = True
            assert (await fetch()).max_age == 86400
            srv.chunked = False
            srv.status, srv.extra = "301 Moved", "Location: https://elsewhere.test/\r\n"
            with pytest.raises(PolicyError, match="redirects are not followed") as e:
                await fetch()
            assert e.value.kind == "sts-policy-fetch-error"
            srv.status, srv.extra = "404 Not Found", ""
            with pytest.raises(PolicyError, match="status 404"):
                await fetch()
            srv.status, srv.ctype = "200 OK", "text/html"
            with pytest.raises(PolicyError, match="text/plain is required") as e:
                await fetch()
            assert e.value.kind == "sts-policy-invalid"
            srv.ctype = "text/plain"
            srv.body = ENFORCE.encode() + b"x-pad: " + b"a" * 65536 + b"\r\n"
            with pytest.raises(PolicyError, match="larger than 65536"):
                await fetch()
            srv.body = b"mode: enforce\r\n"
            with pytest.raises(PolicyError, match="version") as e:
                await fetch()
            assert e.value.kind == "sts-policy-invalid"
            srv.body, srv.delay = ENFORCE.encode(), 3.0
            with pytest.raises(PolicyError, match="timed out") as e:
                await fetch(timeout=0.5)
            assert e.value.kind == "sts-policy-fetch-error"
        # A certificate for another name, and one that expired: not trusted.
        async with PolicyServer(port, ca.server_context("www.dest.test")):
            with pytest.raises(PolicyError, match="certificate not valid") as e:
                await fetch()
            assert e.value.kind == "sts-webpki-invalid"
        async with PolicyServer(port, ca.server_context("mta-sts.dest.test", expired=True)):
            with pytest.raises(PolicyError, match="expired") as e:
                await fetch()
            assert e.value.kind == "sts-webpki-invalid"
        # The system CAs (the default) do not know the test CA.
        async with PolicyServer(port, ca.server_context("mta-sts.dest.test")):
            with pytest.raises(PolicyError) as e:
                await fetch_policy("dest.test", resolver, port=port, timeout=5.0)
            assert e.value.kind == "sts-webpki-invalid"
        # Nobody listening; no address.
        with pytest.raises(PolicyError, match="connect") as e:
            await fetch()
        assert e.value.kind == "sts-policy-fetch-error"
        with pytest.raises(PolicyError, match="mta-sts.nowhere.test"):
            await fetch_policy("nowhere.test", resolver, port=port, ssl_context=client)
    asyncio.run(main())


# ---------------------------------------------------------------------- the queue
class BoundSink(Sink):
    def __init__(self, host: str, port: int, **kw) -> None:
        super().__init__(port, **kw)
        self.host = host

    async def __aenter__(self) -> "BoundSink":
        self.server = await asyncio.start_server(self.handle, self.host, self.port)
        return self


ZONE = {
    # evil.dest.test is preferred, but the policy names only mx.dest.test.
    "dest.test": {"MX": [(5, "evil.dest.test"), (10, "mx.dest.test")]},
    "mx.dest.test": {"A": "127.0.0.1"},
    "evil.dest.test": {"A": "127.0.0.2"},
    "sender.test": {"MX": [(10, "mx.sender.test")]},
    "mx.sender.test": {"A": "127.0.0.3"},
}


class Setup:
    def __init__(self, ca: LocalCA, *, policy: str | None = ENFORCE,
                 secure: bool = False) -> None:
        self.ca = ca
        self.https_port, self.smtp_port = free_port(), free_port()
        zone = dict(ZONE)
        if secure:                       # dest.test signed: its MX and A answers have AD
            for name in ("dest.test", "mx.dest.test", "evil.dest.test"):
                zone[name] = {**zone[name], "secure": True}
        if policy is not None:
            zone.update(policy_zone())
        self.policy = policy
        self.clock = Clock()
        self.store, self.blobs = MemoryQueueStore(), MemoryBlobStore()
        self.resolver = Resolver(FakeBackend(zone))
        settings = QueueSettings(hostname="mail.sender.test", mx_port=self.smtp_port,
                                 retry=(60.0,))
        self.queue = Queue(self.store, self.blobs, self.resolver, settings,
                           tls_verified=ca.client_context(), clock=self.clock)
        self.sts = MtaSts(self.resolver, port=self.https_port, ssl_context=ca.client_context(),
                          clock=self.clock, timeout=5.0)
        self.report = TlsRptRecorder(clock=self.clock)
        self.queue.deliverer.mtasts = self.sts
        self.queue.deliverer.tlsrpt = self.report

    def policy_server(self) -> PolicyServer:
        return PolicyServer(self.https_port, self.ca.server_context("mta-sts.dest.test"),
                            self.policy or ENFORCE)

    def sinks(self, *, good_cert: str | None = "mx.dest.test", extensions=()) -> tuple:
        ext = ("PIPELINING", "8BITMIME", "SIZE 1000000", "ENHANCEDSTATUSCODES", *extensions)
        good = BoundSink("127.0.0.1", self.smtp_port, extensions=ext,
                         tls=self.ca.server_context(good_cert) if good_cert else None)
        evil = BoundSink("127.0.0.2", self.smtp_port, extensions=ext,
                         tls=self.ca.server_context("evil.dest.test"))
        return good, evil

    def summary(self, domain: str = "dest.test") -> dict:
        return self.report.summary(int(self.clock.now // 86400 * 86400), domain)

    def failures(self, domain: str = "dest.test") -> list[str]:
        day = int(self.clock.now // 86400 * 86400)
        return sorted(k[0] for counts in self.report.days[day][domain].values()
                      for k in counts.failures)

    async def send(self, message: bytes = MESSAGE, **kw) -> None:
        await self.queue.enqueue(message, return_path="a@sender.test",
                                 recipients=["b@dest.test"], **kw)
        await self.queue.run_due()
        await self.queue.pool.close()

    def pending(self) -> list[dict]:
        return [m for m in self.store.queue_list() if m["from"]]

    def dsns(self) -> list[str]:
        return [self.blobs.get(m["blob"]).decode() for m in self.store.queue_list()
                if not m["from"]]


def test_without_a_policy_the_preferred_mx_gets_the_mail(ca):
    """The baseline the other tests change: no MTA-STS, evil.dest.test (preferred) wins."""
    async def main():
        s = Setup(ca, policy=None)
        good, evil = s.sinks()
        async with good, evil:
            await s.send()
        assert evil.messages == [MESSAGE] and good.messages == []
        assert s.summary() == {"success": 1, "failure": 0}
    asyncio.run(main())


def test_enforce_uses_only_listed_mx_with_a_verified_certificate(ca):
    async def main():
        s = Setup(ca)
        good, evil = s.sinks()
        async with s.policy_server() as web, good, evil:
            await s.send()
            await s.send()
        assert evil.sessions == [] and good.messages == [MESSAGE, MESSAGE]
        assert all(sess.tls for sess in good.sessions)
        assert len(web.requests) == 1                        # fetched once, then cached
        assert s.pending() == [] and s.dsns() == []
        summary = s.summary()
        assert summary["success"] == 2 and set(s.failures()) == {"validation-failure"}
    asyncio.run(main())


def test_enforce_with_a_bad_certificate_fails_temporarily(ca):
    async def main():
        s = Setup(ca)
        good, evil = s.sinks(good_cert="wrong.dest.test")
        async with s.policy_server(), good, evil:
            await s.send()
        assert good.messages == [] and evil.sessions == []
        [entry] = s.pending()
        [rcpt] = entry["rcpt"]
        assert rcpt["s"] == "pending" and rcpt["r"][0] == 451          # retried later
        assert s.dsns() == []
        assert "certificate-host-mismatch" in s.failures()
    asyncio.run(main())


def test_enforce_without_starttls_is_never_sent_in_clear(ca):
    async def main():
        s = Setup(ca)
        good, evil = s.sinks(good_cert=None)
        async with s.policy_server(), good, evil:
            await s.send()
        assert good.messages == [] and evil.sessions == []
        assert len(s.pending()) == 1
        assert "starttls-not-supported" in s.failures()
    asyncio.run(main())


def test_testing_mode_only_reports(ca):
    async def main():
        s = Setup(ca, policy=TESTING)
        good, evil = s.sinks()
        evil.tls = ca.server_context("not-evil.test")          # and a certificate mismatch
        async with s.policy_server(), good, evil:
            await s.send()
        # Delivered as without a policy (to the preferred host), but reported.
        assert evil.messages == [MESSAGE] and s.pending() == []
        assert s.failures() == ["certificate-host-mismatch", "validation-failure"]
    asyncio.run(main())


def test_tls_required_no_turns_mta_sts_off(ca):
    async def main():
        s = Setup(ca)
        good, evil = s.sinks()
        message = b"TLS-Required: No\r\n" + MESSAGE
        async with s.policy_server() as web, good, evil:
            await s.send(message)
        assert evil.messages == [message] and web.requests == []
    asyncio.run(main())


def test_requiretls_uses_a_testing_policy_and_bounces_rather_than_downgrades(ca):
    async def main():
        # A testing policy does not make an unvalidated MX answer trustworthy (RFC 8689
        # 4.2.1 asks for DNSSEC or MTA-STS enforce): refused before any connection.
        s = Setup(ca, policy=TESTING)
        good, evil = s.sinks(extensions=("REQUIRETLS",))
        async with s.policy_server(), good, evil:
            await s.send(requiretls=True)
        assert good.sessions == [] and evil.sessions == [] and s.pending() == []
        [dsn] = s.dsns()
        assert "Status: 5.7.10" in dsn and "policy in testing mode" in dsn

        # With a validated MX the testing policy is enforced for REQUIRETLS:
        # evil.dest.test (not in the policy) is skipped.
        s = Setup(ca, policy=TESTING, secure=True)
        good, evil = s.sinks(extensions=("REQUIRETLS",))
        async with s.policy_server(), good, evil:
            await s.send(requiretls=True)
            assert evil.sessions == [] and good.messages == [MESSAGE]
            assert any("REQUIRETLS" in c for c in good.commands)
        assert s.pending() == [] and s.dsns() == []

        # No MX host the policy allows offers STARTTLS: bounced, never sent; "TLS-Required:
        # No" is ignored for a REQUIRETLS message (RFC 8689 5).
        s = Setup(ca, policy=TESTING, secure=True)
        good, evil = s.sinks(good_cert=None, extensions=("REQUIRETLS",))
        async with s.policy_server(), good, evil:
            await s.send(b"TLS-Required: No\r\n" + MESSAGE, requiretls=True)
        assert good.messages == [] and evil.sessions == []
        assert s.pending() == []
        [dsn] = s.dsns()
        assert "Status: 5.7.10" in dsn and "Body line" not in dsn
    asyncio.run(main())


def test_requiretls_trusts_an_unvalidated_mx_under_an_enforce_policy(ca):
    async def main():
        # No DNSSEC, but MTA-STS enforce names mx.dest.test: delivered there (verified TLS).
        s = Setup(ca, policy=ENFORCE)
        good, evil = s.sinks(extensions=("REQUIRETLS",))
        async with s.policy_server(), good, evil:
            await s.send(requiretls=True)
        assert evil.sessions == [] and good.messages == [MESSAGE]
        assert good.sessions[-1].tls and s.pending() == [] and s.dsns() == []

        # The enforce policy names no MX host of the domain: nothing is sent, 5.7.10.
        s = Setup(ca, policy=ENFORCE.replace("mx.dest.test", "elsewhere.dest.test"))
        good, evil = s.sinks(extensions=("REQUIRETLS",))
        async with s.policy_server(), good, evil:
            await s.send(requiretls=True)
        assert good.sessions == [] and evil.sessions == [] and s.pending() == []
        [dsn] = s.dsns()
        assert "Status: 5.7.10" in dsn and "not allowed by the MTA-STS policy" in dsn

        # The domain announces a policy that cannot be fetched (the HTTPS server is down):
        # the MX may yet turn out to be covered, so the message waits (4.7.10).
        s = Setup(ca, policy=ENFORCE)
        good, evil = s.sinks(extensions=("REQUIRETLS",))
        async with good, evil:
            await s.send(requiretls=True)
        assert good.sessions == [] and evil.sessions == [] and s.dsns() == []
        [entry] = s.pending()
        assert entry["rcpt"][0]["s"] == "pending"
        assert entry["rcpt"][0]["r"][:2] == [451, "4.7.10"]
    asyncio.run(main())


def test_requiretls_needs_a_verified_certificate_without_mta_sts(ca):
    async def main():
        s = Setup(ca, policy=None, secure=True)
        good, evil = s.sinks(extensions=("REQUIRETLS",))
        evil.tls = ca.server_context("not-evil.test")          # name mismatch
        async with good, evil:
            await s.send(requiretls=True)
        # evil.dest.test's certificate does not match its name: mx.dest.test is used.
        assert evil.messages == [] and good.messages == [MESSAGE]
        assert evil.commands[:2] == ["EHLO mail.sender.test", "STARTTLS"]
        assert len(evil.commands) == 2                           # no clear-text retry
        # Both hosts fail verification: a 5.7.10 bounce, no downgrade to clear text.
        s = Setup(ca, policy=None, secure=True)
        good, evil = s.sinks(good_cert="other.test", extensions=("REQUIRETLS",))
        evil.tls = ca.server_context("not-evil.test")
        async with good, evil:
            await s.send(requiretls=True)
        assert good.messages == [] and evil.messages == []
        assert all(c in ("EHLO mail.sender.test", "STARTTLS") for c in good.commands + evil.commands)
        [dsn] = s.dsns()
        assert "Status: 5.7.10" in dsn
    asyncio.run(main())


# ---------------------------------------------------------------------- TLS-RPT over HTTPS
class ReportSite:
    """An HTTPS server that records POSTed bodies and answers ``status``."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.port, self.ctx = port, ctx
        self.status = "200 OK"
        self.posts: list[tuple[bytes, bytes]] = []

    async def __aenter__(self) -> "ReportSite":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port,
                                                 ssl=self.ctx)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader, writer) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            self.posts.append((head, await reader.readexactly(length)))
            writer.write(f"HTTP/1.1 {self.status}\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


def test_tls_reports_posted_to_https_uris(ca):
    import gzip
    import json

    from stalwart.mailauth.tlsrpt import (PolicyKey, ReportPostError, post_report,
                                          send_reports)

    async def main():
        port = free_port()
        zone = {"reports.dest.test": {"A": "127.0.0.1"},
                "_smtp._tls.dest.test": {"TXT": [
                    f"v=TLSRPTv1; rua=https://reports.dest.test:{port}/v1/tlsrpt"]}}
        resolver = Resolver(FakeBackend(zone))
        client = ca.client_context()
        clock = Clock()
        recorder = TlsRptRecorder(clock=clock)
        recorder.success("dest.test", PolicyKey())
        recorder.failure("dest.test", PolicyKey(), "starttls-not-supported",
                         mx_host="mx.dest.test")
        queued: list = []

        async def enqueue(message, recipients):
            queued.append(recipients)

        async def post(url, body):
            await post_report(url, body, resolver, ssl_context=client, timeout=5.0)

        async with ReportSite(port, ca.server_context("reports.dest.test")) as site:
            clock.now += 86400
            result = await send_reports(recorder, resolver, enqueue, org_name="Org",
                                        submitter="mail.sender.test",
                                        sender="noreply@sender.test", post=post)
            assert result == {"reports": 1, "skipped": 0} and queued == []
            [(head, body)] = site.posts
            assert head.startswith(b"POST /v1/tlsrpt HTTP/1.1\r\n")
            assert b"content-type: application/tlsrpt+gzip" in head.lower()
            report = json.loads(gzip.decompress(body))
            assert report["policies"][0]["summary"] == {
                "total-successful-session-count": 1, "total-failure-session-count": 1}
            site.status = "302 Found"
            with pytest.raises(ReportPostError, match="302"):
                await post_report(f"https://reports.dest.test:{port}/x", b"x", resolver,
                                  ssl_context=client)
        async with ReportSite(port, ca.server_context("other.test")):
            with pytest.raises(ReportPostError, match="certificate"):
                await post_report(f"https://reports.dest.test:{port}/x", b"x", resolver,
                                  ssl_context=client)
        with pytest.raises(ReportPostError):                # nobody listening
            await post_report(f"https://reports.dest.test:{port}/x", b"x", resolver,
                              ssl_context=client)
        with pytest.raises(ReportPostError, match="not an https URI"):
            await post_report("http://reports.dest.test/x", b"x", resolver)
    asyncio.run(main())
