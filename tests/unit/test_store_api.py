"""The mail-level store API over the memory backend (same engine as the store process)."""

from __future__ import annotations

import asyncio

import pytest

from stalwart.store import Store, StoreError
from stalwart.store import keys
from stalwart.store.kv import MemoryKV, Txn

MSG = b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n"


def run(coro):
    return asyncio.run(coro)


async def _setup(quota: int = 0):
    s = Store.memory()
    await s.create_domain("example.org")
    alice = await s.create_account("alice", password="secret", emails=["alice@example.org"],
                                   display_name="Alice", quota=quota)
    return s, alice["id"]


def _snapshot(store: Store) -> dict:
    kv = store._kv
    return dict(kv.scan(b"", None))


# ----------------------------------------------------------------------------- directory

def test_domains_accounts_and_addresses():
    async def t():
        s, acc = await _setup()
        await s.create_domain("Example.NET.")  # normalised
        assert [d["name"] for d in s.list_domains()] == ["example.net", "example.org"]
        await s.create_domain("alias.example", alias_of="example.org")
        await s.update_account("alice", add_emails=["ali@example.net"])
        assert s.resolve_address("ALICE@example.org") == acc
        assert s.resolve_address("alice+lists@example.org") == acc
        assert s.resolve_address("alice@alias.example") == acc
        assert s.resolve_address("ali@example.net") == acc
        assert s.resolve_address("bob@example.org") is None
        assert s.resolve_address("alice@elsewhere.example") is None
        await s.set_catch_all("example.org", "alice")
        assert s.resolve_address("bob@example.org") == acc
        await s.set_catch_all("example.org", None)
        assert s.resolve_address("bob@example.org") is None
        assert s.get_account("alice@example.org")["id"] == acc
        assert [a["name"] for a in s.list_accounts(domain="example.net")] == ["alice"]
        assert "secret" not in s.get_account("alice")
    run(t())


def test_authenticate_hashes_and_checks_passwords():
    async def t():
        s, acc = await _setup()
        assert (await s.authenticate("alice", "secret"))["id"] == acc
        assert (await s.authenticate("alice@example.org", "secret"))["id"] == acc
        assert await s.authenticate("alice", "wrong") is None
        assert await s.authenticate("nobody", "secret") is None
        from stalwart.store.engine import unpack
        stored = unpack(s._kv.get(keys.principal(acc)))["secret"]
        assert stored.startswith("$argon2id$") and "secret" not in stored
        await s.update_account("alice", password="new")
        assert await s.authenticate("alice", "secret") is None
        assert await s.authenticate("alice", "new") is not None
        await s.update_account("alice", disabled=True)
        assert await s.authenticate("alice", "new") is None
    run(t())


@pytest.mark.parametrize("call, code", [
    (lambda s: s.create_domain("example.org"), "exists"),
    (lambda s: s.create_domain("not a domain"), "invalid"),
    (lambda s: s.create_domain("x" * 300 + ".example"), "invalid"),
    (lambda s: s.create_domain("single"), "invalid"),
    (lambda s: s.create_domain("a.example", alias_of="missing.example"), "not_found"),
    (lambda s: s.delete_domain("example.org"), "in_use"),
    (lambda s: s.delete_domain("missing.example"), "not_found"),
    (lambda s: s.create_account("alice"), "exists"),
    (lambda s: s.create_account("bob", emails=["alice@example.org"]), "exists"),
    (lambda s: s.create_account("bob", emails=["bob@unknown.example"]), "invalid"),
    (lambda s: s.create_account("bob", emails=["not-an-address"]), "invalid"),
    (lambda s: s.create_account("bob", quota=-1), "invalid"),
    (lambda s: s.create_account("b o b"), "invalid"),
    (lambda s: s.create_account(""), "invalid"),
    (lambda s: s.update_account("missing", quota=1), "not_found"),
    (lambda s: s.update_account("alice", bogus=1), "invalid"),
    (lambda s: s.update_account("alice", remove_emails=["x@example.org"]), "not_found"),
    (lambda s: s.delete_account("missing"), "not_found"),
    (lambda s: s.set_catch_all("example.org", "missing"), "not_found"),
    (lambda s: s.create_mailbox(1, ""), "invalid"),
    (lambda s: s.create_mailbox(1, "a/b"), "invalid"),
    (lambda s: s.create_mailbox(1, "INBOX"), "exists"),
    (lambda s: s.create_mailbox(1, "Sent"), "exists"),
    (lambda s: s.create_mailbox(1, "x", parent=999), "not_found"),
    (lambda s: s.create_mailbox(1, "x", role="bogus"), "invalid"),
    (lambda s: s.create_mailbox(1, "x", role="inbox"), "exists"),
    (lambda s: s.create_mailbox(99, "x"), "not_found"),
    (lambda s: s.delete_mailbox(1, 999), "not_found"),
    (lambda s: s.set_keywords(1, [1], add=["bad keyword"]), "invalid"),
    (lambda s: s.expunge(1, 999, [1]), "not_found"),
    (lambda s: s.move(1, [1], 1, 1), "invalid"),
])
def test_bad_input_is_refused_and_changes_nothing(call, code):
    async def t():
        s, _ = await _setup()
        before = _snapshot(s)
        with pytest.raises(StoreError) as info:
            await call(s)
        assert info.value.code == code
        assert _snapshot(s) == before
    run(t())


