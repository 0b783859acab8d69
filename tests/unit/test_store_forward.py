"""Forwarding aliases in the store (``stalwart/store/ops/forward.py``): creation rules,
refusals that change nothing, resolution order, expansion bounds, and the interplay with
accounts, alias domains, catch-alls and domain deletion."""

from __future__ import annotations

import asyncio

import pytest

from stalwart.store import keys
from stalwart.store.api import Store
from stalwart.store.errors import StoreError
from stalwart.store.ops import forward as fwd


@pytest.fixture
def env():
    loop = asyncio.new_event_loop()
    store = Store.memory()

    async def setup():
        await store.create_domain("example.org")
        await store.create_domain("example.net")
        await store.create_domain("example.com", alias_of="example.org")
        await store.create_domain("catch.example")
        a = await store.create_account("alice", emails=["alice@example.org"])
        b = await store.create_account("bob", emails=["bob@example.net"])
        await store.set_catch_all("catch.example", "bob")
        return a["id"], b["id"]

    alice, bob = loop.run_until_complete(setup())
    yield loop, store, alice, bob
    loop.close()


def run(loop, coro):
    return loop.run_until_complete(coro)


def snapshot(store):
    return dict(store.kv.scan(b"", None))


def test_create_resolve_expand(env):
    loop, store, alice, bob = env
    record = run(loop, store.forward_create("Info@Example.ORG",
                                            ["alice@example.org", "X@Remote.Example",
                                             "x@remote.example", "bob@example.net"]))
    assert record["address"] == "info@example.org"
    assert record["targets"] == ["alice@example.org", "x@remote.example", "bob@example.net"]
    assert store.get_forward("INFO@example.org") == record
    assert store.kv.get(keys.forward("info@example.org")) is not None
    expected = {"forward": "info@example.org", "remote": ["x@remote.example"],
                "accounts": [["alice@example.org", alice], ["bob@example.net", bob]]}
    assert store.resolve_recipient("info@example.org") == expected
    assert store.resolve_recipient("info+tag@example.org") == expected    # sub-address
    assert store.resolve_recipient("info@example.com") == expected        # alias domain
    assert store.resolve_address("info@example.org") is None              # not an account
    assert store.resolve_recipient("alice@example.org") == {"account": alice}
    assert store.resolve_recipient("nobody@example.org") is None
    assert store.resolve_recipient("info@remote.example") is None
    assert [f["address"] for f in store.list_forwards()] == ["info@example.org"]
    assert store.list_forwards("example.net") == []


def test_forward_wins_over_catch_all_and_exact_account_over_forward(env):
    loop, store, alice, bob = env
    run(loop, store.forward_create("sales@catch.example", ["x@remote.example"]))
    assert "forward" in store.resolve_recipient("sales@catch.example")
    assert store.resolve_address("sales@catch.example") is None           # not the catch-all
    assert store.resolve_recipient("other@catch.example") == {"account": bob}
    # alice+x@ is alice's sub-address even if a forward "alice+x" could not exist anyway
    with pytest.raises(StoreError) as exc:
        run(loop, store.forward_create("alice@example.org", ["x@remote.example"]))
    assert exc.value.code == "exists" and "alice" in exc.value.message


@pytest.mark.parametrize("address,targets,code,message", [
    ("info@remote.example", ["x@remote.example"], "invalid", "not a local domain"),
    ("info@example.com", ["x@remote.example"], "invalid", "alias domain"),
    ("alice@example.org", ["x@remote.example"], "exists", "account 'alice'"),
    ("dup@example.org", ["x@remote.example"], "exists", "already exists"),
    ("info@example.org", [], "invalid", "at least one target"),
    ("info@example.org", "x@remote.example", "invalid", "must be a list"),
    ("info@example.org", ["x@remote.example"] * 0 + [f"u{i}@r.example" for i in range(101)],
     "invalid", "at most 100"),
    ("info@example.org", ["not-an-address"], "invalid", "target 1"),
    ("info@example.org", ["x@[192.0.2.1]"], "invalid", "target 1"),
    ("info@example.org", ["ok@remote.example", "a%b@"], "invalid", "target 2"),
    ("info@example.org", ["info@example.org"], "invalid", "itself"),
    ("info@example.org", ["INFO@example.org"], "invalid", "itself"),
    ("info@example.org", ["ghost@example.org"], "not_found", "ghost@example.org"),
    ("info@example.org", ["ghost@example.com"], "not_found", "ghost@example.com"),
    ("bad address@example.org", ["x@remote.example"], "invalid", "invalid"),
    ("info@example.org", [None], "invalid", "target 1"),
])
def test_refusals_change_nothing(env, address, targets, code, message):
    loop, store, _, _ = env
    run(loop, store.forward_create("dup@example.org", ["x@remote.example"]))
    before = snapshot(store)
    with pytest.raises(StoreError) as exc:
        run(loop, store.forward_create(address, targets))
    assert exc.value.code == code and message in exc.value.message, exc.value
    assert snapshot(store) == before


