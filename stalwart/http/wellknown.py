"""``/.well-known/`` documents served by the http pool.

``GET /.well-known/mta-sts.txt`` (RFC 8461 3.3): our MTA-STS policy, built at the first
request from ``auth.mta-sts.*`` by ``stalwart.mailauth.mtasts.policy_from_config``. It is served only
for a request whose ``Host`` is ``mta-sts.<domain>`` with ``<domain>`` one of the
server's domains (the store's ``is_local_domain``, alias domains included); any other
host gets 404, so the policy is never published for a domain we do not receive mail
for. No authentication: senders fetch it anonymously. The body is ``text/plain``
(RFC 8461 3.2), lines ended by CRLF. Senders need HTTPS with a certificate valid for
``mta-sts.<domain>``: serve it on an implicit-TLS http listener on port 443.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from stalwart.mailauth.mtasts import WELL_KNOWN, policy_from_config
from stalwart.store.errors import StoreError

from .message import HTTPError, Request, Response
from .router import Router

__all__ = ["request_host", "mta_sts_handler", "add_routes"]

log = logging.getLogger("stalwart.http")


def request_host(request: Request) -> str:
    """The ``Host`` of a request without its port, lower case, no trailing dot."""
    host = (request.header("host") or "").strip().lower()
    if host.startswith("["):
        host = host[:host.find("]") + 1] if "]" in host else host
    else:
        host = host.partition(":")[0]
    return host.rstrip(".")


def mta_sts_handler(config: Any, store: Any) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``/.well-known/mta-sts.txt``; ``store`` is a ``StoreHandle``. The
    policy is built from the config on the first request and kept."""
    built: list[tuple[str, int]] = []

    async def mta_sts(request: Request) -> Response:
        if not built:
            built.append((policy_from_config(config), int(config.get("auth.mta-sts.max-age"))))
        text, max_age = built[0]
        host = request_host(request)
        if not host.startswith("mta-sts.") or len(host) <= len("mta-sts."):
            raise HTTPError(404, "no MTA-STS policy for this host")
        domain = host[len("mta-sts."):]
        try:
            handle = await store.get()
            ours = handle.is_local_domain(domain)
        except StoreError as exc:
            await store.reset()
            raise HTTPError(503, f"the store is unavailable: {exc}", code="unavailable") from None
        except (OSError, TimeoutError) as exc:
            await store.reset()
            raise HTTPError(503, f"cannot reach the store: {exc}", code="unavailable") from None
        if not ours:
            raise HTTPError(404, f"no MTA-STS policy for {domain}")
        return Response.text(text, content_type="text/plain; charset=utf-8",
                             headers=[("cache-control", f"public, max-age={min(max_age, 86400)}")])
    return mta_sts


def add_routes(router: Router, config: Any, store: Any) -> None:
    """Register the ``/.well-known/`` routes on the http pool's router."""
    router.add("GET", WELL_KNOWN, mta_sts_handler(config, store))