def test_unknown_operation_and_bad_argument_shapes():
    async def t():
        s, _ = await _setup()
        for op, args in [("nope", {}), ("append", {"bogus": 1}), ("append", "x"),
                         ("deliver", {"recipients": "x", "blob": b"", "size": 1}),
                         ("append", {"account": 1, "mailbox": 1, "blob": b"x" * 32, "size": 3})]:
            before = _snapshot(s)
            with pytest.raises(StoreError):
                await s._writer.call(op, args)
            assert _snapshot(s) == before
    run(t())


def test_delete_account_removes_everything():
    async def t():
        s, acc = await _setup()
        await s.append(acc, 1, MSG)
        await s.set_catch_all("example.org", "alice")
        await s.delete_account("alice")
        assert s.get_account("alice") is None
        assert s.resolve_address("alice@example.org") is None
        assert s.get_domain("example.org")["catch_all"] is None
        left = [k for k in _snapshot(s) if k[:1] in keys.ACCOUNT_SUBSPACES or k[:1] in
                (keys.PRINCIPAL, keys.NAME_IDX, keys.EMAIL_IDX, keys.BLOB_REF)]
        assert left == []
        await s.delete_domain("example.org")
        assert s.list_domains() == []
        # Ids are never reused.
        again = await s.create_domain("example.org")
        bob = await s.create_account("bob", emails=["bob@example.org"])
        assert again and bob["id"] == acc + 1
    run(t())


# ----------------------------------------------------------------------------- mailboxes

def test_default_mailboxes_and_hierarchy():
    async def t():
        s, acc = await _setup()
        roles = {m["name"]: m["role"] for m in s.list_mailboxes(acc)}
        assert roles == {"Inbox": "inbox", "Drafts": "drafts", "Sent": "sent", "Junk": "junk",
                         "Trash": "trash", "Archive": "archive"}
        assert s.find_mailbox(acc, "inbox")["role"] == "inbox"
        work = await s.create_mailbox(acc, "Work")
        proj = await s.create_mailbox(acc, "Projects", parent=work["id"])
        assert s.find_mailbox(acc, "Work/Projects")["id"] == proj["id"]
        with pytest.raises(StoreError) as e:
            await s.update_mailbox(acc, work["id"], parent=proj["id"])
        assert e.value.code == "invalid"
        with pytest.raises(StoreError) as e:
            await s.delete_mailbox(acc, work["id"])
        assert e.value.code == "in_use"
        renamed = await s.update_mailbox(acc, proj["id"], name="Old", parent=0)
        assert s.find_mailbox(acc, "Old")["uidvalidity"] == renamed["uidvalidity"]
        await s.delete_mailbox(acc, work["id"])
        # A recreated mailbox of the same name gets a new UIDVALIDITY (RFC 9051 2.3.1.1).
        again = await s.create_mailbox(acc, "Work")
        assert again["uidvalidity"] != work["uidvalidity"]
        await s.update_mailbox(acc, again["id"], acl={2: "lr"}, subscribed=False)
        m = s.get_mailbox(acc, again["id"])
        assert m["acl"] == {2: "lr"} and m["subscribed"] is False
    run(t())


