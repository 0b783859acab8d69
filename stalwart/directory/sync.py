"""Make the accounts of a ``[directory.<id>] type = "memory"`` real accounts of the store.

A memory directory declares principals in the config file (name, class, secret, email,
description, quota). To receive mail, own mailboxes and log in over SMTP, IMAP or POP3
they must exist in the store like any account; the store process calls
``sync_principals`` once it serves, so the config stays the source of truth:

- a missing domain of a principal's addresses is created;
- a missing account is created (with default mailboxes); an existing one is updated to
  match the config (addresses, display name, quota, type);
- the secret: a plain-text secret is hashed (argon2id, and SCRAM credentials kept beside
  it) unless the stored hash already verifies it, so restarts do not rewrite it; a secret
  given as an argon2 hash is stored as is (SCRAM then cannot work for that account);
- accounts are never deleted here: removing a principal from the config leaves its mail.

Idempotent: a second run with the same config changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..store.api import password_secrets, verify_secret
from ..store.errors import StoreError

log = logging.getLogger("stalwart.directory")

_TYPES = {"individual": "individual", "admin": "admin", "group": "group"}


async def sync_principals(store: Any, principals: list[dict]) -> dict:
    """Bring the store in line with ``principals``; returns counts of what changed."""
    from ..store import reader

    done = {"domains": 0, "created": 0, "updated": 0, "failed": 0}
    loop = asyncio.get_running_loop()
    for p in principals:
        name = p.get("name")
        try:
            emails = [str(e).lower() for e in (p.get("email") or [])]
            for address in emails:
                domain = address.rpartition("@")[2]
                if domain and store.get_domain(domain) is None:
                    await store.create_domain(domain)
                    done["domains"] += 1
            secret = p.get("secret")
            kind = _TYPES.get(p.get("class") or "individual", "individual")
            wanted = {"display_name": p.get("description") or "", "quota": int(p.get("quota") or 0),
                      "type": kind}
            existing = store.get_account(name)
            if existing is None:
                account = await store.create_account(name, emails=emails, **wanted)
                changes: dict[str, Any] = {}
                done["created"] += 1
            else:
                account = existing
                changes = {k: v for k, v in wanted.items() if existing.get(k) != v}
                if existing["emails"] != emails:
                    changes["emails"] = emails
            stored = (reader.get_principal(store.kv, account["id"]) or {}).get("secret")
            if isinstance(secret, str) and secret:
                if secret.startswith("$argon2"):
                    if stored != secret:
                        changes["secret"], changes["scram"] = secret, None
                elif not await loop.run_in_executor(None, verify_secret, stored, secret):
                    changes["secret"], changes["scram"] = await loop.run_in_executor(
                        None, password_secrets, secret)
            if changes:
                await store.update_account(name, **changes)
                if existing is not None:
                    done["updated"] += 1
        except (StoreError, TypeError, ValueError) as exc:
            done["failed"] += 1
            log.error("directory: cannot sync principal %r from the config: %s", name, exc)
    return done
