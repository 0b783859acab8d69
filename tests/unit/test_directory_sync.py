"""Principals of a memory directory in the config become store accounts (idempotently)."""

from __future__ import annotations

import asyncio

from stalwart.directory.sync import sync_principals
from stalwart.store import Store
from stalwart.store.api import hash_secret

PRINCIPALS = [
    {"name": "jane", "class": "individual", "secret": "jane-secret", "description": "Jane",
     "email": ["jane@example.org", "j@example.net"], "quota": 1000},
    {"name": "boss", "class": "admin", "secret": None, "email": ["boss@example.org"]},
]


def test_sync_creates_updates_and_is_idempotent():
    async def t():
        s = Store.memory()
        first = await sync_principals(s, PRINCIPALS)
        assert first == {"domains": 2, "created": 2, "updated": 0, "failed": 0}
        jane = s.get_account("jane")
        assert jane["emails"] == ["jane@example.org", "j@example.net"]
        assert (jane["display_name"], jane["quota"], jane["type"]) == ("Jane", 1000, "individual")
        assert s.get_account("boss")["type"] == "admin"
        assert (await s.authenticate("j@example.net", "jane-secret"))["name"] == "jane"
        assert s.get_scram_credentials("jane").startswith("SCRAM-SHA-256$")
        assert s.resolve_address("jane+x@example.org") == jane["id"]
        assert s.find_mailbox(jane["id"], "INBOX") is not None
        state = dict(s._kv.scan(b"", None))
        again = await sync_principals(s, PRINCIPALS)
        assert again == {"domains": 0, "created": 0, "updated": 0, "failed": 0}
        assert dict(s._kv.scan(b"", None)) == state
        changed = [dict(PRINCIPALS[0], quota=5, secret="new-secret", email=["jane@example.org"]),
                   PRINCIPALS[1]]
        assert (await sync_principals(s, changed))["updated"] == 1
        assert s.get_account("jane")["quota"] == 5
        assert s.get_account("jane")["emails"] == ["jane@example.org"]
        assert await s.authenticate("jane", "jane-secret") is None
        assert await s.authenticate("jane", "new-secret") is not None
        hashed = hash_secret("hashed-secret")
        await sync_principals(s, [dict(PRINCIPALS[0], secret=hashed)])
        assert await s.authenticate("jane", "hashed-secret") is not None
        assert s.get_scram_credentials("jane") is None
    asyncio.run(t())


def test_a_bad_principal_is_reported_and_the_rest_synced():
    async def t():
        s = Store.memory()
        bad = [{"name": "", "email": []}, {"name": "ok", "email": ["ok@example.org"]},
               {"name": "worse", "email": ["not an address"]}]
        result = await sync_principals(s, bad)
        assert result["created"] == 1 and result["failed"] == 2
        assert s.get_account("ok") is not None and s.get_account("worse") is None
    asyncio.run(t())
