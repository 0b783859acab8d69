"""ACL (RFC 4314) and mailboxes shared between accounts: the store's enforcement, and
transcripts of SETACL/DELETEACL/GETACL/LISTRIGHTS/MYRIGHTS and the "Other Users"
namespace through the sans-IO session over Store.memory()."""

from __future__ import annotations

import asyncio

import pytest

from stalwart.protocols.imap.grammar import parse_command as native_parse
from stalwart.protocols.imap.grammar_ref import parse_command as ref_parse
from stalwart.protocols.imap.testing import MSG, Client
from stalwart.store import Store, StoreError
from stalwart.store.ops.acl import normalize_rights


def run(coro):
    return asyncio.run(coro)


async def _accounts():
    store = Store.memory()
    await store.create_domain("example.org")
    alice = await store.create_account("alice", password="secret", emails=["alice@example.org"])
    bob = await store.create_account("bob", password="bobpw", emails=["bob@example.org"])
    inbox = store.find_mailbox(bob["id"], "Inbox")
    return store, alice["id"], bob["id"], inbox["id"]


async def _select(c: Client, line: str, *expected: str) -> list[bytes]:
    """SELECT/EXAMINE: every ``expected`` line is among the responses (their number
    depends on IMAP4rev1/rev2 and CONDSTORE); the last one is the tagged answer."""
    lines = await c.raw(line)
    text = [ln.decode() for ln in lines]
    for want in expected[:-1]:
        assert want in text, "\n".join(text)
    assert text[-1].startswith(expected[-1]), "\n".join(text)
    return lines


async def _login(store, user, password) -> Client:
    c = await Client.create(store, login=False)
    await c.cmd(f"L1 LOGIN {user} {password}", "L1 OK [CAPABILITY *")
    await c.cmd("L2 ENABLE IMAP4rev2", "* ENABLED IMAP4rev2", "L2 OK*")
    return c


# --------------------------------------------------------------------------- the store

def test_rights_are_normalized_and_checked():
    assert normalize_rights("rl") == "lr"
    assert normalize_rights("cd") == "ektx"        # RFC 2086 c -> k, d -> x t e
    assert normalize_rights("lrswipkxtea") == "aeiklprstwx"
    with pytest.raises(StoreError) as exc:
        normalize_rights("lrz")
    assert exc.value.code == "invalid"


def test_store_refuses_writes_without_rights_and_changes_nothing():
    async def t():
        store, alice, bob, inbox = await _accounts()
        msg = await store.append(bob, inbox, MSG)
        # No grant at all: every write by alice in bob's inbox is refused.
        for call in (
            lambda: store.set_keywords(bob, [msg["id"]], add=["$seen"], actor=alice,
                                       mailbox=inbox),
            lambda: store.expunge(bob, inbox, [msg["uid"]], actor=alice),
            lambda: store.append_many(bob, inbox, [{"message": MSG}], actor=alice),
            lambda: store.set_acl(bob, inbox, actor=alice, grantee=alice, rights="lr"),
        ):
            with pytest.raises(StoreError) as exc:
                await call()
            assert exc.value.code == "forbidden"
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lr")
        before = store.get_email(bob, msg["id"])
        for kw in ("$seen", "$deleted", "$flagged"):
            with pytest.raises(StoreError) as exc:
                await store.set_keywords(bob, [msg["id"]], add=[kw], actor=alice,
                                         mailbox=inbox)
            assert exc.value.code == "forbidden"
        with pytest.raises(StoreError):
            await store.expunge(bob, inbox, [msg["uid"]], actor=alice)
        with pytest.raises(StoreError):
            await store.append_many(bob, inbox, [{"message": MSG}], actor=alice)
        assert store.get_email(bob, msg["id"]) == before
        assert store.get_mailbox(bob, inbox)["total"] == 1
        # "s" allows \Seen and only \Seen; "t" \Deleted; "e" EXPUNGE; "i" APPEND.
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="s", mode="add")
        await store.set_keywords(bob, [msg["id"]], add=["$seen"], actor=alice, mailbox=inbox)
        with pytest.raises(StoreError):
            await store.set_keywords(bob, [msg["id"]], add=["$flagged"], actor=alice,
                                     mailbox=inbox)
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lrstei")
        await store.set_keywords(bob, [msg["id"]], add=["$deleted"], actor=alice,
                                 mailbox=inbox)
        done = await store.append_many(bob, inbox, [{"message": MSG,
                                                     "keywords": ["$seen", "$flagged"]}],
                                       actor=alice)
        # Flags the actor may not set are dropped from an APPEND (no "w": no $flagged).
        assert store.get_email(bob, done[0]["id"])["kw"] == ["$seen"]
        assert (await store.expunge(bob, inbox, [msg["uid"]], actor=alice))["expunged"] == \
            [msg["uid"]]
    run(t())


