"""Where lookups go: dnspython's asyncio resolver, or a dict of records for tests.

A backend answers one question, ``await backend.query(name, rdtype) -> Answer``, or
raises ``NxDomain``/``NoData``/``TempFail``. It neither caches nor validates names; the
``Resolver`` in front of it does both, so the fake and the real backend behave the same
above this line.

``DnspythonBackend``
    Queries the configured nameservers (``"ip"``, ``"ip:port"``, ``"[v6]:port"``) or, with
    none, those of ``/etc/resolv.conf``. Each query asks for recursion and sets the AD bit
    (RFC 6840 5.7: a validating resolver then tells us whether it validated) with EDNS0 and
    a 1232-octet payload (the DNS Flag Day 2020 size that avoids IP fragmentation); a
    truncated UDP answer (TC) is asked again over TCP by dnspython, so large TXT sets
    arrive whole. Timeouts, SERVFAIL/REFUSED from every server, and malformed responses are
    ``TempFail``. The negative TTL comes from the SOA in the authority section (RFC 2308 5).

``FakeBackend``
    ``FakeBackend({"example.com": {"MX": [(10, "mx.example.com")], "A": ["192.0.2.1"]}})``.
    Values per type: A/AAAA an address string, MX ``(preference, host)``, TXT a ``str`` or
    ``bytes`` (one string) or a tuple of them (several character-strings of one record),
    TLSA ``(usage, selector, mtype, data-bytes-or-hex)``, PTR a host name. A name mapped to
    ``NXDOMAIN`` does not exist, to ``TEMPFAIL`` times out (per type, too:
    ``{"MX": TEMPFAIL}``); a name absent from the dict is NXDOMAIN; a type absent is NoData.
    ``"secure": True`` in a name's dict marks its answers as DNSSEC-validated; ``"ttl"``
    sets their TTL (default 300). ``"CNAME": "target"`` makes the name an alias: every
    type is answered from the target's entry (chains followed, at most 8 links), with
    ``canonical`` set to the last name and ``secure`` only if every link is secure.
    ``queries`` counts the questions asked, for cache tests.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any, Mapping, Protocol, Sequence

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from .records import MX, TLSA, Answer, NoData, NxDomain, TempFail, join_txt

__all__ = ["Backend", "DnspythonBackend", "FakeBackend", "NXDOMAIN", "TEMPFAIL",
           "parse_nameserver"]


class Backend(Protocol):
    async def query(self, name: str, rdtype: str) -> Answer: ...


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` -> ``("127.0.0.1", 5353)``; ``"::1"``, ``"[::1]:53"``, ``"9.9.9.9"``."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad nameserver address {text!r}")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    ipaddress.ip_address(host)          # raises ValueError for a non-address
    if not 0 < port < 65536:
        raise ValueError(f"bad nameserver port in {text!r}")
    return host, port


def _negative_ttl(response: dns.message.Message | None) -> int:
    if response is None:
        return 0
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(min(rrset.ttl, rrset[0].minimum))
    return 0


def _is_secure(response: dns.message.Message | None) -> bool:
    return response is not None and bool(response.flags & dns.flags.AD)


def _host(name: dns.name.Name) -> str:
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


def _convert(rdtype: str, rdata: Any) -> Any:
    if rdtype in ("A", "AAAA"):
        return str(ipaddress.ip_address(rdata.address))
    if rdtype == "MX":
        return MX(int(rdata.preference), _host(rdata.exchange))
    if rdtype == "TXT":
        return join_txt(rdata.strings)
    if rdtype == "TLSA":
        return TLSA(int(rdata.usage), int(rdata.selector), int(rdata.mtype), bytes(rdata.cert))
    if rdtype == "PTR":
        return _host(rdata.target)
    raise ValueError(f"unsupported record type {rdtype}")


class DnspythonBackend:
    def __init__(self, nameservers: Sequence[str] = (), *, timeout: float = 5.0,
                 lifetime: float = 15.0, request_ad: bool = True, edns_payload: int = 1232) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(ns))
                                          for ns in nameservers]
        else:
            self._resolver = dns.asyncresolver.Resolver(configure=True)
        self._resolver.cache = None
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime
        self._resolver.use_edns(0, 0, edns_payload)
        self._resolver.flags = dns.flags.RD | (dns.flags.AD if request_ad else 0)

    async def query(self, name: str, rdtype: str) -> Answer:
        qname = dns.name.from_text(name)
        try:
            answer = await self._resolver.resolve(qname, rdtype, raise_on_no_answer=False,
                                                  search=False)
        except dns.resolver.NXDOMAIN as exc:
            response = exc.kwargs.get("responses", {}).get(qname)
            raise NxDomain(name, rdtype, ttl=_negative_ttl(response),
                           secure=_is_secure(response)) from None
        except dns.resolver.LifetimeTimeout:
            raise TempFail(name, rdtype, "timed out") from None
        except dns.resolver.NoNameservers as exc:
            raise TempFail(name, rdtype, f"no server answered: {exc}") from None
        except dns.resolver.YXDOMAIN:
            raise TempFail(name, rdtype, "name too long after DNAME substitution") from None
        except dns.exception.DNSException as exc:
            raise TempFail(name, rdtype, f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise TempFail(name, rdtype, f"network error: {exc}") from None
        response = answer.response
        if answer.rrset is None or len(answer.rrset) == 0:
            raise NoData(name, rdtype, ttl=_negative_ttl(response), secure=_is_secure(response))
        records = []
        for rdata in answer.rrset:
            try:
                records.append(_convert(rdtype, rdata))
            except (ValueError, TypeError, AttributeError):
                continue                     # one malformed record does not spoil the set
        if not records:
            raise TempFail(name, rdtype, "no usable record in the answer")
        canonical = _host(answer.canonical_name)
        return Answer(name, rdtype, tuple(records), int(answer.rrset.ttl), _is_secure(response),
                      canonical if canonical != name.rstrip(".").lower() else "")


NXDOMAIN = "NXDOMAIN"
TEMPFAIL = "TEMPFAIL"


def _fake_value(rdtype: str, value: Any) -> Any:
    if rdtype in ("A", "AAAA"):
        ip = ipaddress.ip_address(value)
        if (rdtype == "A") != (ip.version == 4):
            raise ValueError(f"{value!r} is not an {rdtype} address")
        return str(ip)
    if rdtype == "MX":
        pref, host = value
        return MX(int(pref), str(host).rstrip(".").lower())
    if rdtype == "TXT":
        parts = value if isinstance(value, (tuple, list)) else (value,)
        return join_txt([p.encode() if isinstance(p, str) else bytes(p) for p in parts])
    if rdtype == "TLSA":
        usage, selector, mtype, data = value
        return TLSA(int(usage), int(selector), int(mtype),
                    bytes.fromhex(data) if isinstance(data, str) else bytes(data))
    if rdtype == "PTR":
        return str(value).rstrip(".").lower()
    raise ValueError(f"unsupported record type {rdtype}")


class FakeBackend:
    def __init__(self, zone: Mapping[str, Any]) -> None:
        self.zone = {k.rstrip(".").lower(): v for k, v in zone.items()}
        self.queries: Counter[tuple[str, str]] = Counter()

    def set(self, name: str, value: Any) -> None:
        self.zone[name.rstrip(".").lower()] = value

    async def query(self, name: str, rdtype: str) -> Answer:
        self.queries[(name, rdtype)] += 1
        entry = self.zone.get(name)
        chain_secure, owner = True, name
        for _link in range(9):
            if not isinstance(entry, Mapping) or "CNAME" not in entry or rdtype == "CNAME":
                break
            chain_secure = chain_secure and bool(entry.get("secure", False))
            owner = str(entry["CNAME"]).rstrip(".").lower()
            entry = self.zone.get(owner)
        else:
            raise TempFail(name, rdtype, "CNAME chain too long")
        if entry is None or entry == NXDOMAIN:
            raise NxDomain(name, rdtype, ttl=300)
        if entry == TEMPFAIL:
            raise TempFail(name, rdtype, "timed out")
        secure = bool(entry.get("secure", False)) and chain_secure
        values = entry.get(rdtype)
        if values == TEMPFAIL:
            raise TempFail(name, rdtype, "timed out")
        if not values:
            raise NoData(name, rdtype, ttl=int(entry.get("negative_ttl", 300)), secure=secure)
        if not isinstance(values, list):
            values = [values]
        records = tuple(_fake_value(rdtype, v) for v in values)
        return Answer(name, rdtype, records, int(entry.get("ttl", 300)), secure,
                      owner if owner != name else "")