def test_nesting_loops_and_depth(env):
    loop, store, alice, _ = env
    run(loop, store.forward_create("l0@example.org", ["alice@example.org"]))
    for i in range(1, fwd.MAX_DEPTH + 1):
        run(loop, store.forward_create(f"l{i}@example.org", [f"l{i - 1}@example.org"]))
    deepest = f"l{fwd.MAX_DEPTH}@example.org"
    assert store.resolve_recipient(deepest)["accounts"] == [["alice@example.org", alice]]
    before = snapshot(store)
    with pytest.raises(StoreError) as exc:
        run(loop, store.forward_create("too-deep@example.org", [deepest]))
    assert exc.value.code == "invalid" and "levels deep" in exc.value.message
    # A loop: l0 -> l4 (which reaches l0 again), directly or through a sub-address.
    for target in (deepest, f"l{fwd.MAX_DEPTH}+x@example.org", "l1@example.com"):
        with pytest.raises(StoreError) as exc:
            run(loop, store.forward_update("l0@example.org", [target]))
        assert "loop" in exc.value.message, (target, exc.value)
    assert snapshot(store) == before
    # A diamond is not a loop: both paths reach alice once.
    run(loop, store.forward_create("d1@example.org", ["l0@example.org", "l1@example.org"]))
    assert store.resolve_recipient("d1@example.org")["accounts"] == [["alice@example.org", alice]]


def test_expansion_bounds_hold_for_records_that_changed_later(env):
    """Expansion re-applies the bounds on whatever the store holds now (records written
    directly here stand for states that the ops would refuse)."""
    loop, store, alice, _ = env
    from stalwart.store.engine import pack

    kv = {keys.forward("a@example.org"): pack({"address": "a@example.org",
                                               "targets": ["b@example.org", "r@remote.example"]}),
          keys.forward("b@example.org"): pack({"address": "b@example.org",
                                               "targets": ["a@example.org", "alice@example.org"]})}

    def get(key):
        return kv.get(key) if key in kv else store.kv.get(key)

    result = fwd.expand(get, {"address": "a@example.org",
                              "targets": ["b@example.org", "r@remote.example"]})
    assert result.accounts == [("alice@example.org", alice)]
    assert result.remote == ["r@remote.example"] and result.loops == ["a@example.org"]
    many = {"address": "m@example.org", "targets": [f"u{i}@r.example" for i in range(50)]}
    limited = fwd.expand(get, many, limit=10)
    assert len(limited.remote) == 10 and limited.truncated
    chain = {"address": "c@example.org", "targets": ["b@example.org"]}
    shallow = fwd.expand(get, chain, max_depth=0)
    assert shallow.too_deep == ["b@example.org"] and not shallow.accounts


def test_dangling_targets_are_skipped_and_empty_forward_resolves_to_nobody(env):
    loop, store, alice, bob = env
    run(loop, store.forward_create("both@example.net", ["bob@example.net", "alice@example.org"]))
    run(loop, store.forward_create("only@example.net", ["bob@example.net"]))
    run(loop, store.delete_account("bob"))
    expansion = store.expand_forward("both@example.net")
    assert expansion.missing == ["bob@example.net"]
    assert store.resolve_recipient("both@example.net")["accounts"] == [["alice@example.org", alice]]
    assert store.resolve_recipient("only@example.net") is None


def test_update_and_delete(env):
    loop, store, alice, bob = env
    run(loop, store.forward_create("info@example.org", ["alice@example.org"]))
    updated = run(loop, store.forward_update("info@example.org", ["x@remote.example"]))
    assert updated["targets"] == ["x@remote.example"]
    assert store.resolve_recipient("info@example.org")["remote"] == ["x@remote.example"]
    run(loop, store.forward_delete("INFO@example.org"))
    assert store.get_forward("info@example.org") is None
    for op in (store.forward_update("info@example.org", ["x@remote.example"]),
               store.forward_delete("info@example.org")):
        with pytest.raises(StoreError) as exc:
            run(loop, op)
        assert exc.value.code == "not_found"


def test_accounts_and_domains_respect_forwards(env):
    loop, store, alice, bob = env
    run(loop, store.forward_create("info@example.net", ["x@remote.example"]))
    before = snapshot(store)
    with pytest.raises(StoreError) as exc:
        run(loop, store.create_account("info", emails=["info@example.net"]))
    assert exc.value.code == "exists" and "forwarding alias" in exc.value.message
    with pytest.raises(StoreError) as exc:
        run(loop, store.update_account("alice", add_emails=["info@example.net"]))
    assert exc.value.code == "exists"
    run(loop, store.delete_account("bob"))                 # example.net: no account now
    with pytest.raises(StoreError) as exc:
        run(loop, store.delete_domain("example.net"))
    assert exc.value.code == "in_use" and "forwarding aliases" in exc.value.message
    run(loop, store.forward_delete("info@example.net"))
    run(loop, store.delete_domain("example.net"))
    assert store.get_domain("example.net") is None
    assert before  # the snapshot was taken with the forward present
