"""``authenticate``: check a login and password against every directory, in order.

Order and precedence:

1. memory directory (config). A login it knows is decided there: a wrong password is a
   failure, without asking the store.
2. internal directory (``store.authenticate``: name or any address, enabled accounts only).
3. fallback administrator. It is asked last and whatever the store says, so it can
   always log in, also while the store is unreachable (a ``StoreError("unavailable")``
   from step 2 is re-raised only if the fallback admin does not match either).

Slow work (argon2) runs in the default executor so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from stalwart.store.errors import StoreError

from .memory import MemoryDirectory
from .principal import Principal
from .secret import verify_secret

#: Longest login (an address: RFC 5321 path limit) and password accepted at all.
MAX_LOGIN = 320
MAX_PASSWORD = 1024


async def _verify(stored: str | None, password: str) -> bool:
    if stored and stored.startswith("$"):
        return await asyncio.get_running_loop().run_in_executor(
            None, verify_secret, stored, password)
    return verify_secret(stored, password)


def _from_account(account: dict) -> Principal:
    return Principal(name=account["name"], source="internal", id=account["id"],
                     type=account.get("type", "individual"),
                     emails=tuple(account.get("emails") or ()),
                     display_name=account.get("display_name") or "",
                     quota=int(account.get("quota") or 0))


async def authenticate(config: Any, store: Any, login: str, password: str) -> Principal | None:
    """The principal ``login`` names if ``password`` is right, else None.

    ``store`` may be None (no internal directory, e.g. before the store is reachable).
    Raises ``StoreError("unavailable")`` only when the answer depends on a store that
    cannot be reached.
    """
    if not isinstance(login, str) or not isinstance(password, str):
        return None
    if not login or not password or len(login) > MAX_LOGIN or len(password) > MAX_PASSWORD:
        return None
    if "\x00" in login:
        return None

    found = MemoryDirectory.from_config(config).lookup(login)
    if found is not None:
        principal, secret = found
        return principal if await _verify(secret, password) else None

    unavailable: StoreError | None = None
    if store is not None:
        try:
            account = await store.authenticate(login, password)
        except StoreError as exc:
            if exc.code != "unavailable":
                raise
            unavailable = exc
        else:
            if account is not None:
                return _from_account(account)

    fallback = getattr(config, "fallback_admin", None)
    if fallback:
        user, secret = fallback
        if hmac.compare_digest(login.encode("utf-8"), str(user).encode("utf-8")) \
                and await _verify(secret, password):
            return Principal(name=str(user), source="fallback", type="admin")
    if unavailable is not None:
        raise unavailable
    return None
