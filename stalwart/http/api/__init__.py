"""The REST management API, mounted under ``/api`` on every http listener and on the
admin Unix socket. JSON in and out (orjson); ``docs/api.md`` is the user-facing version
of this list.

Authentication (``auth``): on the admin socket the peer's uid (root or the server's user);
elsewhere HTTP Basic with the fallback admin or an ``admin`` principal.

Domains::

    GET    /api/domains                       -> 200 {"domains": [Domain]}
    POST   /api/domains                       {"name", "alias_of"?} -> 201 Domain
    GET    /api/domains/{name}                -> 200 Domain
    DELETE /api/domains/{name}                -> 204 (409 in_use while addresses use it)
    PUT    /api/domains/{name}/catch-all      {"account"} -> 200 Domain
    DELETE /api/domains/{name}/catch-all      -> 200 Domain

    Domain = {"name": "example.org", "alias_of": null | "other.org",
              "catch_all": null | "<account name>"}

An alias domain (``alias_of``) maps every address to the same local part in its target.

Accounts (``{name}`` is the account name or any of its addresses)::

    GET    /api/accounts[?domain=D]           -> 200 {"accounts": [Account]}
    POST   /api/accounts                      {"name", "password"?, "display_name"?,
                                               "quota"?, "disabled"?, "type"?,
                                               "emails"?} -> 201 Account
    GET    /api/accounts/{name}               -> 200 Account
    PATCH  /api/accounts/{name}               any of {"name", "password" (null removes),
                                               "display_name", "quota", "disabled",
                                               "type", "emails" | "add_emails",
                                               "remove_emails"} -> 200 Account
    DELETE /api/accounts/{name}               -> 204 (the account's mail is deleted too)

    Account = {"id", "name", "emails": [primary, aliases...], "display_name",
               "quota" (bytes, 0 = unlimited), "used", "disabled",
               "type": "individual" | "admin"}

The outbound queue (``queue``: list and show from the store; retry and cancel through
the queue process)::

    GET    /api/queue[?limit=N&after=ID]      -> 200 {"messages": [Message], "next"}
    GET    /api/queue/{id}                    -> 200 Message
    POST   /api/queue/{id}/retry              -> 200 {"id", "retry": true}
    DELETE /api/queue/{id}                    -> 204

DKIM signing keys (list, create, delete; responses carry the DNS record to publish, never
the private key): ``GET|POST /api/dkim/{domain}``, ``GET /api/dkim``,
``DELETE /api/dkim/{domain}/{selector}``, described in ``stalwart.http.api.dkim``.

Forwarding aliases (an address whose mail goes to local and remote targets):
``GET|POST /api/aliases``, ``GET|PUT|DELETE /api/aliases/{address}``, described in
``stalwart.http.api.forward``.

Errors: ``{"error": code, "detail": message}`` with 400 invalid / invalid_json /
bad_query, 401 unauthorized, 403 forbidden, 404 not_found, 405, 409 exists / in_use /
conflict / over_quota, 413 too_large, 415, 503 unavailable.
"""

from __future__ import annotations

import os
from typing import Any

from ..router import Router
from ..server import StoreHandle
from .endpoints import ManagementApi
from .queue import QueueApi
from .dkim import DkimApi
from .forward import ForwardApi


def build_router(config: Any, store: StoreHandle, *,
                 queue_control: str | os.PathLike | None = None) -> Router:
    """The /api routes (patterns relative to the mount point). ``queue_control`` is the
    queue process's control socket (default ``<config.run_dir>/queue.sock``)."""
    api = ManagementApi(config, store)
    queue = QueueApi(config, queue_control)
    router = Router()
    g = api.guarded
    router.add("GET", "/domains", g(api.list_domains))
    router.add("POST", "/domains", g(api.create_domain))
    router.add("GET", "/domains/{name}", g(api.get_domain))
    router.add("DELETE", "/domains/{name}", g(api.delete_domain))
    router.add("PUT", "/domains/{name}/catch-all", g(api.set_catch_all))
    router.add("DELETE", "/domains/{name}/catch-all", g(api.clear_catch_all))
    router.add("GET", "/accounts", g(api.list_accounts))
    router.add("POST", "/accounts", g(api.create_account))
    router.add("GET", "/accounts/{name}", g(api.get_account))
    router.add("PATCH", "/accounts/{name}", g(api.update_account))
    router.add("DELETE", "/accounts/{name}", g(api.delete_account))
    router.add("GET", "/queue", g(queue.list_messages))
    router.add("GET", "/queue/{id}", g(queue.get_message))
    router.add("POST", "/queue/{id}/retry", g(queue.retry_message))
    router.add("DELETE", "/queue/{id}", g(queue.cancel_message))
    dkim = DkimApi(config, api)             # DKIM signing keys: stalwart/http/api/dkim.py
    router.add("GET", "/dkim", g(dkim.list_all))
    router.add("GET", "/dkim/{domain}", g(dkim.list_domain))
    router.add("POST", "/dkim/{domain}", g(dkim.create))
    router.add("DELETE", "/dkim/{domain}/{selector}", g(dkim.delete))
    aliases = ForwardApi(config, api)       # forwarding aliases: stalwart/http/api/forward.py
    router.add("GET", "/aliases", g(aliases.list_aliases))
    router.add("POST", "/aliases", g(aliases.create))
    router.add("GET", "/aliases/{address}", g(aliases.get))
    router.add("PUT", "/aliases/{address}", g(aliases.update))
    router.add("DELETE", "/aliases/{address}", g(aliases.delete))
    return router
