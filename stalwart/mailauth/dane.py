"""DANE for SMTP (RFC 7672, on RFC 6698 and RFC 7671): TLSA checks of the MX hosts we
deliver to, when the resolver validates DNSSEC.

The queue's deliverer (``stalwart.queue.delivery``) asks, per delivery attempt and MX
host, ``await Dane.host(domain, host, port, mx_secure=, addr_secure=) -> DaneHost``:

========================  ===============================================================
MX or address answer      ``none``: no DANE (RFC 7672 2.2.1: DANE needs a validated MX
not validated (no AD)     RRset, or a validated denial for the implicit MX, and validated
                          address records of the host); opportunistic TLS as before.
TLSA at ``_<port>._tcp.   looked up only then (port 25 in production, ``queue.mx-port``).
<host>``
validated, >= 1 usable    ``usable``: STARTTLS required, the server certificate must match
record                    (below); a mismatch is a temporary failure of that host (next
                          MX, then retry), never a clear-text or unchecked retry.
validated, none usable    ``unusable``: STARTTLS required, certificate not checked
                          (RFC 7672 2.2, "unusable" TLSA RRset).
not validated, or a       ``none``: pre-DANE opportunistic TLS (RFC 7672 2.2).
validated NXDOMAIN/NODATA
lookup error (SERVFAIL:   ``error``: the host is not used, 451 4.7.5 (RFC 7672 2.1.1: a
bogus or timed out)       bogus or indeterminate answer is a lookup error); a bogus MX or
                          address answer already fails the lookup itself (451 4.4.3).
========================  ===============================================================

Usable records (RFC 7672 3.1, RFC 7671): usage DANE-TA(2) and DANE-EE(3) (PKIX-TA(0) and
PKIX-EE(1) are unusable, RFC 7672 3.1.3), selector 0 (certificate) or 1
(SubjectPublicKeyInfo), matching type 0 (exact), 1 (SHA-256, 32 octets) or 2 (SHA-512,
64 octets); anything else (or a digest of the wrong length, or empty data) is unusable.
Digest agility (RFC 7671 9): for one usage and selector, SHA-256 records are ignored when
SHA-512 ones are present.

Matching (``verify_connection``):

- DANE-EE(3): the server's own certificate (or its public key) matches; no name check and
  no validity dates (RFC 7672 3.1.1, RFC 7671 5.1). Only the leaf is needed, which Python's
  ``ssl`` gives in its no-verification mode (``getpeercert(binary_form=True)``); the TLS
  handshake itself proves the server holds the leaf's private key.
- DANE-TA(2): a certificate of the chain the server sent, other than its own, matches
  (a ``2 0 0`` record carries the whole trust anchor, which need not be sent); the leaf
  must chain to it (signatures, validity dates, CA basic constraints; checked with
  ``cryptography.x509.verification``, the matched certificate as the only trust anchor)
  and must name the MX host (the TLSA base domain; RFC 7672 3.2.2), in a subjectAltName
  dNSName or, without those, the CN, ``*.`` matching one left-most label. A leaf with an
  extendedKeyUsage must allow serverAuth. The chain comes from ``get_unverified_chain()``
  (public from Python 3.13; on 3.10-3.12 the ``_ssl`` socket object has it under the same
  name, which is what we call on 3.11); where neither exists, DANE-TA records are
  treated as unusable (``TA_SUPPORTED``). A ``2 1 x`` trust anchor must be sent by the
  server (RFC 7672 3.1.2 requires it); one that is only in DNS is not found.

CNAME MX hosts (RFC 7672 2.2.2): when the MX host name is an alias and its address answer
validated (a validating resolver sets AD only when every CNAME of the chain validated
too), TLSA records are looked up at the fully expanded name first, then at the MX host
name; the name where they were found is the TLSA base domain (and the SNI name), and
the DANE-TA name check accepts the base domain, the MX host name and the expanded name.
An unvalidated chain means no DANE at all (the address answer is not secure).

Not done: DANE for non-MX routes (smarthosts).

MTA-STS (RFC 8461 2): a host with usable TLSA records is governed by DANE only; its
MTA-STS MX match and WebPKI check are not applied, and a failing DANE check is never
rescued by MTA-STS. TLS-RPT (RFC 8460): sessions to DANE hosts are counted under a
``tlsa`` policy whose policy-string is the TLSA RRset.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from stalwart.dns import TLSA, DnsError, NoData, NxDomain, Resolver, TempFail

__all__ = ["Dane", "DaneHost", "DaneError", "usable_records", "record_matches",
           "spki_of", "verify_certificates", "verify_connection", "peer_chain",
           "tlsa_text", "TA_SUPPORTED", "install"]

log = logging.getLogger("stalwart.mailauth.dane")

DANE_TA, DANE_EE = 2, 3
_DIGEST_LEN = {1: 32, 2: 64}


def _chain_supported() -> bool:
    if hasattr(ssl.SSLObject, "get_unverified_chain"):
        return True
    try:
        import _ssl
    except ImportError:                                  # pragma: no cover
        return False
    return hasattr(_ssl._SSLSocket, "get_unverified_chain")


#: Can the server's chain be read after a handshake without verification? DANE-TA needs it.
TA_SUPPORTED = _chain_supported()


class DaneError(ValueError):
    """A certificate that does not satisfy the TLSA records. ``kind`` is the TLS-RPT
    result type (RFC 8460 4.3)."""

    def __init__(self, message: str, kind: str = "tlsa-invalid") -> None:
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------- records
def tlsa_text(record: TLSA) -> str:
    """Presentation form, ``3 1 1 ab12...`` (TLS-RPT policy-string, logs)."""
    return f"{record.usage} {record.selector} {record.mtype} {record.data.hex()}"


def _well_formed(r: TLSA, *, ta_supported: bool) -> bool:
    if r.usage == DANE_EE or (r.usage == DANE_TA and ta_supported):
        pass
    else:
        return False                 # PKIX-TA/EE (RFC 7672 3.1.3), unknown, or no chain
    if r.selector not in (0, 1) or r.mtype not in (0, 1, 2) or not r.data:
        return False
    return r.mtype == 0 or len(r.data) == _DIGEST_LEN[r.mtype]


def usable_records(records: Iterable[TLSA], *, ta_supported: bool | None = None
                   ) -> list[TLSA]:
    """The records of a TLSA RRset an SMTP client may use (see the module docstring)."""
    ta = TA_SUPPORTED if ta_supported is None else ta_supported
    good = [r for r in records if isinstance(r, TLSA) and _well_formed(r, ta_supported=ta)]
    strong = {(r.usage, r.selector) for r in good if r.mtype == 2}
    return [r for r in good if not (r.mtype == 1 and (r.usage, r.selector) in strong)]


# ---------------------------------------------------------------------- DER
def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``pos``."""
    if pos + 2 > len(der):
        raise ValueError("truncated DER")
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(der):
            raise ValueError("bad DER length")
        length = int.from_bytes(der[pos:pos + n], "big")
        pos += n
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def spki_of(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a DER certificate, as the octets it was encoded with
    (selector 1, RFC 6698 2.1.2). ``ValueError`` for anything that is not a certificate."""
    tag, start, _ = _tlv(cert_der, 0)                  # Certificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    tag, pos, tbs_end = _tlv(cert_der, start)          # tbsCertificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    tag, _, end = _tlv(cert_der, pos)
    if tag == 0xA0:                                    # [0] version
        pos = end
    for _field in range(5):                            # serial, sigalg, issuer, validity, subject
        _, _, pos = _tlv(cert_der, pos)
    tag, _, end = _tlv(cert_der, pos)
    if tag != 0x30 or end > tbs_end:
        raise ValueError("no SubjectPublicKeyInfo")
    return cert_der[pos:end]


def record_matches(record: TLSA, cert_der: bytes) -> bool:
    """Does ``cert_der`` match the selector, matching type and data of ``record``?"""
    try:
        data = cert_der if record.selector == 0 else spki_of(cert_der)
    except ValueError:
        return False
    if record.mtype == 1:
        data = hashlib.sha256(data).digest()
    elif record.mtype == 2:
        data = hashlib.sha512(data).digest()
    elif record.mtype != 0:
        return False
    return data == record.data


# ---------------------------------------------------------------------- verification
def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _name_matches(pattern: str, host: str) -> bool:
    pattern, host = _host(pattern), _host(host)
    if not pattern or not host:
        return False
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first and dot and rest == pattern[2:])
    return pattern == host


def _names(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = list(san.value.get_values_for_type(x509.DNSName))
        if names:
            return names
    except x509.ExtensionNotFound:
        pass
    return [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
            if isinstance(a.value, str)]


def _server_auth_allowed(cert: Any) -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return (ExtendedKeyUsageOID.SERVER_AUTH in eku
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku)


def _verify_ta(leaf_der: bytes, chain: Sequence[bytes], records: Sequence[TLSA],
               names: Sequence[str], now: datetime.datetime | None) -> str:
    """DANE-TA(2): the leaf chains to a certificate that matches a record. Returns a
    description of the match or raises ``DaneError``."""
    from cryptography import x509
    from cryptography.x509 import verification as v

    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        rest = [x509.load_der_x509_certificate(d) for d in chain[1:]]
    except ValueError as exc:
        raise DaneError(f"unreadable certificate: {exc}", "validation-failure") from None
    anchors: list[tuple[Any, TLSA]] = []
    for der, cert in zip(chain[1:], rest):
        for r in records:
            if record_matches(r, der):
                anchors.append((cert, r))
                break
    for r in records:                        # 2 0 0: the anchor itself is in DNS
        if r.selector == 0 and r.mtype == 0 and r.data != leaf_der:
            try:
                anchors.append((x509.load_der_x509_certificate(r.data), r))
            except ValueError:
                continue
    if not anchors:
        raise DaneError("no certificate of the chain matches the DANE-TA records")
    ca_policy = v.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, v.Criticality.AGNOSTIC, None)
    ee_policy = v.ExtensionPolicy.permit_all()
    problem: DaneError | None = None
    for anchor, record in anchors:
        builder = v.PolicyBuilder().store(v.Store([anchor])).extension_policies(
            ca_policy=ca_policy, ee_policy=ee_policy)
        if now is not None:
            builder = builder.time(now)
        try:
            builder.build_client_verifier().verify(leaf, rest)
        except v.VerificationError as exc:
            text = str(exc)
            kind = "certificate-expired" if "not valid at validation time" in text \
                else "certificate-not-trusted"
            problem = DaneError(f"the chain does not verify to the DANE-TA anchor "
                                f"{anchor.subject.rfc4514_string()}: {text}", kind)
            continue
        if not _server_auth_allowed(leaf):
            raise DaneError("the certificate's extendedKeyUsage excludes serverAuth",
                            "validation-failure")
        cert_names = _names(leaf)
        if not any(_name_matches(p, n) for p in cert_names for n in names):
            raise DaneError(f"the certificate names {', '.join(cert_names[:5]) or 'nothing'}, "
                            f"not {' or '.join(dict.fromkeys(names))}",
                            "certificate-host-mismatch")
        return f"DANE-TA {tlsa_text(record)[:24]}... ({anchor.subject.rfc4514_string()})"
    assert problem is not None
    raise problem


def verify_certificates(chain: Sequence[bytes], records: Sequence[TLSA], names: Sequence[str],
                        *, now: datetime.datetime | None = None) -> str:
    """Check the server's certificates (``chain[0]`` its own; the rest as sent, possibly
    only the leaf) against usable ``records``; ``names`` are the reference identifiers for
    DANE-TA (the MX host). Returns what matched, or raises ``DaneError``."""
    if not chain or not chain[0]:
        raise DaneError("the server sent no certificate", "validation-failure")
    leaf = chain[0]
    for r in records:
        if r.usage == DANE_EE and record_matches(r, leaf):
            return f"DANE-EE {tlsa_text(r)[:24]}..."
    ta = [r for r in records if r.usage == DANE_TA]
    if ta:
        try:
            return _verify_ta(leaf, chain, ta, names, now)
        except DaneError:
            raise
        except Exception as exc:      # malformed extensions, unsupported keys: no match
            raise DaneError(f"the certificate chain cannot be checked: {exc!r}"[:300],
                            "validation-failure") from None
    raise DaneError("the server certificate matches none of the TLSA records")


def peer_chain(ssl_object: Any) -> list[bytes]:
    """The certificates the server sent, its own first (DER), as unverified as the
    handshake was; just the leaf when the chain cannot be read."""
    leaf = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not leaf:
        return []
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    chain: list[bytes] = []
    if getter is not None:
        try:
            for cert in getter() or ():
                if isinstance(cert, (bytes, bytearray)):
                    chain.append(bytes(cert))
                else:                                    # _ssl.Certificate (3.10-3.12)
                    import _ssl
                    chain.append(cert.public_bytes(_ssl.ENCODING_DER))
        except (ssl.SSLError, ValueError, AttributeError):
            chain = []
    if not chain or chain[0] != leaf:
        chain = [leaf]
    return chain


def verify_connection(ssl_object: Any, records: Sequence[TLSA], names: Sequence[str]) -> str:
    """``verify_certificates`` on the certificates of a finished TLS handshake."""
    return verify_certificates(peer_chain(ssl_object), records, names)


# ---------------------------------------------------------------------- per host
@dataclass(slots=True)
class DaneHost:
    """The DANE state of one MX host for one delivery attempt (see the module docstring).

    ``state``: ``none`` | ``usable`` | ``unusable`` | ``error``. ``records`` is the whole
    validated TLSA RRset, ``usable`` the records used for matching."""

    domain: str
    host: str
    state: str = "none"
    records: tuple[TLSA, ...] = ()
    usable: tuple[TLSA, ...] = ()
    reason: str = ""
    recorder: Any = None
    key: Any = field(default=None)
    #: The TLSA base domain (RFC 7672 2.2.2): where the records were found, the SNI name.
    base: str = ""
    #: Reference identifiers for the DANE-TA name check (RFC 7672 3.2.2).
    names: tuple[str, ...] = ()

    @property
    def authenticated(self) -> bool:
        """DANE authentication applies (usable records): MTA-STS does not."""
        return self.state == "usable"

    @property
    def mandatory(self) -> bool:
        """STARTTLS is required (usable or unusable validated TLSA RRset)."""
        return self.state in ("usable", "unusable")

    @property
    def tag(self) -> Any:
        """Part of the connection-pool key: sessions checked against other records (or
        none) are not reused for this host."""
        return (self.state, self.usable) if self.mandatory else None

    def _policy_key(self) -> Any:
        if self.key is None:
            from .tlsrpt import PolicyKey

            self.key = PolicyKey("tlsa", tuple(tlsa_text(r) for r in self.records))
        return self.key

    def check(self, ssl_object: Any) -> str:
        """Match the certificates of a finished handshake; ``DaneError`` if they fail."""
        return verify_connection(ssl_object, self.usable, list(self.names or (self.host,)))

    # TLS-RPT, the same calls as ``mtasts.DeliveryPolicy``
    def session(self, host: str, ip: str, client: Any) -> None:
        if self.recorder is None:
            return
        if not getattr(client, "tls", False):
            self.recorder.failure(self.domain, self._policy_key(), "starttls-not-supported",
                                  mx_host=host, receiving_ip=ip)
        elif self.state == "unusable":
            self.recorder.failure(self.domain, self._policy_key(), "tlsa-invalid",
                                  mx_host=host, receiving_ip=ip,
                                  info="no usable TLSA record: TLS without authentication")
        else:
            self.recorder.success(self.domain, self._policy_key())

    def failed(self, host: str, ip: str, exc: DaneError) -> None:
        if self.recorder is not None:
            self.recorder.failure(self.domain, self._policy_key(), exc.kind, mx_host=host,
                                  receiving_ip=ip, info=str(exc)[:200])

    def tls_failed(self, host: str, ip: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.failure(self.domain, self._policy_key(), "validation-failure",
                                  mx_host=host, receiving_ip=ip, info=message[:200])

    def lookup_failed(self) -> None:
        if self.recorder is not None:
            from .tlsrpt import PolicyKey

            self.recorder.failure(self.domain, PolicyKey("tlsa"), "dnssec-invalid",
                                  mx_host=self.host, info=self.reason[:200])


class Dane:
    """TLSA lookups for the queue's deliverer (one per queue process)."""

    def __init__(self, resolver: Resolver, *, ta_supported: bool | None = None) -> None:
        self.resolver = resolver
        self.ta_supported = TA_SUPPORTED if ta_supported is None else ta_supported

    async def host(self, domain: str, host: str, port: int, *, mx_secure: bool,
                   addr_secure: bool, expanded: str = "", recorder: Any = None) -> DaneHost:
        """The DANE state of ``host`` (an MX host of ``domain``) for connections to
        ``port``. ``expanded``: the CNAME-expanded name of ``host`` when its (validated)
        address answer came through a CNAME chain; TLSA records are looked up there first
        and, when there are none, at ``host`` (RFC 7672 2.2.2). Never raises for DNS
        trouble (that is ``state == "error"``)."""
        result = DaneHost(domain, _host(host), recorder=recorder)
        result.base = result.host
        if not mx_secure:
            result.reason = "MX records not DNSSEC-validated"
            return result
        if not addr_secure:
            result.reason = f"address records of {host} not DNSSEC-validated"
            return result
        expanded = _host(expanded) if expanded else ""
        bases = [expanded, result.host] if expanded and expanded != result.host \
            else [result.host]
        reasons: list[str] = []
        for base in bases:
            name = f"_{int(port)}._tcp.{base}"
            try:
                answer = await self.resolver.tlsa(name)
            except (NxDomain, NoData) as exc:
                reasons.append(f"no TLSA records at {name}" + ("" if exc.secure else
                                                               " (denial not validated)"))
                continue
            except TempFail as exc:
                result.state = "error"
                result.reason = (f"TLSA lookup for {name} failed (DNSSEC validation failure "
                                 f"or server failure): {exc.detail or exc.describe}")
                result.lookup_failed()
                return result
            except DnsError as exc:                   # InvalidName: no DANE for that name
                reasons.append(f"TLSA lookup for {name}: {exc.describe}")
                continue
            if not answer.secure:
                reasons.append(f"TLSA records at {name} not DNSSEC-validated")
                continue
            result.base = base
            # Reference identifiers (RFC 7672 3.2.2): the TLSA base domain and the MX host
            # name, both the original and, through a validated chain, the expanded one.
            result.names = tuple(dict.fromkeys([base, *bases]))
            result.records = tuple(answer.records)
            result.usable = tuple(usable_records(answer.records,
                                                 ta_supported=self.ta_supported))
            result.state = "usable" if result.usable else "unusable"
            result.reason = (f"{len(result.usable)} usable of {len(result.records)} TLSA "
                             f"record(s) at {name}")
            return result
        result.reason = "; ".join(reasons)
        return result


def install(deliverer: Any, resolver: Resolver, config: Any) -> None:
    """Turn DANE on in the queue process (``queue.dane.enable``)."""
    if config.get("queue.dane.enable"):
        deliverer.dane = Dane(resolver)
        if not TA_SUPPORTED:
            log.warning("this Python cannot read a server's certificate chain: DANE-TA(2) "
                        "TLSA records are treated as unusable")