# ----------------------------------------------------------------------------- messages

def test_append_flags_counters_and_changes():
    async def t():
        s, acc = await _setup()
        state0 = s.account_state(acc)["change"]
        r1 = await s.append(acc, 1, MSG, keywords=["\\Seen".replace("\\", "$")])
        r2 = await s.append(acc, 1, MSG + b"2", keywords=[])
        assert (r1["uid"], r2["uid"]) == (1, 2) and r2["modseq"] > r1["modseq"]
        inbox = s.get_mailbox(acc, 1)
        assert (inbox["total"], inbox["unseen"], inbox["uidnext"]) == (2, 1, 3)
        assert inbox["size"] == len(MSG) * 2 + 1
        assert s.read_message(acc, r1["id"]) == MSG
        res = await s.set_keywords(acc, [r2["id"]], add=["$Seen", "$Flagged"])
        assert res["updated"] == [r2["id"]]
        assert s.get_email(acc, r2["id"])["kw"] == ["$flagged", "$seen"]
        assert s.get_mailbox(acc, 1)["unseen"] == 0
        # CONDSTORE UNCHANGEDSINCE: older modseq -> conflict, nothing written.
        res = await s.set_keywords(acc, [r2["id"]], remove=["$seen"], unchanged_since=r1["modseq"])
        assert res["conflicts"] == [r2["id"]] and res["updated"] == []
        ch = s.changes_since(acc, "Email", state0)
        assert ch["created"] == [r1["id"], r2["id"]] and ch["updated"] == []
        mid = s.changes_since(acc, "Email", r2["modseq"])
        assert mid["updated"] == [r2["id"]] and mid["created"] == []
        assert s.changes_since(acc, "Mailbox", state0)["updated"] == [1]
        with pytest.raises(StoreError) as e:
            s.changes_since(acc, "Email", 10**9)
        assert e.value.code == "conflict"
        paged = s.changes_since(acc, "Email", state0, max_changes=1)
        assert paged["has_more"] and paged["created"] == [r1["id"]]
    run(t())


def test_move_copy_expunge_vanished_and_destroy():
    async def t():
        s, acc = await _setup()
        trash = s.find_mailbox(acc, "Trash")["id"]
        r = [await s.append(acc, 1, MSG + bytes([i])) for i in range(4)]
        before = s.get_mailbox(acc, 1)["hms"]
        moved = await s.move(acc, [r[0]["id"]], 1, trash)
        assert moved == [{"id": r[0]["id"], "old_uid": 1, "uid": 1}]
        assert [u for u, _ in s.mailbox_uids(acc, 1)] == [2, 3, 4]
        assert s.vanished_since(acc, 1, before) == [1]
        copies = await s.copy(acc, [r[1]["id"]], trash)
        assert copies[0]["id"] != r[1]["id"] and copies[0]["uid"] == 2
        assert copies[0]["thread"] == r[1]["thread"]
        await s.set_keywords(acc, [copies[0]["id"]], add=["$seen"])
        assert s.get_email(acc, r[1]["id"])["kw"] == []  # copies have their own flags
        res = await s.expunge(acc, 1, [2, 3, 99])
        assert res["expunged"] == [2, 3]
        assert s.get_email(acc, r[2]["id"]) is None  # in no mailbox -> destroyed
        assert s.get_email(acc, r[1]["id"]) is None
        assert s.vanished_since(acc, 1, before) == [1, 2, 3]
        await s.set_mailboxes(acc, r[3]["id"], [1, trash])
        assert set(s.get_email(acc, r[3]["id"])["mb"]) == {1, trash}
        await s.destroy(acc, [r[3]["id"]])
        assert s.mailbox_uids(acc, 1) == []
        assert s.get_mailbox(acc, 1)["total"] == 0
        used = s.get_account("alice")["used"]
        assert used == sum(s.get_email(acc, i)["size"] for i in s.list_email_ids(acc))
    run(t())


