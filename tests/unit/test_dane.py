"""DANE (RFC 7672, RFC 6698, RFC 7671): which TLSA records are usable, how a certificate
is matched (DANE-EE without name or date checks, DANE-TA with the chain and the MX name),
and the DANE state of an MX host from the DNSSEC status of the answers (a fake resolver).
Certificates are generated here with ``cryptography``."""

from __future__ import annotations

import asyncio
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stalwart.dns import TEMPFAIL, TLSA, FakeBackend, Resolver
from stalwart.mailauth.dane import (Dane, DaneError, DaneHost, record_matches, spki_of,
                                    tlsa_text, usable_records, verify_certificates)
from stalwart.mailauth.tlsrpt import TlsRptRecorder

NOW = datetime.datetime.now(datetime.timezone.utc)
DER = serialization.Encoding.DER


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(cn: str, *, issuer: tuple | None = None, ca: bool = False, san=None,
              days=(-1, 30), key=None, eku=None) -> tuple[x509.Certificate, object]:
    """A certificate for ``cn`` signed by ``issuer`` (cert, key), or self-signed."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (_name(cn), key)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW + datetime.timedelta(days=days[0]))
         .not_valid_after(NOW + datetime.timedelta(days=days[1])))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]),
                            critical=False)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key, hashes.SHA256()), key


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(DER)


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def rec(usage: int, selector: int, mtype: int, cert: x509.Certificate) -> TLSA:
    data = der(cert) if selector == 0 else spki(cert)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return TLSA(usage, selector, mtype, data)


@pytest.fixture(scope="module")
def pki():
    root = make_cert("Test Root", ca=True)
    inter = make_cert("Test Intermediate", issuer=root, ca=True)
    leaf = make_cert("mx.dest.test", issuer=inter, san=["mx.dest.test"])
    return root, inter, leaf


# ---------------------------------------------------------------------- records
def test_usable_records_follow_rfc7672_and_rfc7671():
    sha256, sha512 = b"\x01" * 32, b"\x02" * 64
    records = [
        TLSA(0, 0, 1, sha256),            # PKIX-TA: unusable for SMTP (RFC 7672 3.1.3)
        TLSA(1, 1, 1, sha256),            # PKIX-EE: likewise
        TLSA(4, 1, 1, sha256),            # unknown usage
        TLSA(3, 2, 1, sha256),            # unknown selector
        TLSA(3, 1, 3, sha256),            # unknown matching type
        TLSA(3, 1, 1, b"\x01" * 31),      # SHA-256 of the wrong length
        TLSA(3, 1, 2, sha256),            # SHA-512 of the wrong length
        TLSA(3, 0, 0, b""),               # empty
        TLSA(3, 1, 1, sha256),
        TLSA(2, 0, 1, sha256),
    ]
    assert usable_records(records, ta_supported=True) == [TLSA(3, 1, 1, sha256),
                                                          TLSA(2, 0, 1, sha256)]
    # Without the server's chain, DANE-TA cannot be checked: unusable.
    assert usable_records(records, ta_supported=False) == [TLSA(3, 1, 1, sha256)]
    # Digest agility (RFC 7671 9): SHA-512 present -> SHA-256 of the same usage and
    # selector ignored; other pairs and exact matches untouched.
    agile = [TLSA(3, 1, 1, sha256), TLSA(3, 1, 2, sha512), TLSA(3, 0, 1, sha256),
             TLSA(3, 1, 0, b"key")]
    assert usable_records(agile, ta_supported=True) == [TLSA(3, 1, 2, sha512),
                                                        TLSA(3, 0, 1, sha256),
                                                        TLSA(3, 1, 0, b"key")]
    assert usable_records([TLSA(1, 1, 1, sha256)]) == []
    assert tlsa_text(TLSA(3, 1, 1, b"\xab\xcd")) == "3 1 1 abcd"


def test_spki_is_the_encoded_subject_public_key_info(pki):
    _root, _inter, (leaf, _key) = pki
    rsa_cert, _ = make_cert("rsa.test", key=rsa.generate_private_key(65537, 2048))
    for cert in (leaf, rsa_cert):
        assert spki_of(der(cert)) == spki(cert)
    # A v1 certificate has no [0] version field: the walk starts at the serial number.
    def tlv(tag: int, body: bytes) -> bytes:
        return bytes([tag, len(body)]) + body
    key_info = tlv(0x30, tlv(0x30, tlv(0x06, b"\x2a\x03")) + tlv(0x03, b"\x00\x04ab"))
    tbs = tlv(0x02, b"\x07") + tlv(0x30, b"") + tlv(0x30, b"") + tlv(0x30, b"") \
        + tlv(0x30, b"") + key_info
    assert spki_of(tlv(0x30, tlv(0x30, tbs) + tlv(0x30, b"") + tlv(0x03, b"\x00"))) == key_info
    for junk in (b"", b"\x30", b"\x30\x05\x30\x03\x02\x01", b"\x04\x02ab", der(leaf)[:60]):
        with pytest.raises(ValueError):
            spki_of(junk)


def test_record_matches_every_selector_and_matching_type(pki):
    _root, _inter, (leaf, _key) = pki
    other, _ = make_cert("other.test")
    for selector in (0, 1):
        for mtype in (0, 1, 2):
            r = rec(3, selector, mtype, leaf)
            assert record_matches(r, der(leaf)), (selector, mtype)
            assert not record_matches(r, der(other)), (selector, mtype)
    # Same key, new certificate: selector 1 still matches, selector 0 does not.
    renewed, _ = make_cert("mx.dest.test", key=_key, issuer=pki[1])
    assert record_matches(rec(3, 1, 1, leaf), der(renewed))
    assert not record_matches(rec(3, 0, 1, leaf), der(renewed))
    assert not record_matches(TLSA(3, 1, 1, b"x" * 32), b"not a certificate")


# ---------------------------------------------------------------------- DANE-EE
def test_dane_ee_ignores_names_and_dates(pki):
    expired, _ = make_cert("somewhere.else", days=(-30, -1))     # wrong name, expired
    for r in (rec(3, 1, 1, expired), rec(3, 0, 2, expired), rec(3, 1, 0, expired)):
        assert verify_certificates([der(expired)], [r], ["mx.dest.test"]).startswith("DANE-EE")
    with pytest.raises(DaneError) as e:
        verify_certificates([der(pki[2][0])], [rec(3, 1, 1, expired)], ["mx.dest.test"])
    assert e.value.kind == "tlsa-invalid"
    with pytest.raises(DaneError) as e:
        verify_certificates([], [rec(3, 1, 1, expired)], ["mx.dest.test"])
    assert e.value.kind == "validation-failure"


# ---------------------------------------------------------------------- DANE-TA
def test_dane_ta_with_the_intermediate_or_the_root_as_anchor(pki):
    (root, _), (inter, _), (leaf, _) = pki
    chain = [der(leaf), der(inter), der(root)]
    names = ["mx.dest.test"]
    for anchor in (inter, root):
        for selector, mtype in ((0, 1), (1, 1), (1, 2), (0, 0)):
            got = verify_certificates(chain, [rec(2, selector, mtype, anchor)], names)
            assert got.startswith("DANE-TA")
    # The root not sent: only a full "2 0 0" record can stand in for it.
    assert verify_certificates(chain[:2], [rec(2, 0, 0, root)], names).startswith("DANE-TA")
    with pytest.raises(DaneError) as e:
        verify_certificates(chain[:2], [rec(2, 1, 1, root)], names)
    assert e.value.kind == "tlsa-invalid"
    # A DANE-TA record for the leaf itself is not an anchor.
    with pytest.raises(DaneError):
        verify_certificates(chain, [rec(2, 1, 1, leaf)], names)


def test_dane_ta_checks_the_name(pki):
    (root, _), (inter, _), (leaf, _) = pki
    chain = [der(leaf), der(inter)]
    with pytest.raises(DaneError) as e:
        verify_certificates(chain, [rec(2, 1, 1, inter)], ["mx.other.test"])
    assert e.value.kind == "certificate-host-mismatch"
    wild, _ = make_cert("wild", issuer=pki[1], san=["*.dest.test"])
    assert verify_certificates([der(wild), der(inter)], [rec(2, 1, 1, inter)],
                               ["mx.dest.test"]).startswith("DANE-TA")
    with pytest.raises(DaneError):
        verify_certificates([der(wild), der(inter)], [rec(2, 1, 1, inter)], ["a.mx.dest.test"])
    # No subjectAltName: the CN is the name.
    cn_only, _ = make_cert("mx.dest.test", issuer=pki[1])
    assert verify_certificates([der(cn_only), der(inter)], [rec(2, 1, 1, inter)],
                               ["MX.Dest.Test."]).startswith("DANE-TA")
    client_only, _ = make_cert("mx.dest.test", issuer=pki[1], san=["mx.dest.test"],
                               eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    with pytest.raises(DaneError, match="serverAuth"):
        verify_certificates([der(client_only), der(inter)], [rec(2, 1, 1, inter)],
                            ["mx.dest.test"])


def test_dane_ta_checks_the_chain(pki):
    (root, _), (inter, inter_key), _ = pki
    expired, _ = make_cert("mx.dest.test", issuer=pki[1], san=["mx.dest.test"], days=(-9, -1))
    with pytest.raises(DaneError) as e:
        verify_certificates([der(expired), der(inter)], [rec(2, 1, 1, inter)], ["mx.dest.test"])
    assert e.value.kind == "certificate-expired"
    # An attacker's leaf and intermediate that only claim the real intermediate's name.
    fake_inter, fake_key = make_cert("Test Intermediate", ca=True)
    forged, _ = make_cert("mx.dest.test", issuer=(fake_inter, fake_key), san=["mx.dest.test"])
    with pytest.raises(DaneError) as e:
        verify_certificates([der(forged), der(inter), der(fake_inter)],
                            [rec(2, 1, 1, inter)], ["mx.dest.test"])
    assert e.value.kind == "certificate-not-trusted"
    # An anchor that is not a CA cannot issue.
    not_ca, not_ca_key = make_cert("Not A CA")
    issued, _ = make_cert("mx.dest.test", issuer=(not_ca, not_ca_key), san=["mx.dest.test"])
    with pytest.raises(DaneError):
        verify_certificates([der(issued), der(not_ca)], [rec(2, 1, 1, not_ca)],
                            ["mx.dest.test"])


# ---------------------------------------------------------------------- per host
TLSA_OK = (3, 1, 1, "11" * 32)
PKIX = (1, 1, 1, "22" * 32)


def zone(*, mx_secure=True, addr_secure=True, tlsa=None, tlsa_secure=True) -> dict:
    z = {"dest.test": {"MX": [(10, "mx.dest.test")], "secure": mx_secure},
         "mx.dest.test": {"A": "127.0.0.1", "secure": addr_secure}}
    if tlsa is not None:
        z["_25._tcp.mx.dest.test"] = (tlsa if tlsa == TEMPFAIL else
                                      {"TLSA": tlsa, "secure": tlsa_secure})
    return z


async def host_state(z: dict, port: int = 25, recorder=None) -> DaneHost:
    resolver = Resolver(FakeBackend(z))
    mx = await resolver.mx_hosts("dest.test")
    addrs = await resolver.addresses("mx.dest.test")
    return await Dane(resolver, ta_supported=True).host(
        "dest.test", "mx.dest.test", port, mx_secure=mx.secure, addr_secure=addrs.secure,
        recorder=recorder)


@pytest.mark.parametrize("z,state,reason", [
    (zone(tlsa=[TLSA_OK]), "usable", "1 usable of 1"),
    (zone(tlsa=[TLSA_OK, PKIX]), "usable", "1 usable of 2"),
    (zone(tlsa=[PKIX]), "unusable", "0 usable of 1"),
    (zone(tlsa=[TLSA_OK], mx_secure=False), "none", "MX records not DNSSEC"),
    (zone(tlsa=[TLSA_OK], addr_secure=False), "none", "address records"),
    (zone(tlsa=[TLSA_OK], tlsa_secure=False), "none", "TLSA records at _25._tcp.mx.dest.test "
                                                      "not DNSSEC"),
    (zone(), "none", "no TLSA records"),
    (zone(tlsa=[]), "none", "no TLSA records"),
    (zone(tlsa=TEMPFAIL), "error", "DNSSEC validation failure or server failure"),
])
def test_the_dane_state_of_a_host(z, state, reason):
    got = asyncio.run(host_state(z))
    assert got.state == state and reason in got.reason
    assert got.mandatory == (state in ("usable", "unusable"))
    assert got.authenticated == (state == "usable")


def test_the_tlsa_name_uses_the_delivery_port_and_lookup_errors_are_reported():
    z = zone()
    z["_2525._tcp.mx.dest.test"] = {"TLSA": [TLSA_OK], "secure": True}
    assert asyncio.run(host_state(z, 2525)).state == "usable"
    assert asyncio.run(host_state(z, 25)).state == "none"
    recorder = TlsRptRecorder(clock=lambda: 86400.0 * 10)
    got = asyncio.run(host_state(zone(tlsa=TEMPFAIL), recorder=recorder))
    assert got.state == "error"
    [(key, counts)] = recorder.days[864000]["dest.test"].items()
    assert key.type == "tlsa" and [k[0] for k in counts.failures] == ["dnssec-invalid"]


def test_tls_report_counts_under_the_tlsa_policy():
    recorder = TlsRptRecorder(clock=lambda: 86400.0 * 10)
    host = asyncio.run(host_state(zone(tlsa=[TLSA_OK, PKIX]), recorder=recorder))

    class Client:
        tls = True
    host.session("mx.dest.test", "127.0.0.1", Client())
    host.failed("mx.dest.test", "127.0.0.1", DaneError("no match"))
    Client.tls = False
    host.session("mx.dest.test", "127.0.0.1", Client())
    [(key, counts)] = recorder.days[864000]["dest.test"].items()
    assert key.type == "tlsa" and key.string == (f"3 1 1 {'11' * 32}", f"1 1 1 {'22' * 32}")
    assert counts.success == 1
    assert sorted(k[0] for k in counts.failures) == ["starttls-not-supported", "tlsa-invalid"]


def test_the_queue_process_turns_dane_on_from_the_config():
    from stalwart.config import loads
    from stalwart.mailauth.dane import install

    class Deliverer:
        dane = None
    resolver = Resolver(FakeBackend({}))
    on, off = Deliverer(), Deliverer()
    install(on, resolver, loads(""))                               # the default: on
    install(off, resolver, loads("[queue.dane]\nenable = false\n"))
    assert isinstance(on.dane, Dane) and on.dane.resolver is resolver
    assert off.dane is None
    from stalwart.config import ConfigError
    with pytest.raises(ConfigError, match="queue.dane.enable"):
        loads('[queue.dane]\nenable = "sometimes"\n')


def test_hostile_certificates_are_a_mismatch_never_a_crash(pki):
    (root, _), (inter, _), (leaf, _) = pki
    names = ["mx.dest.test"]
    cases = [
        [der(leaf), b"\x30\x03\x02\x01\x00"],                  # an intermediate that is junk
        [der(leaf), der(inter)[:-10]],                         # truncated
        [b"\x30\x82\xff\xff" + b"\x00" * 20, der(inter)],      # a leaf that is junk
    ]
    for chain in cases:
        with pytest.raises(DaneError) as e:
            verify_certificates(chain, [rec(2, 1, 1, inter), rec(3, 1, 1, root)], names)
        assert e.value.kind in ("validation-failure", "tlsa-invalid")
    # A "2 0 0" record whose data is not a certificate is skipped.
    with pytest.raises(DaneError) as e:
        verify_certificates([der(leaf)], [TLSA(2, 0, 0, b"not a certificate")], names)
    assert e.value.kind == "tlsa-invalid"


def test_dane_ee_does_not_load_cryptography(pki):
    """The queue process stays without ``cryptography`` (about 8 MiB) unless a DANE-TA
    record needs a chain checked: DANE-EE is hashlib and a DER walk."""
    import subprocess
    import sys

    leaf = pki[2][0]
    code = f"""
