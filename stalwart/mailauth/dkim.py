"""DKIM signatures (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463).

    results = await dkim.verify(message, resolver)        # one DkimResult per signature
    headers = dkim.sign(message, [DkimSigner("example.org", "sel", key, "rsa-sha256")])
    signed = headers + message

Verification (RFC 6376 6.1) checks every DKIM-Signature field of the message, top to
bottom, at most ``MAX_SIGNATURES`` (the next ones, up to ``MAX_REPORTED`` results in all,
are reported ``neutral``, unchecked; a message with more gets no result for them, so a
flood of fields costs neither time nor a huge Authentication-Results field); the key
lookups run concurrently and go through the shared ``stalwart.dns.Resolver``. Results:

==========  ===============================================================================
pass        body hash and signature verify with the published key
fail        the body hash or the signature does not verify (the message was changed, or
            the key does not match)
policy      the signature verifies but covers only part of the body (``l=`` shorter than
            the body): content was appended that nobody signed; not trusted like a pass
neutral     not checked (over the per-message limit)
temperror   the key could not be fetched now (DNS timeout, SERVFAIL): try later
permerror   the signature or key cannot be used: tag-list syntax, missing or bad tags,
            ``h=`` without From, ``i=`` outside ``d=``, expired (``x=``), timestamp in the
            future, unknown algorithm, rsa-sha1 (RFC 8301), no key (NXDOMAIN/no TXT),
            revoked key (empty ``p=``), RSA key under 1024 bits, key type, hash (``h=``),
            service (``s=``) or strict-identity (``t=s``) mismatch, ``l=`` longer than the
            body, bad base64
==========  ===============================================================================

Each ``DkimResult`` carries ``domain`` (d=), ``selector`` (s=), ``algorithm`` (a=),
``header_b`` (the shortest prefix of b=, at least 8 characters, that tells this
signature apart from the others of the message, RFC 6008), ``identity`` (i=), ``testing``
(the key has ``t=y``) and a ``reason``; ``auth_results()`` renders it for an
Authentication-Results field (RFC 8601).

Hostile input never raises: every problem of the message, the signature or the key
record becomes one of the results above. Limits: key records over 8192 characters and RSA
keys over 8192 bits are permerrors; ``t=``/``x=`` have at most 12 digits, ``l=`` 76.

Signing produces one field per ``DkimSigner``, relaxed/relaxed by default. ``h=`` lists
each configured header field once per instance present in the message, then each
``oversign`` name once more, present or not, so that a field added later (a second From)
breaks the signature. The message must have a From field. Fields are folded at 78
columns; ``b=`` starts its own line.

ARC (``arc.py``) reuses the parsing, key lookup and hashing here: its AMS is a DKIM
signature with ``i=`` as the instance.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from stalwart.dns import DnsError, InvalidName, NoData, NxDomain, TempFail

from .canon import (Field, TagListError, body_hash, header_data, parse_tags, split_message,
                    strip_fws)
from .keys import ED25519_SHA256, RSA_SHA256, key_algorithm, load_private_key, valid_selector

__all__ = ["DkimResult", "DkimSigner", "KeyRecord", "DkimError", "verify", "sign",
           "parse_key_record", "fetch_key", "DEFAULT_HEADERS", "MAX_SIGNATURES"]

log = logging.getLogger("stalwart.dkim")

MAX_SIGNATURES = 20
MAX_REPORTED = 50          # results returned at most (checked + neutral); more are dropped
MAX_KEY_RECORD = 8192
MAX_RSA_BITS = 8192
MIN_RSA_BITS = 1024
CLOCK_SKEW = 300            # seconds a t= may lie in the future

#: Header fields signed when present (RFC 6376 5.4.1's list, plus the MIME and list fields).
DEFAULT_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "resent-date", "resent-from", "resent-sender", "resent-to",
    "resent-cc", "resent-message-id", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive",
)

_DOMAIN = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)+\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_FOLD_WIDTH = 78


class DkimError(Exception):
    """A signature that cannot pass; ``result`` is its verdict."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: str                 # pass fail neutral policy temperror permerror
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    header_b: str = ""
    reason: str = ""
    identity: str = ""
    testing: bool = False

    def auth_results(self) -> str:
        """``dkim=pass header.d=... header.i=... header.s=... header.a=... header.b=...``"""
        parts = [f"dkim={self.result}"]
        if self.reason and self.result != "pass":
            reason = self.reason.replace("\\", "").replace('"', "'")
            parts.append(f'reason="{reason}"')
        if self.testing:
            parts.append("(test key)")
        for name, value in (("header.d", self.domain), ("header.i", self.identity),
                            ("header.s", self.selector), ("header.a", self.algorithm),
                            ("header.b", self.header_b)):
            if value and all(0x21 <= ord(c) < 0x7F and c not in ';()"\\' for c in value):
                parts.append(f"{name}={value}")
        return " ".join(parts)


