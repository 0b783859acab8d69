"""Handlers of the management API (the endpoint list is in ``stalwart.http.api``).

Every handler runs behind ``ManagementApi._guarded``, which

1. gets the store (opened on first use; 503 while it cannot be reached),
2. authorizes the caller (``auth.authorize``: admin socket or HTTP Basic admin),
3. maps a ``StoreError`` to its HTTP status and the common JSON error body, and drops
   the store connection after ``unavailable`` so the next request reconnects.

Handlers validate the whole request (``validate``) before the first store call, and a
failed store operation changes nothing, so a refused request never leaves half a change.
Responses never contain secrets: the store's account records have no secret field.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from stalwart.store.errors import StoreError

from ..message import HTTPError, Request, Response
from ..server import StoreHandle
from . import validate as v
from .auth import authorize

log = logging.getLogger("stalwart.api")

#: StoreError code -> HTTP status.
STATUS_FOR_STORE_ERROR = {
    "invalid": 400,
    "not_found": 404,
    "exists": 409,
    "in_use": 409,
    "conflict": 409,
    "over_quota": 409,
    "unavailable": 503,
}

Handler = Callable[[Request, Any], Awaitable[Response]]


def store_error_response(exc: StoreError) -> HTTPError:
    return HTTPError(STATUS_FOR_STORE_ERROR.get(exc.code, 500), exc.message, code=exc.code)


class ManagementApi:
    """The /api handlers over one config and one (lazily opened) store."""

    def __init__(self, config: Any, store: StoreHandle) -> None:
        self.config = config
        self.store = store

    # ------------------------------------------------------------------ plumbing

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            store, store_error = None, None
            try:
                store = await self.store.get()
            except StoreError as exc:
                store_error = StoreError("unavailable", exc.message)
            except (OSError, TimeoutError) as exc:
                store_error = StoreError("unavailable", f"cannot reach the store: {exc}")
            principal = await authorize(request, self.config, store, store_error)
            request.state["principal"] = principal
            if store_error is not None:
                raise store_error_response(store_error)
            try:
                return await handler(request, store)
            except StoreError as exc:
                if exc.code == "unavailable":
                    await self.store.reset()
                raise store_error_response(exc) from None
            except (ConnectionError, TimeoutError) as exc:
                await self.store.reset()
                raise HTTPError(503, f"lost the connection to the store: {exc}",
                                code="unavailable") from None
        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    @staticmethod
    def _audit(request: Request, action: str) -> None:
        principal = request.state.get("principal")
        log.info("api: %s (%s) %s", principal.name if principal else "?",
                 request.peer.ip, action)

    def _domain_view(self, store: Any, record: dict) -> dict:
        catch_all = record.get("catch_all")
        if catch_all is not None:
            account = store.get_account(catch_all)
            catch_all = account["name"] if account else None
        return {"name": record["name"], "alias_of": record.get("alias_of"),
                "catch_all": catch_all}

    def _path_domain(self, request: Request) -> str:
        return v.domain_name("domain", request.path_params["name"])

    def _account(self, store: Any, name_or_address: str) -> dict:
        account = store.get_account(name_or_address)
        if account is None:
            raise HTTPError(404, f"account {name_or_address!r} does not exist",
                            code="not_found")
        return account

    # ------------------------------------------------------------------ domains

    async def list_domains(self, request: Request, store: Any) -> Response:
        domains = sorted(store.list_domains(), key=lambda d: d["name"])
        return Response.json({"domains": [self._domain_view(store, d) for d in domains]})

    async def create_domain(self, request: Request, store: Any) -> Response:
        body = v.check_object(request.json(), required={"name": v.domain_name},
                              optional_fields={"alias_of": v.optional(v.domain_name)})
        record = await store.create_domain(body["name"], alias_of=body.get("alias_of"))
        self._audit(request, f"created domain {record['name']}"
                    + (f" (alias of {record['alias_of']})" if record.get("alias_of") else ""))
        return Response.json(self._domain_view(store, record), status=201,
                             headers=[("location", f"/api/domains/{quote(record['name'])}")])

    async def get_domain(self, request: Request, store: Any) -> Response:
        name = self._path_domain(request)
        record = store.get_domain(name)
        if record is None:
            raise HTTPError(404, f"domain {name!r} does not exist", code="not_found")
        return Response.json(self._domain_view(store, record))

    async def delete_domain(self, request: Request, store: Any) -> Response:
        name = self._path_domain(request)
        await store.delete_domain(name)
        self._audit(request, f"deleted domain {name}")
        return Response.empty()

    async def set_catch_all(self, request: Request, store: Any) -> Response:
        name = self._path_domain(request)
        body = v.check_object(request.json(), required={"account": v.account_name_or_address})
        account = self._account(store, body["account"])
        record = await store.set_catch_all(name, account["name"])
        self._audit(request, f"set catch-all of {name} to {account['name']}")
        return Response.json(self._domain_view(store, record))

    async def clear_catch_all(self, request: Request, store: Any) -> Response:
        name = self._path_domain(request)
        record = await store.set_catch_all(name, None)
        self._audit(request, f"cleared catch-all of {name}")
        return Response.json(self._domain_view(store, record))

    # ------------------------------------------------------------------ accounts

    async def list_accounts(self, request: Request, store: Any) -> Response:
        domain = request.query_param("domain")
        if domain is not None:
            domain = v.domain_name("domain", domain)
            if store.get_domain(domain) is None:
                raise HTTPError(404, f"domain {domain!r} does not exist", code="not_found")
        accounts = store.list_accounts(domain)
        return Response.json({"accounts": sorted(accounts, key=lambda a: a["name"].lower())})

    async def create_account(self, request: Request, store: Any) -> Response:
        body = v.check_object(
            request.json(),
            required={"name": v.account_name},
            optional_fields={"password": v.password, "display_name": v.display_name,
                             "quota": v.quota, "disabled": v.boolean, "type": v.account_type,
                             "emails": v.address_list},
        )
        account = await store.create_account(
            body["name"], password=body.get("password"), emails=body.get("emails", []),
            display_name=body.get("display_name", ""), quota=body.get("quota", 0),
            disabled=body.get("disabled", False), type=body.get("type", "individual"))
        self._audit(request, f"created account {account['name']}")
        return Response.json(account, status=201,
                             headers=[("location", f"/api/accounts/{quote(account['name'])}")])

    async def get_account(self, request: Request, store: Any) -> Response:
        return Response.json(self._account(store, request.path_params["name"]))

    async def update_account(self, request: Request, store: Any) -> Response:
        body = v.check_object(
            request.json(),
            optional_fields={"name": v.account_name, "password": v.optional_password,
                             "display_name": v.display_name, "quota": v.quota,
                             "disabled": v.boolean, "type": v.account_type,
                             "emails": v.address_list, "add_emails": v.address_list,
                             "remove_emails": v.address_list},
        )
        if not body:
            raise HTTPError(400, "nothing to change: give at least one field", code="invalid")
        if "emails" in body and ("add_emails" in body or "remove_emails" in body):
            raise HTTPError(400, "emails replaces the whole list; do not combine it with "
                                 "add_emails or remove_emails", code="invalid")
        account = self._account(store, request.path_params["name"])
        changes = dict(body)
        if "name" in changes:
            changes["new_name"] = changes.pop("name")
        updated = await store.update_account(account["name"], **changes)
        fields = ", ".join(sorted(body))
        self._audit(request, f"updated account {account['name']} ({fields})")
        return Response.json(updated)

    async def delete_account(self, request: Request, store: Any) -> Response:
        account = self._account(store, request.path_params["name"])
        await store.delete_account(account["name"])
        self._audit(request, f"deleted account {account['name']}")
        return Response.empty()
