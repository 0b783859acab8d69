"""DMARC (RFC 7489): does the author domain (RFC5322.From) stand behind this message, and
what does it ask us to do when it does not?

    result = await check("example.org", spf_result, dkim_results, resolver)
    result.result        # "pass" | "fail" | "none" | "temperror" | "permerror"
    result.disposition   # "none" | "quarantine" | "reject": what to do with the message

Steps (RFC 7489 6.6):
1. Policy discovery (6.6.3): the TXT records at ``_dmarc.<From domain>``; when there is
   no DMARC record there, at ``_dmarc.<organisational domain>``. Only records starting
   with the tag ``v=DMARC1`` count; several of them at one name mean no policy.
2. Identifier alignment (3.1): SPF counts when it passed for a domain aligned with the
   From domain, DKIM when any signature passed with an aligned ``d=``. Relaxed
   alignment compares organisational domains, strict alignment the names themselves
   (``aspf``/``adkim``). The organisational domain is the public suffix plus one label
   (3.2), from the Public Suffix List (the ``publicsuffixlist`` package, which ships
   the list and is updated through PyPI).
3. Result: ``pass`` if either identifier aligned, else ``fail``.
4. Policy (6.6.4): ``p=``, or ``sp=`` when the record came from the organisational
   domain and the From domain is a subdomain of it. ``pct=`` samples the messages that
   the policy applies to; a message outside the sample gets the next milder policy
   (reject -> quarantine -> none).

Records are parsed leniently where RFC 7489 6.3 allows it (unknown tags ignored; an
invalid ``sp``, ``adkim``, ``aspf``, ``pct`` falls back to its default) and strictly
where it does not: a record without a valid ``p=`` is discarded unless it has a valid
``rua=``, in which case ``p=none`` is assumed (6.6.3 step 6). A discarded record is
``permerror`` (no action is taken on the message).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from stalwart.dns import DnsError, InvalidName, NoData, NxDomain, Resolver, TempFail

__all__ = ["DmarcRecord", "DmarcResult", "DmarcError", "parse_record", "check",
           "organizational_domain", "aligned", "POLICIES"]

POLICIES = ("none", "quarantine", "reject")
_MILDER = {"reject": "quarantine", "quarantine": "none", "none": "none"}
_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
MAX_URIS = 16


class DmarcError(ValueError):
    """A DMARC record that must be discarded (RFC 7489 6.6.3)."""


@dataclass(frozen=True)
class DmarcRecord:
    p: str = "none"
    sp: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: str = "0"
    ri: int = 86400
    text: str = ""

    def policy_for(self, subdomain: bool) -> str:
        return (self.sp or self.p) if subdomain else self.p


@dataclass(frozen=True)
class DmarcResult:
    result: str                        # pass | fail | none | temperror | permerror
    header_from: str                   # the From domain, lower case
    policy: str = "none"               # the published policy that applied (p or sp)
    disposition: str = "none"          # what to do: none | quarantine | reject
    record: DmarcRecord | None = None
    record_domain: str = ""            # where the record was found (From or org domain)
    spf_aligned: bool = False
    dkim_aligned: bool = False
    sampled_out: bool = False          # pct= kept the message from the full policy
    reason: str = ""

    @property
    def enforcing(self) -> bool:
        """The domain publishes p=quarantine or p=reject (for BIMI)."""
        return self.policy in ("quarantine", "reject")


# ---------------------------------------------------------------------- org domain
_psl: Any = None


def _public_suffix_list():
    global _psl
    if _psl is None:
        from publicsuffixlist import PublicSuffixList

        _psl = PublicSuffixList()
    return _psl


def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2: the public suffix plus one label; a public suffix itself (or a name
    the list cannot place) is its own organisational domain."""
    name = domain.strip().rstrip(".").lower()
    if not name:
        return name
    try:
        org = _public_suffix_list().privatesuffix(name)
    except (ValueError, TypeError, UnicodeError):
        org = None
    return org or name


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """Identifier alignment (RFC 7489 3.1): strict ``s`` or relaxed ``r``."""
    a, b = domain.strip().rstrip(".").lower(), from_domain.strip().rstrip(".").lower()
    if not a or not b:
        return False
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