def test_store_keyword_check_is_per_mailbox():
    async def t():
        store, alice, bob, inbox = await _accounts()
        other = store.find_mailbox(bob, "Archive")["id"]
        msg = await store.append(bob, other, MSG)
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lrswte")
        # Rights on the inbox give nothing on a message that is not in it.
        with pytest.raises(StoreError) as exc:
            await store.set_keywords(bob, [msg["id"]], add=["$seen"], actor=alice,
                                     mailbox=inbox)
        assert exc.value.code == "forbidden"
    run(t())


def test_acl_grants_anyone_index_and_admin_right():
    async def t():
        store, alice, bob, inbox = await _accounts()
        carol = (await store.create_account("carol", emails=["carol@example.org"]))["id"]
        assert store.shared_with(alice) == []
        await store.set_acl(bob, inbox, actor=bob, grantee=0, rights="lr")
        [(owner, record, rights)] = store.shared_with(alice)
        assert (owner, record["id"], rights) == (bob, inbox, "lr")
        assert store.shared_with(carol)[0][2] == "lr"
        with pytest.raises(StoreError) as exc:   # the owner's rights are fixed
            await store.set_acl(bob, inbox, actor=bob, grantee=bob, rights="l")
        assert exc.value.code == "invalid"
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lra")
        # alice administers now: she can grant carol, not change bob
        await store.set_acl(bob, inbox, actor=alice, grantee=carol, rights="lrs")
        assert store.get_mailbox(bob, inbox)["acl"] == {0: "lr", alice: "alr", carol: "lrs"}
        await store.set_acl(bob, inbox, actor=bob, grantee=0, rights="")
        await store.set_acl(bob, inbox, actor=bob, grantee=carol, rights="s", mode="remove")
        assert store.get_mailbox(bob, inbox)["acl"] == {alice: "alr", carol: "lr"}
        await store.delete_mailbox(bob, store.find_mailbox(bob, "Junk")["id"])
        # A deleted mailbox's index entries are skipped; removed grants leave the index.
        assert [r[1]["id"] for r in store.shared_with(carol)] == [inbox]
    run(t())


def test_copy_across_accounts_checks_both_sides():
    async def t():
        store, alice, bob, inbox = await _accounts()
        msg = await store.append(bob, inbox, MSG, keywords=["$flagged"])
        mine = store.find_mailbox(alice, "Inbox")["id"]
        with pytest.raises(StoreError) as exc:
            await store.copy_across(alice, bob, inbox, [msg["id"]], alice, mine)
        assert exc.value.code == "forbidden"
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lr")
        [done] = await store.copy_across(alice, bob, inbox, [msg["id"]], alice, mine)
        assert store.read_message(alice, done["id"]) == MSG
        assert store.get_email(alice, done["id"])["kw"] == ["$flagged"]
        assert store.get_account(alice)["used"] == len(MSG)
        with pytest.raises(StoreError):   # no "i" on bob's inbox
            await store.copy_across(alice, alice, mine, [done["id"]], bob, inbox)
    run(t())


# --------------------------------------------------------------------------- the grammar

ACL_COMMANDS = [
    b'a1 SETACL INBOX bob +lrs',
    b'a2 SETACL "Other Users/bob/INBOX" anyone lr',
    b'a3 DELETEACL INBOX bob',
    b'a4 GETACL INBOX',
    b'a5 LISTRIGHTS INBOX anyone',
    b'a6 MYRIGHTS "Other Users/bob/INBOX"',
]


@pytest.mark.parametrize("line", ACL_COMMANDS)
def test_native_parser_agrees_with_reference_on_acl_commands(line):
    assert native_parse([line], []) == ref_parse([line], [])


@pytest.mark.parametrize("line", [b"a SETACL INBOX bob", b"a GETACL", b"a MYRIGHTS a b",
                                  b"a LISTRIGHTS INBOX"])
def test_acl_syntax_errors_are_bad(line):
    from stalwart.protocols.imap.types import ImapError
    with pytest.raises(ImapError) as exc:
        ref_parse([line], [])
    assert exc.value.reply_code == "BAD" and exc.value.tag == "a"


