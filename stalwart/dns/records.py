"""Typed DNS answers and errors shared by every caller of the DNS layer.

A lookup either returns an ``Answer`` whose ``records`` is a non-empty tuple of typed values,
or raises one of the ``DnsError`` subclasses below. The three outcomes that mail protocols
tell apart are kept apart here, because they lead to different decisions:

``NxDomain``   the name does not exist (RCODE 3, RFC 1035 4.1.1): permanent. SPF counts it
               as a void lookup (RFC 7208 4.6.4); the queue bounces a recipient domain.
``NoData``     the name exists but has no records of that type (RFC 2308 2.2): permanent
               for that type. For MX it means "use the implicit MX" (RFC 5321 5.1).
``TempFail``   timeout, SERVFAIL, REFUSED, an unparseable or truncated-and-unrecoverable
               answer: try again later (SPF temperror, SMTP 4xx, queue retry).
``InvalidName``the name cannot be a DNS name (empty or over-long label, over 255 octets):
               permanent, and no query is sent.

``secure`` on an answer (and on ``NxDomain``/``NoData``) is the AD bit of the response
(RFC 4035 3.2.3): true only when the configured resolver validated the answer with DNSSEC.
It is meaningful only with a trusted, validating resolver on a secure path (loopback),
which is the deployment RFC 7672 (DANE) assumes. ``canonical`` on an answer (and on
``Addresses``) is the name the records belong to when the asked name is a CNAME (chain).

Record values (``Answer.records``):

=====  =============================================================================
A      ``str`` IPv4 address          AAAA  ``str`` IPv6 address (compressed form)
MX     ``MX(preference, exchange)``; ``exchange`` lower case, no trailing dot; the root
       (null MX, RFC 7505) is ``""``
TXT    ``str``: the character-strings of one record joined with nothing in between
       (RFC 7208 3.3, RFC 6376 3.6.2.2), decoded as UTF-8 with invalid bytes replaced
TLSA   ``TLSA(usage, selector, mtype, data)`` (RFC 6698 2.1)
PTR    ``str`` host name, lower case, no trailing dot
=====  =============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = [
    "Answer", "MX", "TLSA", "MxHost", "MxResult", "Addresses",
    "DnsError", "NxDomain", "NoData", "TempFail", "InvalidName", "join_txt",
]


@dataclass(frozen=True, slots=True)
class MX:
    preference: int
    exchange: str


@dataclass(frozen=True, slots=True)
class TLSA:
    usage: int        # 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
    selector: int     # 0 full certificate, 1 SubjectPublicKeyInfo
    mtype: int        # 0 exact, 1 SHA-256, 2 SHA-512
    data: bytes


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    name: str          # the queried name, lower case, no trailing dot
    rdtype: str        # "MX", "TXT", ...
    records: tuple[T, ...]
    ttl: int           # seconds the answer may be cached (as served, before our clamps)
    secure: bool = False
    #: The owner of ``records`` when the name is an alias: the CNAME chain's final target
    #: (RFC 1034 3.6.2); ``""`` when there was no CNAME. ``secure`` covers the whole chain
    #: (a validating resolver sets AD only when every RRset of the answer validated).
    canonical: str = ""


@dataclass(frozen=True, slots=True)
class MxHost:
    preference: int
    host: str


@dataclass(frozen=True, slots=True)
class MxResult:
    """Where mail for ``domain`` goes (RFC 5321 5.1, RFC 7505).

    ``hosts`` is in the order to try: ascending preference, equal preferences shuffled.
    ``implicit``: the domain has no MX records, so the domain itself is the one host.
    ``null``: the domain publishes a null MX: it accepts no mail; ``hosts`` is empty.
    """

    domain: str
    hosts: tuple[MxHost, ...]
    implicit: bool = False
    null: bool = False
    secure: bool = False


@dataclass(frozen=True, slots=True)
class Addresses:
    """The A and AAAA records of a host; either tuple may be empty (never both)."""

    host: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    secure: bool = False
    #: The CNAME-expanded name of ``host`` (``""``: ``host`` is not an alias). DANE looks
    #: for TLSA records there first when the chain validated (RFC 7672 2.2.2).
    canonical: str = ""


class DnsError(Exception):
    """A lookup that returned no records. ``secure``: the (negative) answer was validated."""

    permanent = True

    def __init__(self, name: str, rdtype: str, detail: str = "", *, ttl: int = 0,
                 secure: bool = False) -> None:
        self.name = name
        self.rdtype = rdtype
        self.detail = detail
        self.ttl = ttl
        self.secure = secure
        super().__init__(f"{name} {rdtype}: {detail or self.describe}")

    describe = "lookup failed"


class NxDomain(DnsError):
    describe = "no such domain"


class NoData(DnsError):
    describe = "no records of this type"


class TempFail(DnsError):
    permanent = False
    describe = "temporary DNS failure"


class InvalidName(DnsError):
    describe = "not a valid DNS name"


def join_txt(strings: "tuple[bytes, ...] | list[bytes]") -> str:
    """One TXT record's character-strings as one text (RFC 7208 3.3: no separator)."""
    return b"".join(strings).decode("utf-8", "replace")
