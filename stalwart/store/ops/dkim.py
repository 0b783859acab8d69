"""DKIM signing keys, per domain (the key material is made by the caller: generating an
RSA key takes long enough that it must not hold up the single writer).

Records live in the META subspace under ``dkim/<domain>/<selector>`` (domain in IDNA ASCII,
selector lower case), so that one prefix scan lists a domain's keys; values are the maps
of ``stalwart.mailauth.keys``: ``{"domain", "selector", "algorithm", "private_key"
(PKCS#8 PEM), "created"}``. A key belongs to a local domain; deleting the domain leaves
its keys (re-creating the domain brings them back into use).
"""

from __future__ import annotations

import re
from typing import Any

from .. import keys
from ..engine import OpCtx, _require, _str, normalize_domain, operation
from ..errors import StoreError

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
MAX_PEM = 16_384
_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\Z")


def key_name(domain: str, selector: str = "") -> bytes:
    """The META key of one record, or with ``selector=""`` the prefix of a domain's."""
    return keys.meta(f"dkim/{domain}/{selector}")


def normalize_selector(selector: Any) -> str:
    selector = _str(selector, "selector", max_len=200).strip().lower()
    _require(_SELECTOR.match(selector) is not None,
             f"selector {selector!r} must be DNS labels (letters, digits, hyphens)")
    return selector


@operation
def dkim_key_put(c: OpCtx, domain: Any, selector: Any, algorithm: Any, private_key: Any,
                 created: Any = None) -> dict:
    domain = normalize_domain(domain)
    selector = normalize_selector(selector)
    _require(algorithm in ALGORITHMS, f"algorithm must be one of {', '.join(ALGORITHMS)}")
    _str(private_key, "private key", max_len=MAX_PEM)
    _require(private_key.startswith("-----BEGIN PRIVATE KEY-----"),
             "private key must be PKCS#8 PEM")
    if c.txn.get(keys.domain(domain)) is None:
        raise StoreError("not_found", f"domain {domain!r} does not exist")
    name = key_name(domain, selector)
    if c.txn.get(name) is not None:
        raise StoreError("exists", f"DKIM key {selector!r} of {domain} already exists")
    _require(created is None or (isinstance(created, (int, float)) and not isinstance(created, bool)
                                 and created >= 0), "created must be epoch seconds")
    record = {"domain": domain, "selector": selector, "algorithm": algorithm,
              "private_key": private_key, "created": created if created is not None else c.now}
    c.store(name, record)
    return record


@operation
def dkim_key_delete(c: OpCtx, domain: Any, selector: Any) -> None:
    domain = normalize_domain(domain)
    selector = normalize_selector(selector)
    name = key_name(domain, selector)
    if c.txn.get(name) is None:
        raise StoreError("not_found", f"DKIM key {selector!r} of {domain} does not exist")
    c.txn.delete(name)
