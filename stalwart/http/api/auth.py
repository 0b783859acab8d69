"""Who may use the management API.

Two ways in:

- **The admin Unix socket** (``run/admin.sock``, mode 0600, created by the master). The
  kernel tells us the peer's uid (SO_PEERCRED); root and the server's own user are
  administrators without a password. Anyone else is refused (403) even if the file mode
  was loosened.
- **HTTP Basic** (RFC 7617) on TCP listeners: the credentials go through
  ``stalwart.directory.authenticate`` (memory directory, internal directory, fallback
  admin) and the principal must be an administrator (class/type ``admin``, or the
  fallback admin). Missing or wrong credentials get 401 with a ``WWW-Authenticate``
  challenge; a valid non-admin gets 403.

Every failed login is reported with ``stalwart.log.auth_failure`` (the one stable line
fail2ban matches). Passwords never appear in responses or logs.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from stalwart.directory import Principal, authenticate
from stalwart.store.errors import StoreError

from ..message import HTTPError, Request

CHALLENGE = ("www-authenticate", 'Basic realm="Stalwart Management", charset="UTF-8"')


def _report_failure(request: Request, login: str, reason: str) -> None:
    from stalwart.log import auth_failure   # the master's logging module

    auth_failure(protocol="http", remote_ip=request.peer.ip, login=login, reason=reason)


def _unauthorized(request: Request, login: str, reason: str, detail: str) -> HTTPError:
    _report_failure(request, login, reason)
    return HTTPError(401, detail, code="unauthorized", headers=[CHALLENGE])


def parse_basic(value: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic ...`` value, or None if malformed."""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password


def socket_principal(request: Request) -> Principal:
    """The administrator behind the admin socket, or 403."""
    uid = request.peer.uid
    if uid is None or uid not in (0, os.geteuid()):
        raise HTTPError(403, "the admin socket serves only root and the server's user",
                        code="forbidden")
    return Principal(name=f"uid:{uid}", source="socket", type="admin")


async def authorize(request: Request, config: Any, store: Any,
                    store_error: StoreError | None = None) -> Principal:
    """The administrator making ``request``, or HTTPError 401/403 (503 if undecidable).

    ``store`` is None with ``store_error`` set when the store cannot be reached: the
    config's principals and the fallback admin can still log in, anyone else gets 503
    rather than a misleading 401.
    """
    if request.peer.admin_socket:
        return socket_principal(request)
    header = request.header("authorization")
    if header is None:
        raise HTTPError(401, "authentication required", code="unauthorized",
                        headers=[CHALLENGE])
    creds = parse_basic(header)
    if creds is None:
        raise _unauthorized(request, "", "malformed credentials",
                            "malformed or unsupported Authorization header (use Basic)")
    login, password = creds
    try:
        principal = await authenticate(config, store, login, password)
    except StoreError as exc:
        raise HTTPError(503, f"cannot check credentials: {exc.message}",
                        code="unavailable") from None
    if principal is None and store_error is not None:
        raise HTTPError(503, f"cannot check credentials: {store_error.message}",
                        code="unavailable")
    if principal is None:
        raise _unauthorized(request, login, "invalid credentials",
                            "invalid user name or password")
    if not principal.is_admin:
        raise HTTPError(403, f"{principal.name} is not an administrator", code="forbidden")
    return principal