# --------------------------------------------------------------------------- the session

def test_acl_commands_and_other_users_namespace():
    async def t():
        store, alice, bob, inbox = await _accounts()
        await store.append(bob, inbox, MSG)
        b = await _login(store, "bob", "bobpw")
        lines = await b.cmd("c0 CAPABILITY", "* CAPABILITY *", "c0 OK*")
        assert b" ACL " in lines[0] and b"RIGHTS=texk" in lines[0]
        await b.cmd("b1 GETACL INBOX", "* ACL INBOX bob lrswipkxtea", "b1 OK GETACL completed")
        await b.cmd("b2 SETACL INBOX alice lr", "b2 OK SETACL completed")
        await b.cmd("b3 SETACL INBOX alice +s", "b3 OK SETACL completed")
        await b.cmd("b4 GETACL INBOX", "* ACL INBOX bob lrswipkxtea alice lrs",
                    "b4 OK GETACL completed")
        await b.cmd("b5 LISTRIGHTS INBOX alice",
                    '* LISTRIGHTS INBOX alice "" l r s w i p k x t e a c d',
                    "b5 OK LISTRIGHTS completed")
        await b.cmd("b6 LISTRIGHTS INBOX bob", "* LISTRIGHTS INBOX bob lrswipkxtea",
                    "b6 OK LISTRIGHTS completed")
        await b.cmd("b7 MYRIGHTS INBOX", "* MYRIGHTS INBOX lrswipkxtea", "b7 OK*")
        await b.cmd("b8 SETACL INBOX bob lr", "b8 NO [CANNOT] The owner always has every right")
        await b.cmd("b9 SETACL INBOX nobody lr", "b9 NO [NONEXISTENT] No such identifier nobody")
        await b.cmd("b10 SETACL INBOX alice lrz", "b10 BAD*")
        await b.cmd("b11 SETACL INBOX -alice lr", "b11 NO [CANNOT]*")

        a = await _login(store, "alice", "secret")
        await a.cmd("a1 NAMESPACE", '* NAMESPACE (("" "/")) (("Other Users/" "/")) NIL',
                    "a1 OK NAMESPACE completed")
        lines = await a.cmd('a2 LIST "" "*"', *["*"] * 9, "a2 OK LIST completed")
        text = b"\n".join(lines)
        assert b'* LIST (\\Noselect \\HasChildren) "/" "Other Users"' in text
        assert b'* LIST (\\Noselect \\HasChildren) "/" "Other Users/bob"' in text
        assert b'* LIST (\\HasNoChildren) "/" "Other Users/bob/INBOX"' in text
        assert b"Other Users/bob/Drafts" not in text        # no "l" there
        await a.cmd('a3 LIST "" "Other Users/%"',
                    '* LIST (\\Noselect \\HasChildren) "/" "Other Users/bob"', "a3 OK*")
        await a.cmd('a4 MYRIGHTS "Other Users/bob/INBOX"',
                    '* MYRIGHTS "Other Users/bob/INBOX" lrs', "a4 OK MYRIGHTS completed")
        await a.cmd('a5 GETACL "Other Users/bob/INBOX"', "a5 NO [NOPERM]*")
        await a.cmd('a6 SETACL "Other Users/bob/INBOX" alice lrswi', "a6 NO [NOPERM]*")
        await a.cmd('a7 MYRIGHTS "Other Users/bob/Drafts"', "a7 NO [NONEXISTENT]*")
        await a.cmd('a8 SELECT "Other Users/bob/Drafts"', "a8 NO [NONEXISTENT]*")
        await a.cmd('a9 STATUS "Other Users/bob/INBOX" (MESSAGES UNSEEN)',
                    '* STATUS "Other Users/bob/INBOX" (MESSAGES 1 UNSEEN 1)', "a9 OK*")
        # DELETEACL takes it all away: the mailbox disappears for alice.
        await b.cmd("b12 DELETEACL INBOX alice", "b12 OK DELETEACL completed")
        await a.cmd('a10 LIST "" "Other Users*"', "a10 OK LIST completed")
        await a.cmd('a11 SELECT "Other Users/bob/INBOX"', "a11 NO [NONEXISTENT]*")
    run(t())