# --------------------------------------------------------------------------- key records

@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_type: str               # rsa | ed25519
    public_key: Any
    bits: int
    hashes: tuple[str, ...] | None = None
    services: tuple[str, ...] = ("*",)
    testing: bool = False
    strict: bool = False


def _colon_list(value: str) -> tuple[str, ...]:
    return tuple(x.strip(" \t\r\n").lower() for x in value.split(":") if x.strip(" \t\r\n"))


def parse_key_record(text: str) -> KeyRecord:
    """A DKIM key record (RFC 6376 3.6.1, RFC 8463 4.2), or ``DkimError('permerror')``."""
    if len(text) > MAX_KEY_RECORD:
        raise DkimError("permerror", f"key record is longer than {MAX_KEY_RECORD} characters")
    try:
        tags = parse_tags(text)
    except TagListError as exc:
        raise DkimError("permerror", f"key record syntax: {exc}") from None
    if "v" in tags and (next(iter(tags)) != "v" or tags["v"] != "DKIM1"):
        raise DkimError("permerror", "key record v= must be DKIM1 and come first")
    key_type = tags.get("k", "rsa").lower()
    if key_type not in ("rsa", "ed25519"):
        raise DkimError("permerror", f"unknown key type k={key_type[:20]}")
    if "p" not in tags:
        raise DkimError("permerror", "key record has no p= tag")
    p = strip_fws(tags["p"])
    if not p:
        raise DkimError("permerror", "key revoked")
    try:
        raw = base64.b64decode(p, validate=True)
    except (binascii.Error, ValueError):
        raise DkimError("permerror", "key p= is not valid base64") from None
    if key_type == "rsa":
        try:
            public = serialization.load_der_public_key(raw)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise DkimError("permerror", "key p= is not an RSA public key") from None
        if not isinstance(public, rsa.RSAPublicKey):
            raise DkimError("permerror", "key p= is not an RSA public key")
        bits = public.key_size
        if bits < MIN_RSA_BITS:
            raise DkimError("permerror", f"RSA key of {bits} bits is too short "
                                         f"(minimum {MIN_RSA_BITS}, RFC 8301)")
        if bits > MAX_RSA_BITS:
            raise DkimError("permerror", f"RSA key of {bits} bits is too long")
    else:
        if len(raw) != 32:
            raise DkimError("permerror", "Ed25519 key p= must be 32 octets (RFC 8463)")
        public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        bits = 256
    flags = _colon_list(tags.get("t", ""))
    return KeyRecord(key_type, public, bits,
                     hashes=_colon_list(tags["h"]) if "h" in tags else None,
                     services=_colon_list(tags["s"]) if "s" in tags else ("*",),
                     testing="y" in flags, strict="s" in flags)


