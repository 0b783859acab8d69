"""ARC, the Authenticated Received Chain (RFC 8617): verify the chain a message arrives
with, and seal mail we forward.

    chain = await arc.verify(message, resolver)           # ArcResult: none | pass | fail
    headers = arc.seal(message, signer, "mx.example.org; spf=pass ...; dkim=pass ...", chain)
    forwarded = headers + message

An ARC set is three fields sharing an instance ``i=`` (1 to 50): ARC-Authentication-Results
(AAR: ``i=N; <authserv-id>; <results>``), ARC-Message-Signature (AMS: a DKIM signature of
the message with ``i=`` as the instance, never signing ARC-Seal) and ARC-Seal (AS: ``i``,
``cv``, ``a``, ``d``, ``s``, ``t``, ``b``; no ``h=``), which signs, relaxed, every ARC set
from 1 to its own in order AAR, AMS, AS, its own b= emptied.

Verification (RFC 8617 5.2), stopping at the first failure:

1. no ARC field: ``none``;
2. every ARC field has a valid instance, instances run 1..N with N <= 50, each set has
   exactly one AAR, AMS and AS, and every tag list parses;
3. the newest seal does not say ``cv=fail`` (a chain someone already found broken);
4. seal 1 says ``cv=none``, every later seal ``cv=pass``;
5. the newest AMS verifies (as a DKIM signature: key lookup, body hash, signature; a
   partial-body ``l=`` AMS does not count);
6. every seal verifies, newest first.

Then ``pass``, with ``oldest_pass``: the lowest instance from which every AMS up to N
still verifies (where the message was last unchanged). A DNS failure during the checks
makes the chain ``fail`` with ``temporary=True``: a receiver may defer instead of
trusting or rejecting.

Sealing adds instance N+1 with ``cv`` from the verification of the message as received
(``chain.cv``: none, pass or fail). A seal with ``cv=fail`` covers only its own set, as
the chain before it is not vouched for. No set is added past instance 50. The AMS signs
the signer's header list (without ARC fields) relaxed/relaxed; the fields come back in
the order to prepend: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from .canon import Field, TagListError, parse_tags, relaxed_header, split_message, strip_b_value
from .dkim import (BodyHashes, DkimError, DkimSigner, HeaderIndex, algorithm_tag,
                   b64_tag, check_key, check_signature, domain_tag, fetch_key, fold_b,
                   fold_field, number_tag, parse_signature, selector_tag, sign_data,
                   verify_data)

__all__ = ["ArcResult", "ArcSet", "verify", "seal", "MAX_INSTANCE"]

log = logging.getLogger("stalwart.arc")

MAX_INSTANCE = 50
AAR, AMS, AS = b"arc-authentication-results", b"arc-message-signature", b"arc-seal"
ARC_FIELDS = (AAR, AMS, AS)
_AAR_INSTANCE = re.compile(r"[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,3})[ \t\r\n]*;")


@dataclass(frozen=True, slots=True)
class ArcSet:
    instance: int
    cv: str
    seal_domain: str
    seal_selector: str
    ams_domain: str
    ams_selector: str
    authentication_results: str      # the AAR value after "i=N;"


@dataclass(frozen=True, slots=True)
class ArcResult:
    result: str                      # none | pass | fail
    reason: str = ""
    instance: int = 0                # highest instance found (0: no ARC fields)
    sets: tuple[ArcSet, ...] = ()
    oldest_pass: int = 0
    temporary: bool = False          # a DNS failure decided the fail

    @property
    def cv(self) -> str:
        """The ``cv=`` a sealer of this message writes."""
        return self.result if self.result in ("none", "pass") else "fail"

    def auth_results(self) -> str:
        text = f"arc={self.result}"
        if self.result == "pass" and self.oldest_pass:
            text += f" header.oldest-pass={self.oldest_pass}"
        if self.reason and self.result == "fail":
            text += " (" + re.sub(r"[()\\\r\n]", "", self.reason) + ")"
        return text


class _ChainError(Exception):
    def __init__(self, reason: str, instance: int = 0, temporary: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


def _field_text(f: Field) -> str:
    return f.raw.split(b":", 1)[1].decode("utf-8", "replace")


def _instance(f: Field) -> int | None:
    text = _field_text(f)
    if f.lname == AAR:
        m = _AAR_INSTANCE.match(text)
        return int(m.group(1)) if m else None
    try:
        value = parse_tags(text).get("i", "").strip()
    except TagListError:
        return None
    return int(value) if value.isdigit() and len(value) <= 3 else None


def _collect(fields: list[Field]) -> tuple[dict[int, dict[bytes, list[Field]]], str]:
    """ARC fields by instance and name, and the problem with the first field that has no
    valid instance ("" when none has)."""
    sets: dict[int, dict[bytes, list[Field]]] = {}
    problem = ""
    for f in fields:
        if f.lname not in ARC_FIELDS:
            continue
        instance = _instance(f)
        if instance is None:
            problem = problem or f"{f.lname.decode()} field without a valid i= instance"
            continue
        sets.setdefault(instance, {}).setdefault(f.lname, []).append(f)
    return sets, problem


def _parse_seal(f: Field) -> dict[str, Any]:
    try:
        tags = parse_tags(_field_text(f))
    except TagListError as exc:
        raise _ChainError(f"ARC-Seal syntax: {exc}") from None
    for name in ("i", "a", "b", "d", "s", "cv"):
        if name not in tags:
            raise _ChainError(f"ARC-Seal has no {name}= tag")
    if "h" in tags:
        raise _ChainError("ARC-Seal must not have an h= tag")
    cv = tags["cv"].strip().lower()
    if cv not in ("none", "pass", "fail"):
        raise _ChainError(f"ARC-Seal cv={cv[:10]} is not none, pass or fail")
    try:
        seal = {"algorithm": algorithm_tag(tags), "domain": domain_tag(tags),
                "selector": selector_tag(tags), "signature": b64_tag(tags, "b"), "cv": cv,
                "t": number_tag(tags, "t", 12)}
    except DkimError as exc:
        raise _ChainError(f"ARC-Seal: {exc.reason}") from None
    if not seal["signature"]:
        raise _ChainError("ARC-Seal b= is empty")
    return seal


def _seal_data(ordered: list[tuple[Field, Field, Field]], upto: int, seal_raw: bytes) -> bytes:
    """What the seal of instance ``upto`` signs (RFC 8617 5.1.1)."""
    parts = []
    for i in range(upto):
        aar, ams, as_ = ordered[i]
        parts.append(relaxed_header(aar.raw))
        parts.append(relaxed_header(ams.raw))
        if i < upto - 1:
            parts.append(relaxed_header(as_.raw))
    parts.append(relaxed_header(strip_b_value(seal_raw))[:-2])
    return b"".join(parts)


async def _check_ams(f: Field, index: HeaderIndex, bodies: BodyHashes, resolver: Any,
                     now: int) -> None:
    try:
        sig = parse_signature(f, arc=True)
        result, reason, _ = await check_signature(sig, index, bodies, resolver, now)
    except DkimError as exc:
        raise _ChainError(f"ARC-Message-Signature: {exc.reason}",
                          temporary=exc.result == "temperror") from None
    if result != "pass":
        raise _ChainError(f"ARC-Message-Signature: {reason}")


async def _check_seal(seal: dict, ordered, instance: int, resolver: Any) -> None:
    try:
        key = await fetch_key(resolver, seal["selector"], seal["domain"])
        check_key(key, seal["algorithm"])
    except DkimError as exc:
        raise _ChainError(f"ARC-Seal i={instance}: {exc.reason}",
                          temporary=exc.result == "temperror") from None
    data = _seal_data(ordered, instance, ordered[instance - 1][2].raw)
    if not verify_data(seal["algorithm"], key.public_key, seal["signature"], data):
        raise _ChainError(f"ARC-Seal i={instance} did not verify")


async def verify(message: bytes, resolver: Any, *, now: float | None = None) -> ArcResult:
    fields, body = split_message(message)
    if not any(f.lname in ARC_FIELDS for f in fields):
        return ArcResult("none")
    clock = int(now if now is not None else time.time())
    highest = 0
    sets_info: tuple[ArcSet, ...] = ()
    try:
        by_instance, problem = _collect(fields)
        highest = max(by_instance, default=0)
        if problem:
            raise _ChainError(problem)
        if highest > MAX_INSTANCE or min(by_instance) < 1:
            raise _ChainError(f"ARC instance {highest if highest > MAX_INSTANCE else min(by_instance)}"
                              f" is outside 1..{MAX_INSTANCE}")
        if sorted(by_instance) != list(range(1, highest + 1)):
            raise _ChainError(f"ARC sets are not numbered 1 to {highest}")
        ordered = []
        for i in range(1, highest + 1):
            group = by_instance[i]
            for name in ARC_FIELDS:
                count = len(group.get(name, ()))
                if count != 1:
                    raise _ChainError(f"ARC set {i} has {count} {name.decode()} fields")
            ordered.append((group[AAR][0], group[AMS][0], group[AS][0]))
        seals = [_parse_seal(s) for _, _, s in ordered]
        infos = []
        for i, ((aar, ams, _), seal) in enumerate(zip(ordered, seals), start=1):
            ams_tags = {}
            try:
                ams_tags = parse_tags(_field_text(ams))
            except TagListError:
                pass
            aar_text = _field_text(aar)
            aar_text = aar_text[_AAR_INSTANCE.match(aar_text).end():].strip()
            infos.append(ArcSet(i, seal["cv"], seal["domain"], seal["selector"],
                                ams_tags.get("d", "").strip().lower(),
                                ams_tags.get("s", "").strip(), aar_text))
        sets_info = tuple(infos)
        if seals[-1]["cv"] == "fail":
            raise _ChainError(f"ARC-Seal i={highest} records a failed chain (cv=fail)")
        for i, seal in enumerate(seals, start=1):
            wanted = "none" if i == 1 else "pass"
            if seal["cv"] != wanted:
                raise _ChainError(f"ARC-Seal i={i} has cv={seal['cv']}, expected {wanted}")
        index = HeaderIndex(fields)
        bodies = BodyHashes(body)
        await _check_ams(ordered[-1][1], index, bodies, resolver, clock)
        for i in range(highest, 0, -1):
            await _check_seal(seals[i - 1], ordered, i, resolver)
        oldest = highest
        for i in range(highest - 1, 0, -1):
            try:
                await _check_ams(ordered[i - 1][1], index, bodies, resolver, clock)
            except _ChainError:
                break
            oldest = i
    except _ChainError as exc:
        return ArcResult("fail", exc.reason, highest, sets_info, temporary=exc.temporary)
    except Exception as exc:             # a bug must not turn a message into a crash
        log.exception("arc: unexpected error verifying a chain")
        return ArcResult("fail", f"internal error: {type(exc).__name__}", highest, sets_info,
                         temporary=True)
    return ArcResult("pass", "", highest, sets_info, oldest)


_FOLDED_TEXT = re.compile(r"(?:[^\r\n]|\r\n[ \t])*\Z")


def seal(message: bytes, signer: DkimSigner, auth_results: str, chain: ArcResult, *,
         now: float | None = None) -> bytes:
    """ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results (CRLF-terminated,
    in the order to prepend) for instance N+1. ``auth_results`` is the payload of our
    Authentication-Results field (``authserv-id; method=result ...``); ``chain`` is
    ``verify``'s result for this same message. ``ValueError`` when the chain is at
    instance 50, when ``chain`` does not describe this message, or for a bad payload."""
    auth_results = auth_results.strip()
    if not auth_results or not _FOLDED_TEXT.match(auth_results):
        raise ValueError("auth_results must be non-empty text without bare line breaks")
    fields, body = split_message(message)
    by_instance, _ = _collect(fields)
    existing = max(by_instance, default=0)
    arc_fields = any(f.lname in ARC_FIELDS for f in fields)
    if chain.instance != existing:
        raise ValueError(f"the chain result is for instance {chain.instance}, the message "
                         f"has ARC sets up to {existing}")
    if arc_fields == (chain.result == "none"):
        raise ValueError("chain result none goes with a message without ARC sets, and only")
    instance = existing + 1
    if instance > MAX_INSTANCE:
        raise ValueError(f"the ARC chain already has {MAX_INSTANCE} sets")
    cv = chain.cv
    previous: list[tuple[Field, Field, Field]] = []
    if cv == "pass":
        previous = [(by_instance[i][AAR][0], by_instance[i][AMS][0], by_instance[i][AS][0])
                    for i in range(1, instance)]
    clock = int(now if now is not None else time.time())
    aar_raw = f"ARC-Authentication-Results: i={instance}; {auth_results}\r\n".encode("utf-8")

    index = HeaderIndex(fields)
    bodies = BodyHashes(body)
    names = [n for n in signer.header_names(index) if n.encode("ascii") not in ARC_FIELDS]
    if "from" not in names:
        names.append("from")
    bh = base64.b64encode(bodies.digest("relaxed", None)).decode("ascii")
    ams_tags = [("i", str(instance)), ("a", signer.algorithm), ("c", "relaxed/relaxed"),
                ("d", signer.domain), ("s", signer.selector), ("t", str(clock)),
                ("h", ":".join(names)), ("bh", bh)]
    ams_raw = signer.signature_field("ARC-Message-Signature", ams_tags, index, names, "relaxed")

    as_tags = [("i", str(instance)), ("cv", cv), ("a", signer.algorithm),
               ("d", signer.domain), ("s", signer.selector), ("t", str(clock))]
    prefix = fold_field("ARC-Seal", as_tags).encode("ascii")
    own = (Field(AAR, aar_raw), Field(AMS, ams_raw), Field(AS, prefix))
    if cv == "fail":
        data = _seal_data([own], 1, prefix)          # vouches for its own set only
    else:
        data = _seal_data(previous + [own], instance, prefix)
    b = base64.b64encode(sign_data(signer.algorithm, signer.private_key, data)).decode("ascii")
    as_raw = prefix + fold_b(b).encode("ascii")
    return as_raw + ams_raw + aar_raw
