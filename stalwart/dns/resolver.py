"""The resolver callers use: typed lookups over a backend, with a shared cache.

    resolver = Resolver(DnspythonBackend(["127.0.0.1:53"]))
    mx = await resolver.mx_hosts("example.org")      # MxResult, in the order to try
    ips = await resolver.addresses("mx.example.org") # Addresses(ipv4=..., ipv6=...)
    spf = await resolver.txt("example.org")           # Answer[str]

Invariants
- Names are canonicalised before the cache and the backend see them: IDNA A-labels (a
  U-label is encoded as IDNA 2008 through dnspython), lower case, no trailing dot. A name
  that cannot be a DNS name raises ``InvalidName`` and sends no query.
- One question in flight per ``(name, type)``: concurrent callers share the answer.
- Answers and permanent negative answers are cached for their TTL (``DnsCache``);
  temporary failures are not.
- ``mx_hosts`` implements RFC 5321 5.1 and RFC 7505: no MX records -> the implicit MX (the
  domain itself, preference 0); a lone MX with the root as exchange -> null MX (the
  domain takes no mail); a root exchange mixed with real ones is ignored; hosts sorted by
  preference and shuffled among equals (the load spreading RFC 5321 5.1 asks for).

``default_resolver()`` is the process-wide instance (one cache per process, shared by the
queue, SPF, DKIM and DMARC); ``set_default_resolver`` installs a configured one at startup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from typing import Sequence

import dns.exception
import dns.name

from .backend import Backend, DnspythonBackend
from .cache import DnsCache
from .records import (MX, TLSA, Addresses, Answer, DnsError, InvalidName, MxHost, MxResult,
                      NoData, NxDomain, TempFail)

__all__ = ["Resolver", "canonical_name", "reverse_name", "default_resolver",
           "set_default_resolver"]


def canonical_name(name: str) -> str:
    """``"Example.ORG."`` -> ``"example.org"``; U-labels become A-labels; else InvalidName."""
    text = name.strip()
    if not text or text == ".":
        raise InvalidName(name, "", "empty name")
    try:
        parsed = dns.name.from_text(text) if text.isascii() else dns.name.from_unicode(text)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise InvalidName(name, "", str(exc) or type(exc).__name__) from None
    return parsed.to_text(omit_final_dot=True).lower()


def reverse_name(ip: str) -> str:
    """The PTR owner name of an address: ``192.0.2.1`` -> ``1.2.0.192.in-addr.arpa``."""
    return ipaddress.ip_address(ip).reverse_pointer


class Resolver:
    def __init__(self, backend: Backend, cache: DnsCache | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.backend = backend
        self.cache = cache if cache is not None else DnsCache()
        self._rng = rng or random.Random()
        self._inflight: dict[tuple[str, str], asyncio.Future[Answer]] = {}

    @classmethod
    def from_settings(cls, nameservers: Sequence[str] = (), *, timeout: float = 5.0,
                      lifetime: float = 15.0, cache_size: int = 10_000,
                      max_negative_ttl: int = 3_600) -> "Resolver":
        return cls(DnspythonBackend(nameservers, timeout=timeout, lifetime=lifetime),
                   DnsCache(cache_size, max_negative_ttl=max_negative_ttl))

    # -------------------------------------------------------------- the one way in
    async def query(self, name: str, rdtype: str) -> Answer:
        """Records of one type, or ``NxDomain``/``NoData``/``TempFail``/``InvalidName``."""
        try:
            qname = canonical_name(name)
        except InvalidName as exc:
            raise InvalidName(name, rdtype, exc.detail) from None
        key = (qname, rdtype)
        cached = self.cache.get(key)
        if cached is not None:
            if isinstance(cached, DnsError):
                raise type(cached)(cached.name, cached.rdtype, cached.detail, ttl=cached.ttl,
                                   secure=cached.secure)
            return cached
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self.backend.query(qname, rdtype)
        except DnsError as exc:
            self.cache.put(key, exc)
            future.set_exception(exc)
            future.exception()               # retrieved: no "never retrieved" warning
            raise
        except BaseException as exc:
            # Cancellation or a bug: the waiters get a temporary failure, not a hang.
            future.set_exception(TempFail(qname, rdtype, f"lookup aborted: {exc!r}"))
            future.exception()
            raise
        else:
            self.cache.put(key, answer)
            future.set_result(answer)
            return answer
        finally:
            self._inflight.pop(key, None)

    # -------------------------------------------------------------- typed lookups
    async def a(self, name: str) -> Answer[str]:
        return await self.query(name, "A")

    async def aaaa(self, name: str) -> Answer[str]:
        return await self.query(name, "AAAA")

    async def mx(self, name: str) -> Answer[MX]:
        return await self.query(name, "MX")

    async def txt(self, name: str) -> Answer[str]:
        return await self.query(name, "TXT")

    async def tlsa(self, name: str) -> Answer[TLSA]:
        return await self.query(name, "TLSA")

    async def ptr(self, ip: str) -> Answer[str]:
        try:
            owner = reverse_name(ip)
        except ValueError:
            raise InvalidName(ip, "PTR", "not an IP address") from None
        return await self.query(owner, "PTR")

    # -------------------------------------------------------------- mail routing
    async def addresses(self, host: str) -> Addresses:
        """A and AAAA of ``host``, asked in parallel.

        One family failing temporarily while the other has records still gives the
        records; both empty: ``NxDomain`` if the name does not exist, else ``NoData``;
        any temporary failure with no records at all: ``TempFail``. ``canonical`` is the
        CNAME-expanded name when ``host`` is an alias.
        """
        results = await asyncio.gather(self.a(host), self.aaaa(host), return_exceptions=True)
        found: list[tuple[str, ...]] = []
        errors: list[DnsError] = []
        secure = True
        canonical = ""
        for result in results:
            if isinstance(result, Answer):
                found.append(result.records)
                secure = secure and result.secure
                canonical = canonical or result.canonical
            elif isinstance(result, DnsError):
                found.append(())
                errors.append(result)
                secure = secure and result.secure
            else:
                raise result
        ipv4, ipv6 = found
        if ipv4 or ipv6:
            return Addresses(canonical_name(host), ipv4, ipv6, secure, canonical)
        temp = [e for e in errors if not e.permanent]
        if temp:
            raise temp[0]
        if all(isinstance(e, NxDomain) for e in errors):
            raise NxDomain(host, "A/AAAA", secure=secure)
        raise NoData(host, "A/AAAA", secure=secure)

    async def mx_hosts(self, domain: str) -> MxResult:
        """Where to deliver mail for ``domain`` (RFC 5321 5.1, RFC 7505).

        ``NxDomain`` and ``TempFail`` propagate: the caller bounces or retries.
        """
        name = canonical_name(domain)
        try:
            answer = await self.mx(name)
        except NoData as exc:
            return MxResult(name, (MxHost(0, name),), implicit=True, secure=exc.secure)
        records = list(answer.records)
        if len(records) == 1 and records[0].exchange == "":
            return MxResult(name, (), null=True, secure=answer.secure)
        records = [r for r in records if r.exchange != ""]
        by_pref: dict[int, list[str]] = {}
        for r in records:
            hosts = by_pref.setdefault(r.preference, [])
            if r.exchange not in hosts:
                hosts.append(r.exchange)
        ordered: list[MxHost] = []
        seen: set[str] = set()
        for pref in sorted(by_pref):
            group = [h for h in by_pref[pref] if h not in seen]
            self._rng.shuffle(group)
            seen.update(group)
            ordered.extend(MxHost(pref, h) for h in group)
        return MxResult(name, tuple(ordered), secure=answer.secure)


_default: Resolver | None = None


def default_resolver() -> Resolver:
    """The process-wide resolver (system nameservers until ``set_default_resolver``)."""
    global _default
    if _default is None:
        _default = Resolver(DnspythonBackend())
    return _default


def set_default_resolver(resolver: Resolver | None) -> None:
    global _default
    _default = resolver
