"""DKIM signing keys in the management API (mounted by ``stalwart.http.api``)::

    GET    /api/dkim                          -> 200 {"keys": [Key]}       (every domain)
    GET    /api/dkim/{domain}                 -> 200 {"domain", "keys": [Key]}
    POST   /api/dkim/{domain}                 {"algorithms"?: ["rsa-sha256"|"ed25519-sha256"],
                                               "selector"?: str, "rsa_bits"?: int}
                                              -> 201 {"domain", "keys": [Key (the new ones)]}
    DELETE /api/dkim/{domain}/{selector}      -> 204

    Key = {"domain", "selector", "algorithm", "created" (epoch seconds),
           "dns": {"name": "<selector>._domainkey.<domain>", "type": "TXT",
                   "value": "v=DKIM1; k=...; p=...", "strings": [<=255-octet pieces],
                   "zone": "<zone file line>"}}

POST generates one key per algorithm (default: ``auth.dkim.sign.algorithms``; RSA size
``auth.dkim.sign.rsa-bits`` unless ``rsa_bits`` says otherwise) in a worker thread, then
stores them; the domain must exist (404). Selectors are ``rsa-YYYYMMDD`` and
``ed25519-YYYYMMDD`` (``-2``, ``-3``... when taken) unless ``selector`` is given, which
needs a single algorithm. Private keys never leave the store through the API: responses
carry the public half as the DNS record to publish.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from stalwart.mailauth import keys as dkim_keys

from ..message import HTTPError, Request, Response
from . import validate as v
from .endpoints import ManagementApi

__all__ = ["DkimApi"]


def _algorithms(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise v.invalid(field, "must be a non-empty list")
    out = []
    for item in value:
        if item not in dkim_keys.ALGORITHMS:
            raise v.invalid(field, f"{item!r} is not one of {', '.join(dkim_keys.ALGORITHMS)}")
        if item not in out:
            out.append(item)
    return out


def _selector(field: str, value: Any) -> str:
    if not isinstance(value, str) or not dkim_keys.valid_selector(value):
        raise v.invalid(field, "must be DNS labels: letters, digits and hyphens")
    return value.lower()


def _rsa_bits(field: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or \
            not dkim_keys.MIN_RSA_BITS <= value <= dkim_keys.MAX_RSA_BITS:
        raise v.invalid(field, f"must be an integer from {dkim_keys.MIN_RSA_BITS} to "
                               f"{dkim_keys.MAX_RSA_BITS}")
    return value


def key_view(record: dict) -> dict:
    """A stored key as the API shows it: the DNS record instead of the private key."""
    key = dkim_keys.load_private_key(record["private_key"])
    dns = dkim_keys.dns_record(record["domain"], record["selector"], key)
    return {"domain": record["domain"], "selector": record["selector"],
            "algorithm": record["algorithm"], "created": record.get("created"),
            "dns": {"name": dns.name, "type": "TXT", "value": dns.value,
                    "strings": list(dns.strings), "zone": dns.zone_line()}}


class DkimApi:
    def __init__(self, config: Any, api: ManagementApi) -> None:
        self.config = config
        self.api = api

    def _algorithms_setting(self) -> list[str]:
        try:
            value = self.config.get("auth.dkim.sign.algorithms")
        except (KeyError, AttributeError):
            value = None
        if isinstance(value, (list, tuple)) and value and \
                all(a in dkim_keys.ALGORITHMS for a in value):
            return list(dict.fromkeys(value))
        return list(dkim_keys.ALGORITHMS)

    def _bits_setting(self) -> int:
        try:
            value = self.config.get("auth.dkim.sign.rsa-bits")
        except (KeyError, AttributeError):
            value = None
        if isinstance(value, int) and dkim_keys.MIN_RSA_BITS <= value <= dkim_keys.MAX_RSA_BITS:
            return value
        return dkim_keys.DEFAULT_RSA_BITS

    def _domain(self, request: Request, store: Any) -> str:
        name = v.domain_name("domain", request.path_params["domain"])
        record = store.get_domain(name)
        if record is None:
            raise HTTPError(404, f"domain {name!r} does not exist", code="not_found")
        return record["name"]

    async def list_all(self, request: Request, store: Any) -> Response:
        records = sorted(store.dkim_keys(), key=lambda r: (r["domain"], r.get("created", 0),
                                                           r["selector"]))
        return Response.json({"keys": [key_view(r) for r in records]})

    async def list_domain(self, request: Request, store: Any) -> Response:
        domain = self._domain(request, store)
        records = sorted(store.dkim_keys(domain), key=lambda r: (r.get("created", 0),
                                                                 r["selector"]))
        return Response.json({"domain": domain, "keys": [key_view(r) for r in records]})

    async def create(self, request: Request, store: Any) -> Response:
        body = v.check_object(request.json() if request.body else {},
                              optional_fields={"algorithms": _algorithms,
                                               "selector": _selector, "rsa_bits": _rsa_bits})
        domain = self._domain(request, store)
        algorithms = body.get("algorithms") or self._algorithms_setting()
        bits = body.get("rsa_bits") or self._bits_setting()
        if "selector" in body and len(algorithms) != 1:
            raise HTTPError(400, "a selector names one key: give exactly one algorithm",
                            code="invalid")
        taken = [r["selector"] for r in store.dkim_keys(domain)]
        now = time.time()
        created = []
        for algorithm in algorithms:
            selector = body.get("selector") or dkim_keys.new_selector(algorithm, taken, now)
            taken.append(selector)
            key = await asyncio.to_thread(dkim_keys.generate, algorithm, bits)
            record = await store.dkim_key_put(domain, selector, algorithm,
                                              dkim_keys.private_key_pem(key), now)
            created.append(key_view(record))
            self.api._audit(request, f"created DKIM key {selector} ({algorithm}) for {domain}")
        return Response.json({"domain": domain, "keys": created}, status=201,
                             headers=[("location", f"/api/dkim/{quote(domain)}")])

    async def delete(self, request: Request, store: Any) -> Response:
        domain = v.domain_name("domain", request.path_params["domain"])
        selector = _selector("selector", request.path_params["selector"])
        await store.dkim_key_delete(domain, selector)
        self.api._audit(request, f"deleted DKIM key {selector} of {domain}")
        return Response.empty()