async def fetch_key(resolver: Any, selector: str, domain: str) -> KeyRecord:
    """The key of ``selector._domainkey.domain``: the first record that parses."""
    name = f"{selector}._domainkey.{domain}"
    try:
        answer = await resolver.txt(name)
    except TempFail as exc:
        raise DkimError("temperror", f"key lookup failed: {exc.detail or 'DNS timeout'}") from None
    except (NxDomain, NoData):
        raise DkimError("permerror", "no key for signature") from None
    except InvalidName:
        raise DkimError("permerror", "selector and domain do not form a valid DNS name") from None
    except DnsError as exc:
        raise DkimError("temperror", f"key lookup failed: {exc}") from None
    first: DkimError | None = None
    for text in answer.records:
        try:
            return _parsed_key(text)
        except DkimError as exc:
            first = first or exc
    raise first or DkimError("permerror", "no key for signature")


_key_cache: dict[str, KeyRecord | DkimError] = {}
_KEY_CACHE_MAX = 1024


def _parsed_key(text: str) -> KeyRecord:
    """``parse_key_record`` with the outcome remembered per record text (the DNS cache
    keeps the text; this saves decoding the same public key for every message)."""
    cached = _key_cache.get(text)
    if cached is None:
        try:
            cached = parse_key_record(text)
        except DkimError as exc:
            cached = exc
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[text] = cached
    if isinstance(cached, DkimError):
        raise DkimError(cached.result, cached.reason)
    return cached


# --------------------------------------------------------------------------- signatures

def b64_tag(tags: dict[str, str], name: str) -> bytes:
    try:
        return base64.b64decode(strip_fws(tags[name]), validate=True)
    except (binascii.Error, ValueError):
        raise DkimError("permerror", f"{name}= is not valid base64") from None


def algorithm_tag(tags: dict[str, str]) -> str:
    a = tags["a"].strip().lower()
    if a == "rsa-sha1":
        raise DkimError("permerror", "rsa-sha1 signatures are not accepted (RFC 8301)")
    if a not in (RSA_SHA256, ED25519_SHA256):
        raise DkimError("permerror", f"unknown signature algorithm a={a[:30]}")
    return a


def domain_tag(tags: dict[str, str], name: str = "d") -> str:
    d = tags[name].strip().rstrip(".").lower()
    if not d.isascii() or not _DOMAIN.match(d):
        raise DkimError("permerror", f"{name}= is not a domain name")
    return d


def selector_tag(tags: dict[str, str]) -> str:
    s = tags["s"].strip()
    if not valid_selector(s):
        raise DkimError("permerror", "s= is not a valid selector")
    return s.lower()


def number_tag(tags: dict[str, str], name: str, digits: int) -> int | None:
    if name not in tags:
        return None
    value = tags[name].strip()
    if not _DIGITS.match(value) or len(value) > digits:
        raise DkimError("permerror", f"{name}= is not a number of at most {digits} digits")
    return int(value)


@dataclass(slots=True)
class Signature:
    """A parsed DKIM-Signature or ARC-Message-Signature."""

    field: Field
    tags: dict[str, str]
    algorithm: str
    domain: str
    selector: str
    names: list[bytes]
    header_canon: str
    body_canon: str
    body_hash: bytes
    signature: bytes
    b_text: str
    identity: str = ""
    length: int | None = None
    timestamp: int | None = None
    expiration: int | None = None
    instance: int = 0


def describe(raw: bytes) -> dict[str, str]:
    """Best-effort d/s/a/b of a field that may not parse, for results."""
    try:
        text = raw.split(b":", 1)[1].decode("utf-8", "replace")
    except IndexError:
        return {}
    out = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip(" \t\r\n")
        if eq and name in ("d", "s", "a", "b", "i") and name not in out:
            value = strip_fws(value) if name == "b" else value.strip(" \t\r\n")
            out[name] = value[:255]
    return out