def test_read_only_grant_cannot_store_expunge_or_append():
    async def t():
        store, alice, bob, inbox = await _accounts()
        msg = await store.append(bob, inbox, MSG)
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lr")
        a = await _login(store, "alice", "secret")
        await _select(a, 'a1 SELECT "Other Users/bob/INBOX"', "* 1 EXISTS",
                      "* OK [PERMANENTFLAGS ()] Read-only mailbox", "* OK [UIDNEXT 2] "
                      "Predicted next UID", "a1 OK [READ-ONLY] SELECT completed")
        # Reading does not set \Seen without "s" (RFC 4314 4).
        lines = await a.cmd("a2 FETCH 1 (BODY[] FLAGS)", "* 1 FETCH*", "a2 OK FETCH completed")
        assert b"Hi Alice" in lines[0] and b"FLAGS ()" in lines[0]
        await a.cmd("a3 STORE 1 +FLAGS (\\Deleted)", "a3 NO Mailbox is read-only")
        await a.cmd("a4 EXPUNGE", "a4 NO Mailbox is read-only")
        await a.cmd('a5 APPEND "Other Users/bob/INBOX" {5+}\r\nhello',
                    "a5 NO [NOPERM]*")
        assert store.get_email(bob, msg["id"])["kw"] == []
        assert store.get_mailbox(bob, inbox)["total"] == 1
        # COPY out of the shared mailbox into one's own works with "r".
        await a.cmd("a6 COPY 1 INBOX", "a6 OK [COPYUID*")
        assert store.get_mailbox(alice, store.find_mailbox(alice, "Inbox")["id"])["total"] == 1
    run(t())


def test_partial_rights_are_enforced_by_the_store():
    async def t():
        store, alice, bob, inbox = await _accounts()
        msg = await store.append(bob, inbox, MSG)
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lrs")
        a = await _login(store, "alice", "secret")
        await _select(a, 'a1 SELECT "Other Users/bob/INBOX"',
                      "* OK [PERMANENTFLAGS (\\Seen)] Flags permitted", "a1 OK [READ-WRITE]")
        await a.cmd("a2 STORE 1 +FLAGS (\\Seen)", "* 1 FETCH (FLAGS (\\Seen))", "a2 OK*")
        await a.cmd("a3 STORE 1 +FLAGS (\\Deleted)", "a3 NO [NOPERM]*")
        await a.cmd("a4 STORE 1 +FLAGS (\\Flagged)", "a4 NO [NOPERM]*")
        assert store.get_email(bob, msg["id"])["kw"] == ["$seen"]
        # With "t" the \Deleted flag can be set, but EXPUNGE still needs "e".
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="t", mode="add")
        await a.cmd("a5 STORE 1 +FLAGS.SILENT (\\Deleted)", "a5 OK STORE completed")
        await a.cmd("a6 EXPUNGE", "a6 NO [NOPERM]*")
        assert store.get_mailbox(bob, inbox)["total"] == 1
    run(t())


def test_shared_session_sees_owner_changes():
    async def t():
        store, alice, bob, inbox = await _accounts()
        await store.append(bob, inbox, MSG)
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lrswite")
        a = await _login(store, "alice", "secret")
        b = await _login(store, "bob", "bobpw")
        await _select(a, 'a1 SELECT "Other Users/bob/INBOX"', "a1 OK [READ-WRITE]")
        await _select(b, "b1 SELECT INBOX", "b1 OK [READ-WRITE]")
        woken = []
        a.s.on_wakeup = lambda: woken.append(1)
        out = await a.send(b"a2 IDLE\r\n")
        assert out.startswith(b"+ ")
        # The owner appends and flags: alice's IDLE hears of it.
        await b.cmd("b2 APPEND INBOX {5+}\r\nhello", "* 2 EXISTS", "b2 OK [APPENDUID*")
        assert woken
        await a.s.idle_poll()
        assert b"* 2 EXISTS" in a.s.data_to_send()
        await b.cmd("b3 STORE 1 +FLAGS (\\Flagged)", "* 1 FETCH (FLAGS (\\Flagged))", "b3 OK*")
        await a.s.idle_poll()
        assert b"* 1 FETCH (FLAGS (\\Flagged))" in a.s.data_to_send()
        await a.cmd("DONE", "a2 OK IDLE terminated")
        # alice's changes reach bob the same way.
        await a.cmd("a3 STORE 2 +FLAGS.SILENT (\\Deleted)", "a3 OK STORE completed")
        await a.cmd("a4 EXPUNGE", "* 2 EXPUNGE", "a4 OK EXPUNGE completed")
        await b.cmd("b4 NOOP", "* 2 EXPUNGE", "b4 OK NOOP completed")
    run(t())