# ---------------------------------------------------------------------- records
def _uris(value: str) -> tuple[str, ...]:
    uris = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        uri = part.split("!", 1)[0]          # "mailto:a@b!10m": size limit (6.2)
        if not uri.lower().startswith("mailto:") or "@" not in uri:
            continue                         # only mailto: is used (RFC 7489 6.2)
        uris.append(uri)
    return tuple(uris[:MAX_URIS])


def is_dmarc_record(text: str) -> bool:
    head = text.lstrip().split(";", 1)[0].replace(" ", "").replace("\t", "")
    return head == "v=DMARC1"


def parse_record(text: str) -> DmarcRecord:
    """A DMARC TXT record (RFC 7489 6.3, 6.4); ``DmarcError`` if it must be discarded."""
    if not text.isascii():
        raise DmarcError("the record contains non-ASCII characters")
    tags: dict[str, str] = {}
    parts = [p.strip() for p in text.split(";")]
    if not parts or parts[0].replace(" ", "").replace("\t", "") != "v=DMARC1":
        raise DmarcError("the record does not start with v=DMARC1")
    for part in parts[1:]:
        if not part:
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not eq or not _TAG.match(name):
            raise DmarcError(f"malformed tag {part!r}")
        tags.setdefault(name, value)
    rua = _uris(tags.get("rua", ""))
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        if rua:
            p = "none"                     # RFC 7489 6.6.3: a valid rua keeps the record
        elif "p" in tags:
            raise DmarcError(f"invalid policy p={tags['p']!r}")
        else:
            raise DmarcError("the record has no p= tag")
    sp = tags.get("sp", "").lower() or None
    if sp is not None and sp not in POLICIES:
        sp = None
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    pct_text = tags.get("pct", "100")
    pct = int(pct_text) if pct_text.isdigit() and int(pct_text) <= 100 else 100
    ri_text = tags.get("ri", "86400")
    ri = int(ri_text) if ri_text.isdigit() and 0 < int(ri_text) < 2**31 else 86400
    return DmarcRecord(p=p, sp=sp, adkim=adkim if adkim in ("r", "s") else "r",
                       aspf=aspf if aspf in ("r", "s") else "r", pct=pct, rua=rua,
                       ruf=_uris(tags.get("ruf", "")), fo=tags.get("fo", "0"), ri=ri,
                       text=text)


async def _fetch(resolver: Resolver, domain: str) -> list[str]:
    """The DMARC records at ``_dmarc.<domain>`` ([] when none); TempFail propagates."""
    try:
        answer = await resolver.txt(f"_dmarc.{domain}")
    except (NxDomain, NoData, InvalidName):
        return []
    return [r for r in answer.records if is_dmarc_record(r)]


async def discover(resolver: Resolver, from_domain: str) -> tuple[str, list[str]]:
    """(domain the records were found at, records) per RFC 7489 6.6.3."""
    records = await _fetch(resolver, from_domain)
    if records:
        return from_domain, records
    org = organizational_domain(from_domain)
    if org != from_domain:
        records = await _fetch(resolver, org)
        if records:
            return org, records
    return from_domain, []


# ---------------------------------------------------------------------- evaluation
def _passed_dkim_domains(dkim: Iterable[Any]) -> list[str]:
    return [str(getattr(r, "domain", "") or "") for r in dkim
            if getattr(r, "result", "") == "pass"]


