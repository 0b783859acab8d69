"""DANE (RFC 7672) in the queue, over real TLS sockets: SMTP sinks on loopback with
generated certificates, answers (and their DNSSEC status) from the fake resolver.

Shown: a certificate matching the TLSA records (DANE-EE, DANE-TA through the chain) gets
the mail; a mismatch, a missing STARTTLS or a failed TLSA lookup defers it (451 4.7.5 /
4.7.10, nothing sent in clear); an unusable TLSA set still requires TLS; insecure answers
mean no DANE; DANE wins over MTA-STS (RFC 8461 2) both ways; ``TLS-Required: No`` turns it
off; REQUIRETLS accepts DANE authentication; TLS-RPT counts under the ``tlsa`` policy.
CNAME MX hosts (RFC 7672 2.2.2): the expanded name's TLSA records first (its name sent as
SNI), the MX name's when it has none, no DANE through an unvalidated CNAME.

Ports: from ``ports.free_port`` (SMTP sinks and an HTTPS policy server; 127.0.0.1 and
127.0.0.2)."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.dns import TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth.dane import Dane
from stalwart.mailauth.mtasts import MtaSts
from stalwart.mailauth.tlsrpt import TlsRptRecorder
from stalwart.queue import MemoryQueueStore, Queue, QueueSettings
from stalwart.store.blobs import MemoryBlobStore

from . import ports

from .test_mtasts_queue import ENFORCE, BoundSink, LocalCA, PolicyServer
from .test_queue_delivery import MESSAGE, Clock

pytestmark = pytest.mark.integration

def free_port() -> int:
    return ports.free_port(("127.0.0.1", "127.0.0.2"))


# ---------------------------------------------------------------------- certificates
NOW = datetime.datetime.now(datetime.timezone.utc)


class Pki:
    """A private root and intermediate; leaves written as chain + key files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.root, self.root_key = self._cert("DANE Test Root", None, ca=True)
        self.inter, self.inter_key = self._cert("DANE Test Intermediate",
                                                (self.root, self.root_key), ca=True)

    @staticmethod
    def _cert(cn: str, issuer, *, ca: bool = False, san=(), days=(-1, 30)):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW + datetime.timedelta(days=days[0]))
             .not_valid_after(NOW + datetime.timedelta(days=days[1])))
        if ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]),
                                critical=False)
        return b.sign(issuer_key, hashes.SHA256()), key

    def leaf(self, host: str, *, self_signed: bool = False
             ) -> tuple[x509.Certificate, Path, Path]:
        cert, key = self._cert(host, None if self_signed else (self.inter, self.inter_key),
                               san=(host,))
        pem = serialization.Encoding.PEM
        stem = self.dir / f"{host}-{x509.random_serial_number()}"
        chain = cert.public_bytes(pem) + (b"" if self_signed else self.inter.public_bytes(pem))
        stem.with_suffix(".crt").write_bytes(chain)
        stem.with_suffix(".key").write_bytes(key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return cert, stem.with_suffix(".crt"), stem.with_suffix(".key")

    def context(self, host: str, *, self_signed: bool = False
                ) -> tuple[ssl.SSLContext, x509.Certificate]:
        cert, crt, key = self.leaf(host, self_signed=self_signed)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        return ctx, cert


def tlsa(usage: int, cert: x509.Certificate, selector: int = 1, mtype: int = 1) -> tuple:
    data = (cert.public_bytes(serialization.Encoding.DER) if selector == 0 else
            cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    digest = {0: lambda d: d, 1: lambda d: hashlib.sha256(d).digest(),
              2: lambda d: hashlib.sha512(d).digest()}[mtype](data)
    return (usage, selector, mtype, digest)


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki(tmp_path)


# ---------------------------------------------------------------------- the queue
EXT = ("PIPELINING", "8BITMIME", "SIZE 1000000", "ENHANCEDSTATUSCODES")


class Setup:
    """dest.test: MX 10 mx.dest.test (127.0.0.1) [, MX 20 backup.dest.test (127.0.0.2)]."""

    def __init__(self, records, *, secure: bool = True, tlsa_secure: bool = True,
                 backup: bool = False, extra: dict | None = None) -> None:
        self.port = free_port()
        mx = [(10, "mx.dest.test")] + ([(20, "backup.dest.test")] if backup else [])
        zone = {"dest.test": {"MX": mx, "secure": secure},
                "mx.dest.test": {"A": "127.0.0.1", "secure": secure},
                "backup.dest.test": {"A": "127.0.0.2", "secure": secure}}
        if records is not None:
            zone[f"_{self.port}._tcp.mx.dest.test"] = (
                records if records == TEMPFAIL else {"TLSA": list(records),
                                                     "secure": tlsa_secure})
        zone.update(extra or {})
        self.clock = Clock()
        self.store, self.blobs = MemoryQueueStore(), MemoryBlobStore()
        self.resolver = Resolver(FakeBackend(zone))
        settings = QueueSettings(hostname="mail.sender.test", mx_port=self.port, retry=(60.0,))
        self.queue = Queue(self.store, self.blobs, self.resolver, settings, clock=self.clock)
        self.report = TlsRptRecorder(clock=self.clock)
        self.queue.deliverer.dane = Dane(self.resolver)
        self.queue.deliverer.tlsrpt = self.report

    def sink(self, tls: ssl.SSLContext | None, host: str = "127.0.0.1", **kw) -> BoundSink:
        return BoundSink(host, self.port, extensions=kw.pop("extensions", EXT), tls=tls, **kw)

    async def send(self, message: bytes = MESSAGE, **kw) -> None:
        await self.queue.enqueue(message, return_path="a@sender.test",
                                 recipients=["b@dest.test"], **kw)
        await self.queue.run_due()
        await self.queue.pool.close()

    def pending(self) -> list[dict]:
        return [m for m in self.store.queue_list() if m["from"]]

    def reply(self) -> list:
        [entry] = self.pending()
        [rcpt] = entry["rcpt"]
        assert rcpt["s"] == "pending"
        return rcpt["r"]

    def policies(self) -> dict:
        day = int(self.clock.now // 86400 * 86400)
        return {(k.type): (c.success, sorted(f[0] for f in c.failures))
                for k, c in self.report.days.get(day, {}).get("dest.test", {}).items()}


def run(coro) -> None:
    asyncio.run(coro)


def test_dane_ee_match_is_delivered_over_tls(pki):
    async def main():
        ctx, cert = pki.context("unrelated.name.test", self_signed=True)  # names don't count
        s = Setup([tlsa(3, cert)])
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == [MESSAGE] and all(x.tls for x in sink.sessions)
        assert s.pending() == []
        assert s.policies() == {"tlsa": (1, [])}
    run(main())


def test_dane_ee_mismatch_is_deferred_and_nothing_is_sent(pki):
    async def main():
        ctx, _ = pki.context("mx.dest.test")
        other, other_cert = pki.context("mx.dest.test")
        s = Setup([tlsa(3, other_cert)])
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == []
        # The session ended right after the handshake: no EHLO, MAIL or RCPT over TLS.
        assert [c.split()[0] for c in sink.commands] == ["EHLO", "STARTTLS", "QUIT"]
        code, status, text = s.reply()[:3]
        assert (code, status) == (451, "4.7.5") and "DANE" in text
        assert s.policies() == {"tlsa": (0, ["tlsa-invalid"])}
    run(main())


def test_dane_ta_through_the_chain_and_the_mx_name(pki):
    async def main():
        good, _ = pki.context("mx.dest.test")
        s = Setup([tlsa(2, pki.inter)])
        async with s.sink(good) as sink:
            await s.send()
        assert sink.messages == [MESSAGE] and s.pending() == []
        # Same anchor, but the certificate names another host: deferred.
        wrong, _ = pki.context("www.dest.test")
        s = Setup([tlsa(2, pki.inter, 0, 2)])
        async with s.sink(wrong) as sink:
            await s.send()
        assert sink.messages == [] and s.reply()[:2] == [451, "4.7.5"]
        assert s.policies() == {"tlsa": (0, ["certificate-host-mismatch"])}
    run(main())


def test_usable_records_without_starttls_never_go_in_clear(pki):
    async def main():
        _, cert = pki.context("mx.dest.test")
        s = Setup([tlsa(3, cert)])
        async with s.sink(None) as sink:
            await s.send()
        assert sink.messages == [] and s.reply()[:2] == [451, "4.7.10"]
        assert s.policies() == {"tlsa": (0, ["starttls-not-supported"])}
    run(main())


def test_an_unusable_tlsa_set_requires_tls_but_checks_no_certificate(pki):
    async def main():
        ctx, cert = pki.context("whatever.test", self_signed=True)
        pkix_only = [tlsa(1, cert), tlsa(0, pki.root)]          # PKIX-EE/TA: unusable
        s = Setup(pkix_only)
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == [MESSAGE] and all(x.tls for x in sink.sessions)
        s = Setup(pkix_only)
        async with s.sink(None) as sink:
            await s.send()
        assert sink.messages == [] and s.reply()[:2] == [451, "4.7.10"]
    run(main())


def test_insecure_answers_mean_no_dane(pki):
    async def main():
        ctx, _ = pki.context("mx.dest.test")
        _, other = pki.context("mx.dest.test")
        for kw in ({"secure": False}, {"tlsa_secure": False}):
            s = Setup([tlsa(3, other)], **kw)               # mismatching, but not validated
            async with s.sink(ctx) as sink:
                await s.send()
            assert sink.messages == [MESSAGE], kw           # opportunistic TLS as before
            async with s.sink(None) as sink:
                await s.send()
            assert sink.messages == [MESSAGE], kw           # even in clear text
            assert "tlsa" not in s.policies()
    run(main())


def test_a_failed_tlsa_lookup_skips_the_host(pki):
    async def main():
        ctx, _ = pki.context("mx.dest.test")
        s = Setup(TEMPFAIL)
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.sessions == []
        code, status, text = s.reply()[:3]
        assert (code, status) == (451, "4.7.5") and "TLSA lookup" in text
        # With a backup MX (no TLSA records there), the backup gets the mail.
        s = Setup(TEMPFAIL, backup=True)
        async with s.sink(ctx) as primary, s.sink(ctx, "127.0.0.2") as backup:
            await s.send()
        assert primary.sessions == [] and backup.messages == [MESSAGE]
        assert s.policies()["tlsa"] == (0, ["dnssec-invalid"])
    run(main())


def test_dane_takes_precedence_over_mta_sts(pki, tmp_path):
    """RFC 8461 2: an enforce policy that names another MX host and a certificate no CA
    signed do not stop a DANE-authenticated host; and a certificate MTA-STS would accept
    does not rescue a failed DANE check."""
    async def main():
        ca = LocalCA(tmp_path)
        https = free_port()
        policy = {"mta-sts.dest.test": {"A": "127.0.0.1"},
                  "_mta-sts.dest.test": {"TXT": ["v=STSv1; id=p1"]}}
        ctx, cert = pki.context("mx.dest.test")              # not signed by the STS CA
        s = Setup([tlsa(3, cert)], extra=policy)
        s.queue.deliverer.mtasts = MtaSts(s.resolver, port=https,
                                          ssl_context=ca.client_context(), clock=s.clock)
        other_policy = ENFORCE.replace("mx.dest.test", "elsewhere.dest.test")
        async with PolicyServer(https, ca.server_context("mta-sts.dest.test"), other_policy), \
                s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == [MESSAGE]

        s = Setup([tlsa(3, cert)], extra=policy)
        s.queue.deliverer.mtasts = MtaSts(s.resolver, port=https,
                                          ssl_context=ca.client_context(), clock=s.clock)
        async with PolicyServer(https, ca.server_context("mta-sts.dest.test")), \
                s.sink(ca.server_context("mx.dest.test")) as sink:   # STS-valid, DANE-wrong
            await s.send()
        assert sink.messages == [] and s.reply()[:2] == [451, "4.7.5"]
    run(main())


def test_tls_required_no_turns_dane_off_and_requiretls_accepts_dane(pki):
    async def main():
        ctx, _ = pki.context("mx.dest.test")
        _, other = pki.context("mx.dest.test")
        s = Setup([tlsa(3, other)])
        message = b"TLS-Required: No\r\n" + MESSAGE
        async with s.sink(ctx) as sink:
            await s.send(message)
        assert sink.messages == [message] and "tlsa" not in s.policies()

        # REQUIRETLS: DANE authentication stands for the PKIX check (RFC 8689 4.2.1); the
        # certificate is self-signed, which a PKIX check would refuse.
        ctx, cert = pki.context("mx.dest.test", self_signed=True)
        s = Setup([tlsa(3, cert)])
        async with s.sink(ctx, extensions=(*EXT, "REQUIRETLS")) as sink:
            await s.send(requiretls=True)
        assert sink.messages == [MESSAGE] and any("REQUIRETLS" in c for c in sink.commands)
    run(main())


def test_a_pooled_session_is_reused_only_under_the_same_records(pki):
    async def main():
        ctx, cert = pki.context("mx.dest.test")
        s = Setup([tlsa(3, cert)])
        async with s.sink(ctx) as sink:
            for _ in range(2):                              # one after the other
                await s.queue.enqueue(MESSAGE, return_path="a@sender.test",
                                      recipients=["b@dest.test"])
                await s.queue.run_due()
            # A session opened without DANE is not taken for a DANE delivery.
            s.queue.deliverer.dane = None
            await s.queue.enqueue(MESSAGE, return_path="a@sender.test",
                                  recipients=["b@dest.test"])
            await s.queue.run_due()
            s.queue.deliverer.dane = Dane(s.resolver)
            await s.queue.enqueue(MESSAGE, return_path="a@sender.test",
                                  recipients=["b@dest.test"])
            await s.queue.run_due()
            await s.queue.pool.close()
        assert sink.messages == [MESSAGE] * 4
        # The DANE session carried the 1st, 2nd and 4th; the 3rd had a session of its own
        # (a DANE session is not lent to a delivery without DANE, nor the reverse).
        assert [len(x.messages) for x in sink.sessions] == [3, 1]
        assert s.policies() == {"tlsa": (1, []), "no-policy-found": (1, [])}
    run(main())


# ---------------------------------------------------------------------- CNAME MX hosts
def cname_setup(*, at_target=None, at_alias=None, chain_secure: bool = True) -> Setup:
    """mx.dest.test is a CNAME for smtp.provider.test (RFC 7672 2.2.2)."""
    s = Setup(None)
    zone = s.resolver.backend.zone
    zone["mx.dest.test"] = {"CNAME": "smtp.provider.test", "secure": chain_secure}
    zone["smtp.provider.test"] = {"A": "127.0.0.1", "secure": True}
    if at_target is not None:
        zone[f"_{s.port}._tcp.smtp.provider.test"] = {"TLSA": at_target, "secure": True}
    if at_alias is not None:
        zone[f"_{s.port}._tcp.mx.dest.test"] = {"TLSA": at_alias, "secure": True}
    return s


def sni_recording(ctx: ssl.SSLContext) -> list:
    names: list = []
    ctx.sni_callback = lambda _obj, name, _ctx: names.append(name)
    return names


def test_a_cname_mx_host_uses_the_tlsa_records_of_the_expanded_name(pki):
    async def main():
        # DANE-TA; the certificate names the provider's host (the expanded name).
        ctx, _ = pki.context("smtp.provider.test")
        _, other = pki.context("smtp.provider.test")
        s = cname_setup(at_target=[tlsa(2, pki.inter)], at_alias=[tlsa(3, other)])
        names = sni_recording(ctx)
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == [MESSAGE] and s.pending() == []
        assert names == ["smtp.provider.test"]          # SNI: the TLSA base domain
        assert s.policies() == {"tlsa": (1, [])}

        # The expanded name's records win over the MX name's: a mismatch there defers
        # even though the MX name's records would match.
        ctx, cert = pki.context("smtp.provider.test")
        s = cname_setup(at_target=[tlsa(3, other)], at_alias=[tlsa(3, cert)])
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == [] and s.reply()[:2] == [451, "4.7.5"]
    run(main())


def test_a_cname_mx_host_falls_back_to_the_tlsa_records_of_the_mx_name(pki):
    async def main():
        # No TLSA at the expanded name: the MX host name's DANE-TA record applies, and
        # a certificate naming the MX host (not the provider's name) is accepted.
        ctx, _ = pki.context("mx.dest.test")
        names = sni_recording(ctx)
        s = cname_setup(at_alias=[tlsa(2, pki.inter)])
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == [MESSAGE] and names == ["mx.dest.test"]
        # A certificate for a third name fails the DANE-TA name check.
        ctx, _ = pki.context("www.provider.test")
        s = cname_setup(at_alias=[tlsa(2, pki.inter)])
        async with s.sink(ctx) as sink:
            await s.send()
        assert sink.messages == [] and s.reply()[:2] == [451, "4.7.5"]
        assert s.policies() == {"tlsa": (0, ["certificate-host-mismatch"])}
    run(main())


def test_an_unvalidated_cname_means_no_dane(pki):
    async def main():
        ctx, _ = pki.context("smtp.provider.test")
        _, other = pki.context("smtp.provider.test")
        s = cname_setup(at_target=[tlsa(3, other)], at_alias=[tlsa(3, other)],
                        chain_secure=False)
        async with s.sink(ctx) as sink:
            await s.send()
        # Opportunistic TLS as without DANE: the mismatching records are not used.
        assert sink.messages == [MESSAGE] and all(x.tls for x in sink.sessions)
        assert "tlsa" not in s.policies()
    run(main())