def test_list_return_myrights():
    async def t():
        store, alice, bob, inbox = await _accounts()
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="lrs")
        a = await _login(store, "alice", "secret")
        lines = await a.cmd('a1 CAPABILITY', "* CAPABILITY *", "a1 OK*")
        assert b"LIST-MYRIGHTS" in lines[0]
        await a.cmd('a2 LIST "" "INBOX" RETURN (MYRIGHTS)',
                    '* LIST (\\HasNoChildren) "/" INBOX', "* MYRIGHTS INBOX lrswipkxtea",
                    "a2 OK LIST completed")
        await a.cmd('a3 LIST "" "Other Users/bob/*" RETURN (MYRIGHTS)',
                    '* LIST (\\HasNoChildren) "/" "Other Users/bob/INBOX"',
                    '* MYRIGHTS "Other Users/bob/INBOX" lrs', "a3 OK LIST completed")
    run(t())


def test_login_checks_are_cached_shared_and_invalidated(monkeypatch):
    """Store.authenticate (used by every IMAP LOGIN): concurrent logins with the same
    credentials share one argon2 check, a success is remembered, a failure is not, and a
    password change invalidates what was remembered."""
    import stalwart.store.api as api

    calls = []
    real = api.verify_secret

    def counting(stored, password):
        calls.append(password)
        return real(stored, password)

    async def t():
        store = Store.memory()
        await store.create_domain("example.org")
        await store.create_account("alice", password="pw", emails=["alice@example.org"])
        monkeypatch.setattr(api, "verify_secret", counting)
        results = await asyncio.gather(*(store.authenticate("alice", "pw") for _ in range(10)))
        assert all(r and r["name"] == "alice" for r in results) and calls == ["pw"]
        assert (await store.authenticate("alice@example.org", "pw"))["name"] == "alice"
        assert calls == ["pw"]
        assert await store.authenticate("alice", "wrong") is None
        assert await store.authenticate("alice", "wrong") is None
        assert calls == ["pw", "wrong", "wrong"]
        await store.update_account("alice", password="new")
        assert await store.authenticate("alice", "pw") is None
        assert (await store.authenticate("alice", "new"))["name"] == "alice"
        await store.update_account("alice", disabled=True)
        assert await store.authenticate("alice", "new") is None
    run(t())


def test_create_and_delete_in_other_users_need_k_and_x():
    async def t():
        store, alice, bob, inbox = await _accounts()
        archive = store.find_mailbox(bob, "Archive")["id"]
        await store.set_acl(bob, archive, actor=bob, grantee=alice, rights="lr")
        a = await _login(store, "alice", "secret")
        await a.cmd('a1 CREATE "Other Users/bob/Archive/2024"', "a1 NO [NOPERM]*")
        await a.cmd('a2 CREATE "Other Users/bob/Top"', "a2 NO [NOPERM]*")
        await a.cmd('a3 CREATE "Other Users"', "a3 NO [NOPERM]*")
        await store.set_acl(bob, archive, actor=bob, grantee=alice, rights="k", mode="add")
        await a.cmd('a4 CREATE "Other Users/bob/Archive/2024"', "a4 OK CREATE completed")
        made = store.find_mailbox(bob, "Archive/2024")
        assert made is not None and made["parent"] == archive
        assert store.find_mailbox(alice, "Other Users") is None   # nothing of alice's
        # The new mailbox is bob's, with no grant: alice does not see it.
        await a.cmd('a5 DELETE "Other Users/bob/Archive/2024"', "a5 NO [NONEXISTENT]*")
        await store.set_acl(bob, made["id"], actor=bob, grantee=alice, rights="lr")
        await a.cmd('a6 DELETE "Other Users/bob/Archive/2024"', "a6 NO [NOPERM]*")
        await store.set_acl(bob, made["id"], actor=bob, grantee=alice, rights="x", mode="add")
        await a.cmd('a7 DELETE "Other Users/bob/Archive"', "a7 NO [NOPERM]*")
        await a.cmd('a8 DELETE "Other Users/bob/Archive/2024"', "a8 OK DELETE completed")
        assert store.find_mailbox(bob, "Archive/2024") is None
        await a.cmd('a9 RENAME "Other Users/bob/Archive" Mine', "a9 NO [CANNOT]*")
        await a.cmd('a10 SUBSCRIBE "Other Users/bob/Archive"', "a10 NO [CANNOT]*")
    run(t())