async def check(from_domain: str, spf: Any, dkim: Sequence[Any], resolver: Resolver, *,
                rng: random.Random | None = None) -> DmarcResult:
    """Evaluate DMARC for a message whose RFC5322.From domain is ``from_domain``.

    ``spf`` has ``.result`` and ``.domain`` (the MAIL FROM domain checked, or the HELO
    domain for a null sender), or is None when SPF was not checked; ``dkim`` results
    have ``.result`` and ``.domain`` (the signature's ``d=``)."""
    from_domain = (from_domain or "").strip().rstrip(".").lower()
    if not from_domain or "." not in from_domain:
        return DmarcResult("permerror", from_domain,
                           reason="no usable RFC5322.From domain")
    try:
        record_domain, texts = await discover(resolver, from_domain)
    except TempFail as exc:
        return DmarcResult("temperror", from_domain, reason=str(exc))
    except DnsError as exc:
        return DmarcResult("temperror", from_domain, reason=str(exc))
    if not texts:
        return DmarcResult("none", from_domain, reason="no DMARC record")
    if len(texts) > 1:
        return DmarcResult("none", from_domain, record_domain=record_domain,
                           reason="more than one DMARC record")
    try:
        record = parse_record(texts[0])
    except DmarcError as exc:
        return DmarcResult("permerror", from_domain, record_domain=record_domain,
                           reason=str(exc))
    spf_aligned = (spf is not None and getattr(spf, "result", "") == "pass"
                   and aligned(str(getattr(spf, "domain", "") or ""), from_domain,
                               record.aspf))
    dkim_aligned = any(aligned(d, from_domain, record.adkim)
                       for d in _passed_dkim_domains(dkim))
    subdomain = record_domain != from_domain
    policy = record.policy_for(subdomain)
    if spf_aligned or dkim_aligned:
        return DmarcResult("pass", from_domain, policy, "none", record, record_domain,
                           spf_aligned, dkim_aligned)
    disposition, sampled_out = policy, False
    if policy != "none" and record.pct < 100:
        if (rng or random).random() * 100 >= record.pct:
            disposition, sampled_out = _MILDER[policy], True
    return DmarcResult("fail", from_domain, policy, disposition, record, record_domain,
                       False, False, sampled_out,
                       reason="neither SPF nor DKIM aligned with the From domain")


# ---------------------------------------------------------------------- From domain
def from_domains(values: Sequence[str]) -> list[str]:
    """The domains of the mailboxes in the From header fields given (raw values)."""
    import email.utils

    from stalwart.dns import canonical_name

    domains = []
    for _name, address in email.utils.getaddresses(list(values)):
        if "@" in address:
            domain = address.rpartition("@")[2].strip().strip(">").lower()
            if not domain.isascii():             # EAI: compare as A-labels, like SPF/DKIM
                try:
                    domain = canonical_name(domain)
                except InvalidName:
                    continue
            if domain:
                domains.append(domain)
    return domains


@dataclass
class FromDomain:
    """The RFC5322.From domain of a message (RFC 7489 6.6.1), or why there is none."""

    domain: str = ""
    problem: str = ""
    all_domains: list[str] = field(default_factory=list)


def header_from(values: Sequence[str]) -> FromDomain:
    """``domain`` is set only for the normal case (one From field, one domain);
    ``all_domains`` lists every distinct From domain in order, so a caller can evaluate
    each of several and keep the strictest outcome (RFC 7489 6.6.1)."""
    domains = list(dict.fromkeys(from_domains(values)))
    if not values:
        return FromDomain(problem="no From header field")
    if not domains:
        return FromDomain(problem="no address in the From header field")
    if len(values) > 1:
        return FromDomain(problem="more than one From header field", all_domains=domains)
    if len(domains) > 1:
        return FromDomain(problem="From names mailboxes in several domains",
                          all_domains=domains)
    return FromDomain(domain=domains[0], all_domains=domains)


_SEVERITY = {"pass": 0, "none": 1, "permerror": 2, "temperror": 3}


def severity(result: DmarcResult) -> int:
    """Order of strictness, to keep the worst of several From domains' results."""
    if result.result == "fail":
        return 4 + POLICIES.index(result.disposition)
    return _SEVERITY.get(result.result, 2)


async def check_all(domains: Sequence[str], spf: Any, dkim: Sequence[Any],
                    resolver: Resolver, *, rng: random.Random | None = None) -> DmarcResult:
    """The strictest result over several From domains (at most 10 are checked; a message
    naming more gets the strictest result of its first 10)."""
    results = [await check(d, spf, dkim, resolver, rng=rng) for d in domains[:10]]
    return max(results, key=severity)