def parse_signature(fld: Field, *, arc: bool = False) -> Signature:
    """RFC 6376 3.5 (``arc``: RFC 8617 4.1.2, no v=, i= is the instance)."""
    text = fld.raw.split(b":", 1)[1].decode("utf-8", "replace")
    try:
        tags = parse_tags(text)
    except TagListError as exc:
        raise DkimError("permerror", f"signature syntax: {exc}") from None
    required = ("i", "a", "b", "bh", "d", "h", "s") if arc else ("v", "a", "b", "bh", "d", "h", "s")
    for name in required:
        if name not in tags:
            raise DkimError("permerror", f"signature has no {name}= tag")
    if not arc and tags["v"].strip() != "1":
        raise DkimError("permerror", f"unsupported version v={tags['v'][:10]}")
    algorithm = algorithm_tag(tags)
    domain = domain_tag(tags)
    selector = selector_tag(tags)
    canon = tags.get("c", "simple/simple").strip().lower()
    header_canon, _, body_canon = canon.partition("/")
    body_canon = body_canon or "simple"
    if header_canon not in ("simple", "relaxed") or body_canon not in ("simple", "relaxed"):
        raise DkimError("permerror", f"unknown canonicalization c={canon[:30]}")
    names = [n.strip(" \t\r\n").lower() for n in tags["h"].split(":")]
    if not all(names):
        raise DkimError("permerror", "h= has an empty header field name")
    if "from" not in names:
        raise DkimError("permerror", "From is not signed (h= must include From)")
    if arc and "arc-seal" in names:
        raise DkimError("permerror", "an ARC-Message-Signature must not sign ARC-Seal")
    instance = 0
    identity = ""
    if arc:
        instance = number_tag(tags, "i", 2) or 0
        if not 1 <= instance <= 50:
            raise DkimError("permerror", "ARC instance i= must be 1 to 50")
    else:
        identity = tags.get("i", "@" + domain).strip()
        local, at, idomain = identity.rpartition("@")
        idomain = idomain.rstrip(".").lower()
        if not at or not (idomain == domain or idomain.endswith("." + domain)):
            raise DkimError("permerror", "i= domain is not d= or a subdomain of it")
    if "q" in tags:
        methods = [m.strip(" \t\r\n").lower() for m in tags["q"].split(":")]
        if "dns/txt" not in methods:
            raise DkimError("permerror", f"unsupported query method q={tags['q'][:30]}")
    length = number_tag(tags, "l", 76)
    timestamp = number_tag(tags, "t", 12)
    expiration = number_tag(tags, "x", 12)
    body_hash = b64_tag(tags, "bh")
    signature = b64_tag(tags, "b")
    if not signature:
        raise DkimError("permerror", "b= is empty")
    return Signature(fld, tags, algorithm, domain, selector, [n.encode("ascii", "replace") for n in names],
                     header_canon, body_canon, body_hash, signature, strip_fws(tags["b"]),
                     identity, length, timestamp, expiration, instance)


def check_times(timestamp: int | None, expiration: int | None, now: int) -> None:
    if expiration is not None:
        if timestamp is not None and expiration <= timestamp:
            raise DkimError("permerror", "x= is not after t=")
        if expiration < now:
            raise DkimError("permerror", "signature expired")
    if timestamp is not None and timestamp > now + CLOCK_SKEW:
        raise DkimError("permerror", "signature timestamp is in the future")


def check_key(key: KeyRecord, algorithm: str) -> None:
    wanted = "rsa" if algorithm == RSA_SHA256 else "ed25519"
    if key.key_type != wanted:
        raise DkimError("permerror", f"key type k={key.key_type} does not match a={algorithm}")
    if key.hashes is not None and "sha256" not in key.hashes:
        raise DkimError("permerror", "key h= does not allow sha256")
    if "*" not in key.services and "email" not in key.services:
        raise DkimError("permerror", "key is not for email (s=)")