def test_select_snapshot_catches_up_with_every_kind_of_change():
    """SELECT starts from a per-process snapshot of the mailbox brought up to date from the
    change log (selected.py): after flag changes, expunges, appends and moves in and out,
    a new SELECT sees exactly what a fresh read of the store sees."""
    from stalwart.protocols.imap.selected import SelectedMailbox

    async def t():
        store, alice, bob, inbox = await _accounts()
        other = store.find_mailbox(bob, "Archive")["id"]
        msgs = [await store.append(bob, inbox, MSG) for _ in range(12)]
        outside = await store.append(bob, other, MSG)

        def view():
            return SelectedMailbox(store, bob, store.get_mailbox(bob, inbox), "INBOX", True)

        def fresh():
            rows = store.mailbox_messages(bob, inbox)
            return [r[0] for r in rows], {r[0]: (frozenset(r[2]), r[3]) for r in rows}

        first = view()
        assert (first.uids, first.flags) == fresh()
        reads = []
        real = store.mailbox_messages
        store.mailbox_messages = lambda *a: reads.append(a) or real(*a)
        await store.set_keywords(bob, [msgs[0]["id"], msgs[5]["id"]], add=["$flagged", "work"])
        await store.expunge(bob, inbox, [msgs[1]["uid"], msgs[7]["uid"]])
        await store.append(bob, inbox, MSG, keywords=["$seen"])
        await store.move(bob, [msgs[3]["id"]], inbox, other)
        await store.move(bob, [outside["id"]], other, inbox)
        await store.copy(bob, [msgs[4]["id"]], other)
        second = view()
        assert reads == []   # caught up from the change log, not read again
        assert (second.uids, second.flags) == fresh()
        assert "work" in second.keywords
        # Views share the snapshot's containers until they change (copy on write): one
        # view's EXPUNGE or flag change leaves the others and later SELECTs untouched.
        third = view()
        assert third.uids is second.uids
        gone = second.uids[0]
        second.expunge_responses([gone], qresync=False)
        second._cache(second.uids[0], {"kw": ["$draft"], "modseq": 10**6})
        assert gone in third.uids and view().uids == fresh()[0]
        assert (third.uids, third.flags) == fresh()
    run(t())


def test_views_share_again_after_reporting_a_change():
    """Idle sessions on one mailbox share one copy of its UIDs and flags; a new message
    makes each view take its own copy to report it, then share the updated snapshot."""
    from stalwart.protocols.imap.selected import SelectedMailbox

    async def t():
        store, alice, bob, inbox = await _accounts()
        for _ in range(5):
            await store.append(bob, inbox, MSG)
        views = [SelectedMailbox(store, bob, store.get_mailbox(bob, inbox), "INBOX", False)
                 for _ in range(3)]
        assert views[0].uids is views[1].uids is views[2].uids
        await store.append(bob, inbox, MSG, keywords=["$flagged"])
        await store.set_keywords(bob, [1], add=["$seen"])
        outs = [v.sync(allow_expunge=True, condstore=False, qresync=False,
                       uid_in_fetch=False) for v in views]
        assert all(b"* 6 EXISTS\r\n" in out and b"* 1 FETCH (FLAGS (\\Seen))\r\n" in out
                   for out in outs)
        assert views[0].uids is views[1].uids is views[2].uids and len(views[0].uids) == 6
        assert views[0].flags is views[2].flags
        # A view with an expunge it may not announce yet keeps its own copy.
        await store.expunge(bob, inbox, [2])
        views[0].sync(allow_expunge=False, condstore=False, qresync=False, uid_in_fetch=False)
        views[1].sync(allow_expunge=True, condstore=False, qresync=False, uid_in_fetch=False)
        assert 2 in views[0].uids and 2 not in views[1].uids and views[0].pending_expunge == {2}
    run(t())


def test_read_without_lookup_selects_but_is_not_listed():
    async def t():
        store, alice, bob, inbox = await _accounts()
        await store.append(bob, inbox, MSG)
        await store.set_acl(bob, inbox, actor=bob, grantee=alice, rights="r")
        a = await _login(store, "alice", "secret")
        await a.cmd('a1 LIST "" "Other Users*"', "a1 OK LIST completed")
        await _select(a, 'a2 EXAMINE "Other Users/bob/INBOX"', "* 1 EXISTS",
                      "a2 OK [READ-ONLY] EXAMINE completed")
        await a.cmd('a3 MYRIGHTS "Other Users/bob/INBOX"',
                    '* MYRIGHTS "Other Users/bob/INBOX" r', "a3 OK MYRIGHTS completed")
    run(t())
