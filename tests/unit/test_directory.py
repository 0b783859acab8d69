"""stalwart.directory: secrets, the memory directory, and the order of authenticate()."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from stalwart.directory import MemoryDirectory, Principal, authenticate, verify_secret
from stalwart.store.api import Store
from stalwart.store.errors import StoreError

HASH = PasswordHasher().hash("hunter2-hashed")

PRINCIPALS = [
    {"name": "ops", "class": "admin", "secret": HASH, "email": ["ops@example.org"],
     "description": "Operations", "quota": 0},
    {"name": "Jane", "class": "individual", "secret": "plain-jane",
     "email": ["jane@example.org", "J.Doe@Example.org"], "quota": 5 * 1024**3},
    {"name": "nosecret", "class": "individual", "email": []},
]


class Config:
    """The part of stalwart.config.Config the directory reads (hashable by identity)."""

    def __init__(self, fallback, principals):
        self.fallback_admin = fallback
        self.principals = list(principals)


def config(fallback=("admin", "fallback-pass"), principals=PRINCIPALS):
    return Config(fallback, principals)


def auth(cfg, store, login, password):
    return asyncio.run(authenticate(cfg, store, login, password))


@pytest.mark.parametrize("stored,password,ok", [
    ("plain", "plain", True),
    ("plain", "Plain", False),
    ("plain", "plain ", False),
    ("pässwörd", "pässwörd", True),
    (HASH, "hunter2-hashed", True),
    (HASH, "hunter2", False),
    (HASH, HASH, False),
    ("$argon2id$v=19$broken", "x", False),
    ("$6$salt$hash", "$6$salt$hash", False),      # other schemes never match as plain text
    (None, "x", False),
    ("", "", False),
])
def test_verify_secret(stored, password, ok):
    assert verify_secret(stored, password) is ok


def test_memory_directory_lookup():
    directory = MemoryDirectory(PRINCIPALS)
    assert len(directory) == 3
    jane = directory.get("JANE")
    assert jane == directory.get("j.doe@example.org") == directory.get("jane@EXAMPLE.org")
    assert jane.source == "memory" and jane.primary_email == "jane@example.org"
    assert jane.quota == 5 * 1024**3 and not jane.is_admin
    assert directory.get("ops").is_admin and directory.get("ops").display_name == "Operations"
    assert directory.get("nobody") is None


def test_memory_directory_is_built_once_per_config():
    cfg = config()
    assert MemoryDirectory.from_config(cfg) is MemoryDirectory.from_config(cfg)


def test_memory_principals():
    cfg = config()
    assert auth(cfg, None, "ops", "hunter2-hashed").name == "ops"
    assert auth(cfg, None, "ops@example.org", "hunter2-hashed").is_admin
    assert auth(cfg, None, "jane@example.org", "plain-jane").name == "Jane"
    assert auth(cfg, None, "Jane", "wrong") is None
    assert auth(cfg, None, "nosecret", "") is None
    assert auth(cfg, None, "nosecret", "anything") is None


@pytest.mark.parametrize("login,password", [
    ("", "x"), ("jane", ""), (None, "x"), ("jane", None), ("a\x00b", "x"),
    ("x" * 321, "x"), ("jane", "x" * 1025), (b"jane", "plain-jane"),
])
def test_bad_input_is_no(login, password):
    assert auth(config(), None, login, password) is None


def test_internal_directory_and_fallback():
    cfg = config()

    async def scenario():
        store = Store.memory()
        await store.create_domain("example.net")
        await store.create_account("bob", password="bob-pass-1", emails=["bob@example.net"],
                                   display_name="Bob", quota=123)
        await store.create_account("boss", password="boss-pass-1", type="admin")
        bob = await authenticate(cfg, store, "bob@example.net", "bob-pass-1")
        boss = await authenticate(cfg, store, "boss", "boss-pass-1")
        wrong = await authenticate(cfg, store, "bob", "nope")
        admin = await authenticate(cfg, store, "admin", "fallback-pass")
        admin_wrong = await authenticate(cfg, store, "admin", "nope")
        # A memory principal is decided by the memory directory alone.
        await store.create_account("shadow", password="store-pass")
        return bob, boss, wrong, admin, admin_wrong

    bob, boss, wrong, admin, admin_wrong = asyncio.run(scenario())
    assert bob == Principal(name="bob", source="internal", id=bob.id, type="individual",
                            emails=("bob@example.net",), display_name="Bob", quota=123)
    assert boss.is_admin and boss.source == "internal"
    assert wrong is None
    assert admin.source == "fallback" and admin.is_admin and admin.id is None
    assert admin_wrong is None


def test_memory_directory_wins_over_the_store():
    cfg = config()

    async def scenario():
        store = Store.memory()
        await store.create_account("jane", password="store-jane")
        return (await authenticate(cfg, store, "jane", "store-jane"),
                await authenticate(cfg, store, "jane", "plain-jane"))

    from_store, from_memory = asyncio.run(scenario())
    assert from_store is None
    assert from_memory.source == "memory"


class UnavailableStore:
    async def authenticate(self, login, password):
        raise StoreError("unavailable", "store process down")


class BrokenStore:
    async def authenticate(self, login, password):
        raise StoreError("invalid", "bad login")


def test_fallback_admin_works_while_the_store_is_down():
    cfg = config()
    assert auth(cfg, UnavailableStore(), "admin", "fallback-pass").source == "fallback"
    with pytest.raises(StoreError) as info:
        auth(cfg, UnavailableStore(), "someone", "pw")
    assert info.value.code == "unavailable"
    with pytest.raises(StoreError):
        auth(cfg, UnavailableStore(), "admin", "wrong")
    # memory principals never need the store
    assert auth(cfg, UnavailableStore(), "ops", "hunter2-hashed").name == "ops"
    with pytest.raises(StoreError) as info:
        auth(cfg, BrokenStore(), "admin", "fallback-pass")
    assert info.value.code == "invalid"


def test_hashed_fallback_admin_and_none():
    assert auth(config(fallback=("root", HASH)), None, "root", "hunter2-hashed").is_admin
    assert auth(config(fallback=("root", HASH)), None, "Root", "hunter2-hashed") is None
    assert auth(config(fallback=None), None, "admin", "fallback-pass") is None