def test_quota_enforced_per_recipient_and_delivery():
    async def t():
        s, acc = await _setup(quota=100)
        bob = (await s.create_account("bob", emails=["bob@example.org"]))["id"]
        results = await s.deliver([{"account": acc}, {"account": bob}, {"account": 77}],
                                  b"x" * 150)
        assert results[0] == {"error": "over_quota", "message": results[0]["message"]}
        assert results[1]["uid"] == 1 and results[2]["error"] == "not_found"
        assert s.mailbox_uids(acc, 1) == [] and s.get_account("alice")["used"] == 0
        assert len(s.mailbox_uids(bob, 1)) == 1
        with pytest.raises(StoreError) as e:
            await s.append(acc, 1, b"y" * 101)
        assert e.value.code == "over_quota"
        assert (await s.append(acc, 1, b"y" * 100))["uid"] == 1
    run(t())


def test_threads_follow_references_in_any_order():
    async def t():
        s, acc = await _setup()
        reply = await s.append(acc, 1, MSG + b"r", thread_keys={"message_id": "<b@x>",
                                                             "refs": ["<a@x>"]})
        parent = await s.append(acc, 1, MSG + b"p", thread_keys={"message_id": "<a@x>"})
        other = await s.append(acc, 1, MSG + b"o", thread_keys={"message_id": "<c@x>"})
        assert parent["thread"] == reply["thread"] != other["thread"]
    run(t())


def test_events_are_published_after_commit():
    async def t():
        s, acc = await _setup()
        seen = []
        unsubscribe = s.subscribe(lambda a, change, types: seen.append((a, change, types)))
        r = await s.append(acc, 1, MSG)
        assert seen == [(acc, r["modseq"], ["Email", "Mailbox", "Thread"])]
        unsubscribe()
        await s.append(acc, 1, MSG + b"x")
        assert len(seen) == 1
    run(t())


# ----------------------------------------------------------------------------- kv layers

def test_txn_scan_merges_layers_in_both_directions():
    base = MemoryKV()
    base.apply({b"a1": b"base", b"a3": b"base", b"a5": b"base", b"b1": b"out"})
    inflight = {b"a2": b"inflight", b"a3": None}
    current = {b"a4": b"current", b"a2": b"current2"}
    txn = Txn(base, (current, inflight))
    txn.put(b"a6", b"own")
    txn.delete(b"a5")
    fwd = list(txn.scan(b"a", b"b"))
    assert fwd == [(b"a1", b"base"), (b"a2", b"current2"), (b"a4", b"current"), (b"a6", b"own")]
    assert list(txn.scan(b"a", b"b", reverse=True)) == fwd[::-1]
    assert txn.get(b"a3") is None and txn.get(b"a2") == b"current2"


def test_scram_credentials_follow_the_password():
    from stalwart.sasl.scram import ScramCredentials

    async def t():
        s, acc = await _setup()
        first = s.get_scram_credentials("alice@example.org")
        assert first.startswith("SCRAM-SHA-256$4096:")
        creds = ScramCredentials.parse(first)
        assert creds == ScramCredentials.from_password("secret", salt=creds.salt,
                                                       iterations=creds.iterations)
        await s.update_account("alice", password="other")
        assert s.get_scram_credentials("alice") not in (None, first)
        await s.update_account("alice", disabled=True)
        assert s.get_scram_credentials("alice") is None
        assert s.get_scram_credentials("nobody") is None
    run(t())


def test_append_many_is_all_or_nothing_and_mailbox_messages_reads_the_view():
    async def t():
        s, acc = await _setup(quota=200)
        done = await s.append_many(acc, 1, [{"message": b"a" * 50, "keywords": ["$seen"]},
                                            {"message": b"b" * 50}])
        assert [d["uid"] for d in done] == [1, 2]
        before = _snapshot(s)
        with pytest.raises(StoreError) as e:
            await s.append_many(acc, 1, [{"message": b"c" * 50}, {"message": b"d" * 60}])
        assert e.value.code == "over_quota"
        assert _snapshot(s) == before
        view = s.mailbox_messages(acc, 1)
        assert [(u, i, kw) for u, i, kw, _ in view] == [(1, done[0]["id"], ["$seen"]),
                                                        (2, done[1]["id"], [])]
        assert all(m == done[1]["modseq"] or m == done[0]["modseq"] for *_, m in view)
    run(t())