class HeaderIndex:
    """The fields of a message by lower-case name, for ``h=`` selection."""

    def __init__(self, fields: list[Field]) -> None:
        self.fields = fields
        self.by_name: dict[bytes, list[bytes]] = {}
        for f in fields:
            self.by_name.setdefault(f.lname, []).append(f.raw)

    def signed_data(self, names: Sequence[bytes], canon: str, sig_raw: bytes) -> bytes:
        """RFC 6376 5.4.2: each named field from the bottom up, then the signature field
        with an empty b= and no final CRLF (canonicalized by ``canon.header_data``)."""
        used: Counter[bytes] = Counter()
        raws = []
        for name in names:
            stack = self.by_name.get(name)
            if stack is None:
                continue
            n = used[name]
            if n < len(stack):
                raws.append(stack[len(stack) - 1 - n])
                used[name] = n + 1
        return header_data(raws, canon, sig_raw)


class BodyHashes:
    """Body hashes of one message, computed once per (method, l=) by ``canon.body_hash``
    (the canonical body itself is never built)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._length: dict[str, int] = {}
        self._digest: dict[tuple[str, int | None], bytes] = {}

    def canonical_length(self, method: str) -> int:
        length = self._length.get(method)
        if length is None:
            self.digest(method, None)
            length = self._length[method]
        return length

    def digest(self, method: str, length: int | None) -> bytes:
        key = (method, length)
        value = self._digest.get(key)
        if value is None:
            value, self._length[method] = body_hash(self.body, method, length)
            self._digest[key] = value
        return value


def verify_data(algorithm: str, public_key: Any, signature: bytes, data: bytes) -> bool:
    digest = hashlib.sha256(data).digest()
    try:
        if algorithm == RSA_SHA256:
            public_key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            public_key.verify(signature, digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_data(algorithm: str, private_key: Any, data: bytes) -> bytes:
    digest = hashlib.sha256(data).digest()
    if algorithm == RSA_SHA256:
        return private_key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    return private_key.sign(digest)


async def check_signature(sig: Signature, index: HeaderIndex, bodies: BodyHashes,
                          resolver: Any, now: int) -> tuple[str, str, KeyRecord | None]:
    """The verdict on one parsed signature: (result, reason, key)."""
    check_times(sig.timestamp, sig.expiration, now)
    key = await fetch_key(resolver, sig.selector, sig.domain)
    check_key(key, sig.algorithm)
    if key.strict and sig.identity:
        if sig.identity.rpartition("@")[2].rstrip(".").lower() != sig.domain:
            raise DkimError("permerror", "key t=s forbids an i= in a subdomain of d=")
    digest = bodies.digest(sig.body_canon, sig.length)
    size = bodies.canonical_length(sig.body_canon)
    if sig.length is not None and sig.length > size:
        raise DkimError("permerror", "l= is longer than the body")
    if digest != sig.body_hash:
        return "fail", "body hash did not verify", key
    data = index.signed_data(sig.names, sig.header_canon, sig.field.raw)
    if not verify_data(sig.algorithm, key.public_key, sig.signature, data):
        return "fail", "signature did not verify", key
    if sig.length is not None and sig.length < size:
        return "policy", f"l= leaves {size - sig.length} body octets unsigned", key
    return "pass", "", key


async def _verify_one(fld: Field, index: HeaderIndex, bodies: BodyHashes, resolver: Any,
                      now: int) -> tuple[DkimResult, str]:
    info = describe(fld.raw)
    base = dict(domain=info.get("d", "").lower(), selector=info.get("s", ""),
                algorithm=info.get("a", "").lower(), identity=info.get("i", ""))
    try:
        sig = parse_signature(fld)
        base.update(domain=sig.domain, selector=sig.selector, algorithm=sig.algorithm,
                    identity=sig.identity)
        result, reason, key = await check_signature(sig, index, bodies, resolver, now)
        return DkimResult(result, reason=reason, testing=bool(key and key.testing), **base), \
            sig.b_text
    except DkimError as exc:
        return DkimResult(exc.result, reason=exc.reason, **base), info.get("b", "")
    except Exception as exc:        # a bug must not turn a message into a crash
        log.exception("dkim: unexpected error verifying a signature")
        return DkimResult("temperror", reason=f"internal error: {type(exc).__name__}",
                          **base), info.get("b", "")


def unique_prefixes(values: Sequence[str], minimum: int = 8) -> list[str]:
    """The shortest prefix (>= minimum) of each value that no other distinct value shares."""
    out = []
    for i, value in enumerate(values):
        n = minimum
        others = [v for j, v in enumerate(values) if j != i and v != value]
        while n < len(value) and any(o.startswith(value[:n]) for o in others):
            n += 1
        out.append(value[:n])
    return out


async def verify(message: bytes, resolver: Any, *, now: float | None = None,
                 max_signatures: int = MAX_SIGNATURES) -> list[DkimResult]:
    """One result per DKIM-Signature field, in message order; [] when there is none."""
    fields, body = split_message(message)
    sig_fields = [f for f in fields if f.lname == b"dkim-signature"]
    if not sig_fields:
        return []
    clock = int(now if now is not None else time.time())
    index = HeaderIndex(fields)
    bodies = BodyHashes(body)
    if len(sig_fields) == 1 and max_signatures >= 1:
        pairs = [await _verify_one(sig_fields[0], index, bodies, resolver, clock)]
    else:
        pairs = list(await asyncio.gather(*(_verify_one(f, index, bodies, resolver, clock)
                                            for f in sig_fields[:max_signatures])))
    for f in sig_fields[max_signatures:MAX_REPORTED]:
        info = describe(f.raw)
        pairs.append((DkimResult("neutral", domain=info.get("d", "").lower(),
                                 selector=info.get("s", ""), algorithm=info.get("a", ""),
                                 reason=f"not checked: more than {max_signatures} signatures"),
                      info.get("b", "")))
    prefixes = unique_prefixes([b for _, b in pairs])
    return [_with_b(r, p) for (r, _), p in zip(pairs, prefixes)]


def _with_b(result: DkimResult, prefix: str) -> DkimResult:
    return DkimResult(result.result, result.domain, result.selector, result.algorithm, prefix,
                      result.reason, result.identity, result.testing)


# --------------------------------------------------------------------------- signing

def fold_field(name: str, tags: Sequence[tuple[str, str]]) -> str:
    """``Name: t1=v1; t2=v2;`` folded at 78 columns, ending with ``b=`` on its own line.

    ``h=`` values are split after colons when they do not fit. The returned text is what
    gets hashed (after canonicalization); the caller appends the b= value."""
    lines: list[str] = []
    line = f"{name}:"
    for tag, value in tags:
        atoms = [f"{tag}={value};"]
        if tag == "h" and len(atoms[0]) > _FOLD_WIDTH - 10:
            parts = value.split(":")
            atoms = [f"h={parts[0]}"] + [f":{p}" for p in parts[1:]]
            atoms[-1] += ";"
        for k, atom in enumerate(atoms):
            sep = "" if (tag == "h" and k > 0) else " "
            if len(line) + len(sep) + len(atom) > _FOLD_WIDTH and line.strip():
                lines.append(line)
                line = "\t" + atom
            else:
                line += sep + atom
    lines.append(line)
    return "\r\n".join(lines) + "\r\n\tb="


def fold_b(value: str) -> str:
    width = _FOLD_WIDTH - 10
    return "\r\n\t".join(value[i:i + width] for i in range(0, len(value), width)) + "\r\n"


class DkimSigner:
    """One signing identity: ``d=`` domain, ``s=`` selector and its private key.

    ``algorithm`` is inferred from the key when omitted. ``headers`` are signed once per
    instance present, ``oversign`` names once more. ``expire`` (seconds) adds ``x=``;
    ``identity`` adds ``i=`` (it must be in ``domain``)."""

    def __init__(self, domain: str, selector: str, private_key: Any, algorithm: str | None = None,
                 *, headers: Sequence[str] = DEFAULT_HEADERS, oversign: Sequence[str] = ("from",),
                 canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
                 identity: str | None = None, expire: int | None = None) -> None:
        try:
            domain = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise ValueError(f"{domain!r} is not a domain name") from None
        if not _DOMAIN.match(domain):
            raise ValueError(f"{domain!r} is not a domain name")
        if not valid_selector(selector):
            raise ValueError(f"{selector!r} is not a valid selector")
        self.domain = domain
        self.selector = selector
        self.private_key = load_private_key(private_key)
        inferred = key_algorithm(self.private_key)
        if algorithm is None:
            algorithm = inferred
        if algorithm != inferred:
            raise ValueError(f"a {inferred} key cannot sign {algorithm}")
        if algorithm == RSA_SHA256 and self.private_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        self.algorithm = algorithm
        self.headers = tuple(h.strip().lower() for h in headers)
        self.oversign = tuple(h.strip().lower() for h in oversign)
        if "from" not in self.headers and "from" not in self.oversign:
            raise ValueError("From must be among the signed header fields")
        for h in self.headers + self.oversign:
            if not h or not all(0x21 <= ord(c) < 0x7F and c != ":" for c in h):
                raise ValueError(f"{h!r} is not a header field name")
        header_canon, body_canon = canonicalization
        if header_canon not in ("simple", "relaxed") or body_canon not in ("simple", "relaxed"):
            raise ValueError(f"unknown canonicalization {canonicalization!r}")
        self.header_canon, self.body_canon = header_canon, body_canon
        if identity is not None:
            idomain = identity.rpartition("@")[2].lower()
            if "@" not in identity or not (idomain == domain or idomain.endswith("." + domain)):
                raise ValueError(f"identity {identity!r} is not in {domain}")
        self.identity = identity
        if expire is not None and expire <= 0:
            raise ValueError("expire must be positive")
        self.expire = expire

    def __repr__(self) -> str:
        return f"DkimSigner({self.domain!r}, {self.selector!r}, {self.algorithm!r})"

    def header_names(self, index: HeaderIndex) -> list[str]:
        names = []
        for h in self.headers:
            names += [h] * len(index.by_name.get(h.encode("ascii"), ()))
        names += list(self.oversign)
        return names

    def signature_field(self, name: str, tags: list[tuple[str, str]], index: HeaderIndex,
                        names: Sequence[str], canon: str) -> bytes:
        """Fold ``tags``, hash ``names`` + the field, sign, return the whole field."""
        prefix = fold_field(name, tags).encode("ascii")
        data = index.signed_data([n.encode("ascii") for n in names], canon, prefix)
        b = base64.b64encode(sign_data(self.algorithm, self.private_key, data)).decode("ascii")
        return prefix + fold_b(b).encode("ascii")

    def sign_parsed(self, index: HeaderIndex, bodies: BodyHashes, now: int) -> bytes:
        names = self.header_names(index)
        if b"from" not in index.by_name:
            raise ValueError("the message has no From field (RFC 6376 requires signing it)")
        bh = base64.b64encode(bodies.digest(self.body_canon, None)).decode("ascii")
        tags = [("v", "1"), ("a", self.algorithm),
                ("c", f"{self.header_canon}/{self.body_canon}"), ("d", self.domain),
                ("s", self.selector), ("t", str(now))]
        if self.expire is not None:
            tags.append(("x", str(now + self.expire)))
        if self.identity is not None:
            tags.append(("i", self.identity))
        tags += [("h", ":".join(names)), ("bh", bh)]
        return self.signature_field("DKIM-Signature", tags, index, names, self.header_canon)


def sign(message: bytes, signers: Sequence[DkimSigner], *, now: float | None = None) -> bytes:
    """The DKIM-Signature fields (CRLF-terminated) to prepend to ``message``, one per
    signer. ``ValueError`` if the message has no From field."""
    fields, body = split_message(message)
    index = HeaderIndex(fields)
    bodies = BodyHashes(body)
    clock = int(now if now is not None else time.time())
    return b"".join(s.sign_parsed(index, bodies, clock) for s in signers)
