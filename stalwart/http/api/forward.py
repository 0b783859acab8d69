"""Forwarding aliases in the management API (mounted by ``stalwart.http.api``; records
and rules in ``stalwart/store/ops/forward.py``)::

    GET    /api/aliases[?domain=D]            -> 200 {"aliases": [Alias]}   (404: no such D)
    POST   /api/aliases                       {"address", "targets": [addresses]}
                                              -> 201 Alias, Location header
    GET    /api/aliases/{address}             -> 200 Alias with "expansion"
    PUT    /api/aliases/{address}             {"targets": [addresses]} -> 200 Alias
    DELETE /api/aliases/{address}             -> 204

    Alias = {"address", "targets", "created", "updated" (epoch seconds)}
    expansion = {"accounts": [{"address", "account"}], "remote": [addresses],
                 "missing": [local targets that reach nobody now]}

A forwarding alias is an address of a local (not alias) domain whose mail goes to its
targets: local addresses get a copy in their account, remote ones get it through the
queue, ARC-sealed by the alias's domain. Refused (400/404/409, nothing changed): an
address of an account or an existing alias (409 ``exists``), a domain that is not ours
or an alias domain, more than 100 targets, a bad address, a local target that reaches
nobody (404), a loop or more than 4 nested levels.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..message import HTTPError, Request, Response
from . import validate as v
from .endpoints import ManagementApi

__all__ = ["ForwardApi", "MAX_TARGETS"]

MAX_TARGETS = 100


def _targets(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise v.invalid(field, "must be a non-empty list of addresses")
    if len(value) > MAX_TARGETS:
        raise v.invalid(field, f"has more than {MAX_TARGETS} addresses")
    out: list[str] = []
    for index, item in enumerate(value):
        address = v.address(f"{field}[{index}]", item)
        if address not in out:
            out.append(address)
    return out


def alias_view(record: dict) -> dict:
    return {"address": record["address"], "targets": list(record["targets"]),
            "created": record.get("created"), "updated": record.get("updated")}


class ForwardApi:
    def __init__(self, config: Any, api: ManagementApi) -> None:
        self.config = config
        self.api = api

    def _path_address(self, request: Request) -> str:
        return v.address("address", request.path_params["address"])

    def _record(self, store: Any, address: str) -> dict:
        record = store.get_forward(address)
        if record is None:
            raise HTTPError(404, f"alias {address!r} does not exist", code="not_found")
        return record

    async def list_aliases(self, request: Request, store: Any) -> Response:
        domain = request.query_param("domain")
        if domain is not None:
            domain = v.domain_name("domain", domain)
            if store.get_domain(domain) is None:
                raise HTTPError(404, f"domain {domain!r} does not exist", code="not_found")
        records = sorted(store.list_forwards(domain), key=lambda r: r["address"])
        return Response.json({"aliases": [alias_view(r) for r in records]})

    async def create(self, request: Request, store: Any) -> Response:
        body = v.check_object(request.json(), required={"address": v.address,
                                                        "targets": _targets})
        record = await store.forward_create(body["address"], body["targets"])
        self.api._audit(request, f"created alias {record['address']} -> "
                                 f"{', '.join(record['targets'])}")
        return Response.json(alias_view(record), status=201,
                             headers=[("location", f"/api/aliases/{quote(record['address'])}")])

    async def get(self, request: Request, store: Any) -> Response:
        address = self._path_address(request)
        record = self._record(store, address)
        view = alias_view(record)
        expansion = store.expand_forward(address)
        if expansion is not None:
            view["expansion"] = {
                "accounts": [{"address": a, "account": (store.get_account(acc) or {}).get("name")}
                             for a, acc in expansion.accounts],
                "remote": list(expansion.remote), "missing": list(expansion.missing)}
        return Response.json(view)

    async def update(self, request: Request, store: Any) -> Response:
        address = self._path_address(request)
        body = v.check_object(request.json(), required={"targets": _targets})
        record = await store.forward_update(address, body["targets"])
        self.api._audit(request, f"updated alias {record['address']} -> "
                                 f"{', '.join(record['targets'])}")
        return Response.json(alias_view(record))

    async def delete(self, request: Request, store: Any) -> Response:
        address = self._path_address(request)
        await store.forward_delete(address)
        self.api._audit(request, f"deleted alias {address}")
        return Response.empty()
