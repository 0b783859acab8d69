"""SPF, the Sender Policy Framework (RFC 7208): may this IP send mail for this domain?

    result = await check_host("192.0.2.1", "example.org", "alice@example.org",
                              "mail.example.org", resolver)
    result.result            # "pass" | "fail" | "softfail" | "neutral" | "none"
                             # | "temperror" | "permerror"
    result.received_spf("mx.example.net")   # the Received-SPF field (RFC 7208 9.1)

``check_mail_from`` and ``check_helo`` apply the identity rules of RFC 7208 2.3/2.4
(a null reverse-path is checked as ``postmaster@<HELO>``; a HELO that is not a domain
name gives ``none``) and then run ``check_host``.

Invariants
- The record is parsed whole before any mechanism is evaluated; a syntax error anywhere
  (unknown mechanism, bad CIDR, malformed macro, non-ASCII text, a repeated ``redirect``
  or ``exp``) is ``permerror`` (RFC 7208 4.6).
- One ``_Check`` state is shared by the top-level evaluation and every ``include`` and
  ``redirect`` beneath it: at most 10 terms that query DNS (``include``, ``a``, ``mx``,
  ``ptr``, ``exists``, ``redirect``) and at most 2 void lookups (NXDOMAIN or no records)
  per check, then ``permerror`` (RFC 7208 4.6.4). ``mx`` looks at 10 exchanges at most
  (more is ``permerror``), ``ptr`` and ``%{p}`` at 10 PTR names (the rest are ignored).
- ``%{p}`` (RFC 7208 7.3) is computed at most once per check, from at most 10 PTR names,
  and never fails the check: anything short of a validated name gives ``unknown``.
  Expanded names longer than 253 octets lose labels on the left (RFC 7208 7.3).
- ``exp=`` is looked up only for ``fail`` at the top level (not inside ``include``, and
  not the one of a record left through ``redirect``); any trouble with it (DNS, several
  records, macro errors, non-ASCII) means the default explanation (RFC 7208 6.2).
- Every DNS failure is typed by ``stalwart.dns``: ``TempFail`` becomes ``temperror``
  where the RFC says so; nothing here raises to the caller.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field

from stalwart.dns import DnsError, InvalidName, NoData, NxDomain, Resolver, TempFail

__all__ = ["SpfResult", "check_host", "check_mail_from", "check_helo", "RESULTS",
           "DEFAULT_EXPLANATION", "MAX_DNS_MECHANISMS", "MAX_VOID_LOOKUPS"]

RESULTS = ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MAX_DNS_MECHANISMS = 10        # RFC 7208 4.6.4
MAX_VOID_LOOKUPS = 2           # RFC 7208 4.6.4
MAX_MX_NAMES = 10              # RFC 7208 4.6.4
MAX_PTR_NAMES = 10             # RFC 7208 4.6.4, 5.5
CHECK_TIMEOUT = 20.0           # seconds for one whole check (RFC 7208 4.6.4)
DEFAULT_EXPLANATION = "See https://www.open-spf.org/Why?s=%{S}&i=%{I}&ip=%{C}&r=%{R}"

_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=(.*)", re.S)
_DIRECTIVE = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9_.\-]*)(.*)", re.S)
_DUAL_CIDR = re.compile(r"(?:/(0|[1-9][0-9]{0,1}))?(?://(0|[1-9][0-9]{0,2}))?\Z")
_CIDR4 = re.compile(r"/(0|[1-9][0-9]?)\Z")
_CIDR6 = re.compile(r"/(0|[1-9][0-9]{0,2})\Z")
_TOPLABEL = re.compile(r"(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*"
                       r"|[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9])\Z")
_MACRO = re.compile(r"%\{([A-Za-z])([0-9]*)(r?)([.\-+,/_=]*)\}", re.I)
_IP4_NETWORK = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
                          r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}\Z")


class PermError(Exception):
    """The check ends in ``permerror`` (syntax, limits)."""


class TempError(Exception):
    """The check ends in ``temperror`` (a DNS lookup failed temporarily)."""


@dataclass(frozen=True)
class SpfResult:
    result: str                    # one of RESULTS
    domain: str                    # the domain whose policy was checked
    ip: str
    sender: str                    # the mailbox checked (postmaster@<helo> for HELO)
    helo: str
    identity: str = "mailfrom"     # "mailfrom" | "helo"
    mechanism: str = ""            # the directive that matched ("default" when none did)
    explanation: str = ""          # for "fail": the text to put in the 550 reply
    reason: str = ""               # what went wrong, for temperror/permerror/none

    def comment(self, receiver: str) -> str:
        who = f"domain of {self.sender}" if self.identity == "mailfrom" else \
            f"{self.domain}"
        texts = {
            "pass": f"{who} designates {self.ip} as permitted sender",
            "fail": f"{who} does not designate {self.ip} as permitted sender",
            "softfail": f"transitioning {who} does not designate {self.ip} as permitted "
                        f"sender",
            "neutral": f"{self.ip} is neither permitted nor denied by {who}",
            "none": f"{who} does not publish an SPF record" if not self.reason
                    else self.reason,
            "temperror": f"error in processing during lookup of {self.domain}: "
                         f"{self.reason}",
            "permerror": f"permanent error in processing of {self.domain}: {self.reason}",
        }
        return f"{receiver}: {texts[self.result]}"

    def received_spf(self, receiver: str) -> str:
        """The Received-SPF field (RFC 7208 9.1), folded, without the trailing CRLF."""
        pairs = [("receiver", receiver), ("client-ip", self.ip),
                 ("envelope-from", _quote(self.sender)), ("helo", _quote(self.helo)),
                 ("identity", self.identity)]
        if self.mechanism and self.result not in ("none", "temperror", "permerror"):
            pairs.append(("mechanism", _quote(self.mechanism)))
        if self.reason and self.result in ("temperror", "permerror"):
            pairs.append(("problem", _quote(self.reason)))
        comment = _comment_text(self.comment(receiver))
        text = f"Received-SPF: {self.result} ({comment})"
        for key, value in pairs:
            text += f"\r\n\t{key}={value};"
        return text


def _quote(value: str) -> str:
    if value and re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+", value):
        return value
    cleaned = "".join(ch for ch in value if ch.isprintable()).replace("\\", "\\\\")
    return '"' + cleaned.replace('"', '\\"') + '"'


def _comment_text(text: str) -> str:
    text = "".join(ch for ch in text if ch.isprintable())
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


# ---------------------------------------------------------------------- parsing
@dataclass
class _Term:
    qualifier: str                 # "pass" | "fail" | "softfail" | "neutral"
    name: str                      # mechanism name, lower case
    text: str                      # the term as written (for the header)
    domain: str | None = None      # domain-spec (unexpanded), None: the current domain
    cidr4: int = 32
    cidr6: int = 128
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None


@dataclass
class _Record:
    terms: list[_Term] = field(default_factory=list)
    redirect: str | None = None
    exp: str | None = None


def _check_macro_string(spec: str, *, exp: bool = False) -> None:
    """Raise PermError unless ``spec`` is a valid macro-string (RFC 7208 7.1)."""
    i = 0
    while i < len(spec):
        ch = spec[i]
        if ch == "%":
            nxt = spec[i + 1: i + 2]
            if nxt in ("%", "_", "-"):
                i += 2
                continue
            m = _MACRO.match(spec, i)
            if m is None:
                raise PermError(f"malformed macro in {spec!r}")
            letter = m.group(1).lower()
            if letter not in "slodiphv" and not (exp and letter in "crt"):
                raise PermError(f"unknown macro letter {m.group(1)!r}")
            if m.group(2) and int(m.group(2)) == 0:
                raise PermError(f"zero digit transformer in {spec!r}")
            i = m.end()
            continue
        if not exp and not ("\x21" <= ch <= "\x7e"):
            raise PermError(f"invalid character {ch!r} in {spec!r}")
        if exp and not ("\x20" <= ch <= "\x7e"):
            raise PermError(f"invalid character {ch!r} in explanation")
        i += 1


def _check_domain_spec(spec: str) -> None:
    """domain-spec = macro-string domain-end (RFC 7208 7.1)."""
    if not spec:
        raise PermError("empty domain-spec")
    _check_macro_string(spec)
    if spec.endswith("}"):
        start = spec.rfind("%{")
        if start >= 0 and _MACRO.fullmatch(spec, start):
            return
    body = spec[:-1] if spec.endswith(".") else spec
    head, dot, top = body.rpartition(".")
    if not dot or not _TOPLABEL.match(top):
        raise PermError(f"domain-spec {spec!r} does not end in a valid top label")


def _parse_record(text: str) -> _Record:
    if not text.isascii():
        raise PermError("the record contains non-ASCII characters")
    record = _Record()
    for word in text.split(" ")[1:]:
        if not word:
            continue
        m = _MODIFIER.fullmatch(word)
        if m:
            name, value = m.group(1).lower(), m.group(2)
            if name in ("redirect", "exp"):
                if getattr(record, name) is not None:
                    raise PermError(f"more than one {name}= modifier")
                _check_domain_spec(value)
                setattr(record, name, value)
            else:
                _check_macro_string(value)
            continue
        record.terms.append(_parse_directive(word))
    return record


def _parse_directive(word: str) -> _Term:
    m = _DIRECTIVE.fullmatch(word)
    if m is None:
        raise PermError(f"unknown term {word!r}")
    qualifier = QUALIFIERS[m.group(1) or "+"]
    name, rest = m.group(2).lower(), m.group(3)
    if name not in _MECHANISMS:
        raise PermError(f"unknown mechanism {m.group(2)!r}")
    term = _Term(qualifier, name, word)
    if name == "all":
        if rest:
            raise PermError(f"'all' takes no argument: {word!r}")
    elif name in ("include", "exists"):
        if not rest.startswith(":"):
            raise PermError(f"{name} needs a domain: {word!r}")
        term.domain = rest[1:]
        _check_domain_spec(term.domain)
    elif name == "ptr":
        if rest:
            if not rest.startswith(":"):
                raise PermError(f"malformed ptr: {word!r}")
            term.domain = rest[1:]
            _check_domain_spec(term.domain)
    elif name in ("a", "mx"):
        cidr = _DUAL_CIDR.search(rest)
        if cidr is not None and cidr.group(0):
            v4, v6 = cidr.group(1), cidr.group(2)
            if v4 is not None and int(v4) > 32 or v6 is not None and int(v6) > 128:
                raise PermError(f"CIDR length out of range: {word!r}")
            term.cidr4 = int(v4) if v4 is not None else 32
            term.cidr6 = int(v6) if v6 is not None else 128
            rest = rest[:cidr.start()]
        if rest:
            if not rest.startswith(":"):
                raise PermError(f"malformed {name}: {word!r}")
            term.domain = rest[1:]
            _check_domain_spec(term.domain)
    elif name == "ip4":
        if not rest.startswith(":"):
            raise PermError(f"ip4 needs a network: {word!r}")
        addr, prefix = rest[1:], 32
        cidr = _CIDR4.search(addr)
        if "/" in addr:
            if cidr is None:
                raise PermError(f"bad ip4 CIDR length: {word!r}")
            prefix = int(cidr.group(1))
            if prefix > 32:
                raise PermError(f"ip4 CIDR length out of range: {word!r}")
            addr = addr[:cidr.start()]
        if not _IP4_NETWORK.match(addr):
            raise PermError(f"bad ip4 address: {word!r}")
        term.network = ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False)
    elif name == "ip6":
        if not rest.startswith(":"):
            raise PermError(f"ip6 needs a network: {word!r}")
        addr, prefix = rest[1:], 128
        if "/" in addr:
            cidr = _CIDR6.search(addr)
            if cidr is None:
                raise PermError(f"bad ip6 CIDR length: {word!r}")
            prefix = int(cidr.group(1))
            if prefix > 128:
                raise PermError(f"ip6 CIDR length out of range: {word!r}")
            addr = addr[:cidr.start()]
        try:
            term.network = ipaddress.IPv6Network(f"{addr}/{prefix}", strict=False)
        except ValueError:
            raise PermError(f"bad ip6 address: {word!r}") from None
    return term


def _select_record(records: tuple[str, ...]) -> str | None:
    """The one record starting with ``v=spf1`` (RFC 7208 4.5); PermError for several."""
    found = [r for r in records
             if r[:6].lower() == "v=spf1" and (len(r) == 6 or r[6] == " ")]
    if len(found) > 1:
        raise PermError("more than one SPF record")
    return found[0] if found else None


# ---------------------------------------------------------------------- domains
def _valid_domain(name: str) -> bool:
    """A name check_host can look up (RFC 7208 4.3): a fully qualified domain name."""
    if not name or name.startswith("["):
        return False
    name = name[:-1] if name.endswith(".") else name
    if len(name) > 253:
        return False
    labels = name.split(".")
    if len(labels) < 2:
        return False
    return all(0 < len(label) <= 63 for label in labels)


def _truncate(name: str) -> str:
    """RFC 7208 7.3: over 253 octets, drop labels on the left until it fits."""
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(value.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# ---------------------------------------------------------------------- evaluation
class _Check:
    """State shared by one check_host and its includes/redirects."""

    def __init__(self, resolver: Resolver, ip, sender: str, helo: str, receiver: str,
                 now: int | None) -> None:
        self.resolver = resolver
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.receiver = receiver
        self.now = now
        self.dns_mechanisms = 0
        self.void_lookups = 0
        self._ptr_name: str | None = None
        local, _, dom = sender.rpartition("@")
        self.local = local or "postmaster"
        self.sender_domain = dom

    # -- limits
    def count_mechanism(self) -> None:
        self.dns_mechanisms += 1
        if self.dns_mechanisms > MAX_DNS_MECHANISMS:
            raise PermError(f"more than {MAX_DNS_MECHANISMS} DNS-querying terms")

    def count_void(self) -> None:
        self.void_lookups += 1
        if self.void_lookups > MAX_VOID_LOOKUPS:
            raise PermError(f"more than {MAX_VOID_LOOKUPS} void lookups")

    # -- DNS
    async def lookup(self, name: str, rdtype: str, *, void: bool = True) -> tuple:
        """Records, () for NXDOMAIN/no data (a void lookup), TempError on failure."""
        try:
            answer = await self.resolver.query(name, rdtype)
        except (NxDomain, NoData, InvalidName):
            if void:
                self.count_void()
            return ()
        except TempFail as exc:
            raise TempError(f"{name} {rdtype}: {exc.detail or 'temporary DNS failure'}") \
                from None
        except DnsError as exc:
            raise TempError(str(exc)) from None
        return answer.records

    async def addresses(self, name: str, *, void: bool = True) -> tuple:
        return await self.lookup(name, "A" if self.ip.version == 4 else "AAAA", void=void)

    def matches(self, address: str, cidr4: int, cidr6: int) -> bool:
        try:
            addr = ipaddress.ip_address(address)
        except ValueError:
            return False
        if addr.version != self.ip.version:
            return False
        shift = (32 - cidr4) if addr.version == 4 else (128 - cidr6)
        return int(addr) >> shift == int(self.ip) >> shift

    async def validated_names(self, target: str | None) -> list[str]:
        """PTR names of the client that resolve back to it (RFC 7208 5.5)."""
        try:
            answer = await self.resolver.ptr(str(self.ip))
        except TempFail:
            return []
        except DnsError:
            return []
        names = list(answer.records)[:MAX_PTR_NAMES]
        if target is not None:
            # Prefer names in the target domain, as RFC 7208 5.5 allows.
            names.sort(key=lambda n: not _in_domain(n, target))
        validated = []
        for name in names:
            try:
                addresses = await self.addresses(name, void=False)
            except TempError:
                continue
            if any(self.matches(a, 32, 128) for a in addresses):
                validated.append(name)
        return validated

    async def ptr_macro(self) -> str:
        if self._ptr_name is None:
            names = await self.validated_names(None)
            self._ptr_name = names[0] if names else "unknown"
        return self._ptr_name

    # -- macros (RFC 7208 7)
    async def expand(self, spec: str, domain: str, *, exp: bool = False) -> str:
        _check_macro_string(spec, exp=exp)
        out: list[str] = []
        i = 0
        while i < len(spec):
            ch = spec[i]
            if ch != "%":
                out.append(ch)
                i += 1
                continue
            nxt = spec[i + 1]
            if nxt == "%":
                out.append("%")
                i += 2
                continue
            if nxt == "_":
                out.append(" ")
                i += 2
                continue
            if nxt == "-":
                out.append("%20")
                i += 2
                continue
            m = _MACRO.match(spec, i)
            assert m is not None            # checked above
            letter, digits, reverse, delims = m.groups()
            value = await self.macro_value(letter.lower(), domain)
            parts = re.split("[" + re.escape(delims or ".") + "]", value)
            if reverse:
                parts.reverse()
            if digits:
                parts = parts[-int(digits):]
            value = ".".join(parts)
            if letter.isupper():
                value = urllib.parse.quote(value, safe="-._~")
            out.append(value)
            i = m.end()
        return "".join(out)

    async def macro_value(self, letter: str, domain: str) -> str:
        if letter == "s":
            return f"{self.local}@{self.sender_domain}"
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.ip.version == 4:
                return str(self.ip)
            # Nibbles in upper case, as the RFC 7208 test suite expects (DNS ignores case).
            return ".".join(self.ip.exploded.replace(":", "").upper())
        if letter == "p":
            return await self.ptr_macro()
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(self.ip)
        if letter == "r":
            return self.receiver or "unknown"
        if letter == "t":
            import time
            return str(int(self.now if self.now is not None else time.time()))
        raise PermError(f"unknown macro letter {letter!r}")

    async def target(self, term_domain: str | None, domain: str) -> str:
        if term_domain is None:
            return domain
        return _truncate(await self.expand(term_domain, domain))

    # -- check_host (RFC 7208 4)
    async def check_host(self, domain: str, *, top: bool) -> tuple[str, str, str]:
        """(result, mechanism, explanation)."""
        if not _valid_domain(domain):
            return "none", "", ""
        try:
            records = await self.resolver.txt(domain)
        except (NxDomain, NoData, InvalidName):
            if not top:
                self.count_void()            # include/redirect target (RFC 7208 4.6.4)
            return "none", "", ""
        except TempFail as exc:
            raise TempError(f"{domain} TXT: {exc.detail or 'temporary DNS failure'}") \
                from None
        text = _select_record(records.records)
        if text is None:
            return "none", "", ""
        record = _parse_record(text)
        for term in record.terms:
            if await self.evaluate(term, domain):
                explanation = ""
                if term.qualifier == "fail" and top:
                    explanation = await self.explain(record, domain)
                return term.qualifier, term.text, explanation
        if record.redirect is not None and not any(t.name == "all" for t in record.terms):
            self.count_mechanism()
            target = await self.target(record.redirect, domain)
            if not _valid_domain(target):
                raise PermError(f"redirect to an invalid domain {target!r}")
            result, mechanism, explanation = await self.check_host(target, top=top)
            if result == "none":
                raise PermError(f"redirect target {target} has no SPF record")
            return result, mechanism, explanation
        return "neutral", "default", ""

    async def evaluate(self, term: _Term, domain: str) -> bool:
        name = term.name
        if name == "all":
            return True
        if name == "ip4" or name == "ip6":
            return self.ip.version == term.network.version and self.ip in term.network
        self.count_mechanism()
        target = await self.target(term.domain, domain)
        if name == "include":
            if not _valid_domain(target):
                raise PermError(f"include of an invalid domain {target!r}")
            result, _, _ = await self.check_host(target, top=False)
            if result == "pass":
                return True
            if result == "none":
                raise PermError(f"included domain {target} has no SPF record")
            return False
        if name == "a":
            addresses = await self.addresses(target) if _valid_domain(target) else ()
            return any(self.matches(a, term.cidr4, term.cidr6) for a in addresses)
        if name == "mx":
            if not _valid_domain(target):
                return False
            exchanges = [mx.exchange for mx in await self.lookup(target, "MX")]
            if len(exchanges) > MAX_MX_NAMES:
                raise PermError(f"{target} has more than {MAX_MX_NAMES} MX records")
            for host in exchanges:
                if not host:
                    continue
                for address in await self.addresses(host, void=False):
                    if self.matches(address, term.cidr4, term.cidr6):
                        return True
            return False
        if name == "ptr":
            return any(_in_domain(n, target) for n in await self.validated_names(target))
        if name == "exists":
            if not _valid_domain(target):
                return False
            return bool(await self.lookup(target, "A"))
        raise PermError(f"unknown mechanism {name!r}")       # not reached: parsed above

    async def explain(self, record: _Record, domain: str) -> str:
        if record.exp is None:
            return await self.default_explanation(domain)
        try:
            target = _truncate(await self.expand(record.exp, domain))
            if not _valid_domain(target):
                raise PermError("invalid exp domain")
            answer = await self.resolver.txt(target)
            if len(answer.records) != 1:
                raise PermError("exp= must name exactly one TXT record")
            text = answer.records[0]
            if not text.isascii():
                raise PermError("non-ASCII explanation")
            return await self.expand(text, domain, exp=True)
        except (PermError, DnsError, TempError):
            return await self.default_explanation(domain)

    async def default_explanation(self, domain: str) -> str:
        try:
            return await self.expand(self.default_exp, domain, exp=True)
        except PermError:
            return self.default_exp

    default_exp = DEFAULT_EXPLANATION


def _in_domain(name: str, target: str) -> bool:
    name, target = name.rstrip(".").lower(), target.rstrip(".").lower()
    return name == target or name.endswith("." + target)


async def check_host(ip: str, domain: str, sender: str, helo: str, resolver: Resolver, *,
                     identity: str = "mailfrom", receiver: str = "",
                     default_explanation: str = DEFAULT_EXPLANATION,
                     now: int | None = None, timeout: float = CHECK_TIMEOUT) -> SpfResult:
    """RFC 7208 4: the SPF result of ``ip`` sending for ``domain``.

    ``sender`` is the mailbox checked (``local@domain``; an empty local part counts as
    ``postmaster``), ``helo`` the client's HELO/EHLO argument (for ``%{h}``),
    ``receiver`` our host name (for ``%{r}`` in explanations). The whole check,
    includes and all, gets ``timeout`` seconds (RFC 7208 4.6.4 suggests at least 20),
    then it is ``temperror``."""
    domain = (domain or "").strip()
    try:
        addr = _ip(ip)
    except ValueError:
        return SpfResult("permerror", domain, ip, sender, helo, identity,
                         reason=f"{ip!r} is not an IP address")
    if "@" not in sender:
        sender = f"postmaster@{domain}"
    state = _Check(resolver, addr, sender, helo, receiver, now)
    state.default_exp = default_explanation
    try:
        async with asyncio.timeout(timeout):
            result, mechanism, explanation = await state.check_host(domain.rstrip("."),
                                                                    top=True)
    except asyncio.TimeoutError:
        return SpfResult("temperror", domain, str(addr), sender, helo, identity,
                         reason=f"the check took longer than {timeout:g}s")
    except PermError as exc:
        return SpfResult("permerror", domain, str(addr), sender, helo, identity,
                         reason=str(exc))
    except TempError as exc:
        return SpfResult("temperror", domain, str(addr), sender, helo, identity,
                         reason=str(exc))
    reason = ""
    if result == "none":
        reason = (f"{domain!r} is not a domain name that can publish SPF"
                  if not _valid_domain(domain) else f"{domain} publishes no SPF record")
    return SpfResult(result, domain, str(addr), sender, helo, identity, mechanism,
                     explanation if result == "fail" else "", reason)


async def check_helo(ip: str, helo: str, resolver: Resolver, *, receiver: str = "",
                     default_explanation: str = DEFAULT_EXPLANATION) -> SpfResult:
    """The HELO identity (RFC 7208 2.3): ``postmaster@<helo>``; an address literal or a
    name that is not a FQDN gives ``none``."""
    helo = (helo or "").strip()
    return await check_host(ip, helo, f"postmaster@{helo}", helo, resolver,
                            identity="helo", receiver=receiver,
                            default_explanation=default_explanation)


async def check_mail_from(ip: str, mail_from: str, helo: str, resolver: Resolver, *,
                          receiver: str = "",
                          default_explanation: str = DEFAULT_EXPLANATION) -> SpfResult:
    """The MAIL FROM identity (RFC 7208 2.4); a null reverse-path is checked as
    ``postmaster@<helo>``."""
    mail_from = (mail_from or "").strip()
    if not mail_from or "@" not in mail_from:
        helo = (helo or "").strip()
        return await check_host(ip, helo, f"postmaster@{helo}", helo, resolver,
                                receiver=receiver, default_explanation=default_explanation)
    local, _, domain = mail_from.rpartition("@")
    return await check_host(ip, domain, f"{local or 'postmaster'}@{domain}", helo, resolver,
                            receiver=receiver, default_explanation=default_explanation)