import sys, hashlib
import stalwart.queue.delivery, stalwart.mailauth.tlsrpt
from stalwart.dns import TLSA
from stalwart.mailauth.dane import verify_certificates, spki_of
der = bytes.fromhex({der(leaf).hex()!r})
record = TLSA(3, 1, 1, hashlib.sha256(spki_of(der)).digest())
assert verify_certificates([der], [record], ["x"]).startswith("DANE-EE")
print("cryptography" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------- CNAME MX hosts
def cname_zone(*, chain_secure=True, at_target=None, at_alias=None,
               target_secure=True) -> dict:
    """mx.dest.test is a CNAME for smtp.provider.test (RFC 7672 2.2.2)."""
    z = {"dest.test": {"MX": [(10, "mx.dest.test")], "secure": True},
         "mx.dest.test": {"CNAME": "smtp.provider.test", "secure": chain_secure},
         "smtp.provider.test": {"A": "127.0.0.1", "secure": True}}
    if at_target is not None:
        z["_25._tcp.smtp.provider.test"] = {"TLSA": at_target, "secure": target_secure}
    if at_alias is not None:
        z["_25._tcp.mx.dest.test"] = {"TLSA": at_alias, "secure": True}
    return z


async def cname_state(z: dict) -> DaneHost:
    resolver = Resolver(FakeBackend(z))
    mx = await resolver.mx_hosts("dest.test")
    addrs = await resolver.addresses("mx.dest.test")
    return await Dane(resolver, ta_supported=True).host(
        "dest.test", "mx.dest.test", 25, mx_secure=mx.secure, addr_secure=addrs.secure,
        expanded=addrs.canonical)


TLSA_OTHER = (3, 1, 1, "33" * 32)


@pytest.mark.parametrize("z,state,base,records", [
    # The expanded name first...
    (cname_zone(at_target=[TLSA_OK], at_alias=[TLSA_OTHER]), "usable", "smtp.provider.test",
     [TLSA_OK]),
    # ... then the MX host name when the expanded name has none.
    (cname_zone(at_alias=[TLSA_OTHER]), "usable", "mx.dest.test", [TLSA_OTHER]),
    # Records at the expanded name that did not validate count as none there.
    (cname_zone(at_target=[TLSA_OK], at_alias=[TLSA_OTHER], target_secure=False), "usable",
     "mx.dest.test", [TLSA_OTHER]),
    (cname_zone(at_target=[PKIX]), "unusable", "smtp.provider.test", [PKIX]),
    (cname_zone(), "none", "mx.dest.test", []),
    # A CNAME that did not validate makes the address answer insecure: no DANE at all.
    (cname_zone(chain_secure=False, at_target=[TLSA_OK], at_alias=[TLSA_OK]), "none",
     "mx.dest.test", []),
])
def test_tlsa_records_of_a_cname_mx_host(z, state, base, records):
    got = asyncio.run(cname_state(z))
    assert got.state == state and got.base == base
    assert [(r.usage, r.selector, r.mtype, r.data.hex()) for r in got.records] == records
    if state != "none":
        # Reference identifiers: the base domain, the expanded name and the MX host name.
        assert set(got.names) == {"smtp.provider.test", "mx.dest.test"}
        assert got.names[0] == base


def test_tlsa_lookup_failure_at_the_expanded_name_is_an_error():
    z = cname_zone(at_alias=[TLSA_OK])
    z["_25._tcp.smtp.provider.test"] = TEMPFAIL
    got = asyncio.run(cname_state(z))
    assert got.state == "error" and "_25._tcp.smtp.provider.test" in got.reason


def test_dane_ta_accepts_the_expanded_and_the_original_name(pki):
    _root, inter, _leaf = pki
    chain_for = {}
    for name in ("smtp.provider.test", "mx.dest.test", "other.test"):
        leaf, _ = make_cert(name, issuer=inter, san=[name])
        chain_for[name] = [der(leaf), der(inter[0])]
    record = TLSA(2, 0, 1, hashlib.sha256(der(inter[0])).digest())
    host = DaneHost("dest.test", "mx.dest.test", state="usable", records=(record,),
                    usable=(record,), base="smtp.provider.test",
                    names=("smtp.provider.test", "mx.dest.test"))
    for name in ("smtp.provider.test", "mx.dest.test"):
        assert "DANE-TA" in verify_certificates(chain_for[name], host.usable, host.names)
    # The name check of a host without CNAME stays with the MX host name only.
    plain = DaneHost("dest.test", "mx.dest.test", state="usable", records=(record,),
                     usable=(record,))
    with pytest.raises(DaneError):
        verify_certificates(chain_for["smtp.provider.test"], plain.usable,
                            list(plain.names or (plain.host,)))
    with pytest.raises(DaneError) as e:
        verify_certificates(chain_for["other.test"], host.usable, host.names)
    assert e.value.kind == "certificate-host-mismatch"
