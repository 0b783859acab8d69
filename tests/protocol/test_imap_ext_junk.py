"""Junk training events: a message moved into the mailbox with special use \\Junk records
a "spam" event, one moved out of it (not to Trash) a "ham" event, in the store, in the
same commit as the move, whichever protocol moved it (IMAP MOVE, COPY then EXPUNGE, a JMAP
mailboxIds change). The spam filter lists and consumes them; an event keeps its message's
blob readable until it is consumed."""

from __future__ import annotations

import asyncio

import pytest

from stalwart.store import Store, StoreError
from stalwart.protocols.imap.testing import MSG

from .test_imap_ext_grammar import ext_client


def run(coro):
    return asyncio.run(coro)


async def account(store: Store) -> tuple[int, dict[str, int]]:
    await store.create_domain("example.org")
    acc = (await store.create_account("carol", emails=["carol@example.org"]))["id"]
    return acc, {m["role"] or m["name"]: m["id"] for m in store.list_mailboxes(acc)}


def summary(events: list[dict]) -> list[tuple]:
    return [(e["class"], e["email"], e["mailbox"]) for e in events]


def test_imap_move_and_copy_expunge_record_training_events():
    async def t():
        c = await ext_client()
        await c.deliver()
        await c.deliver()
        await c.deliver(mailbox="Junk")
        await c.raw("s1 SELECT INBOX")
        assert c.store.junk_events() == []
        await c.cmd("m1 MOVE 1 Junk", "* OK [COPYUID *", "* 1 EXPUNGE", "m1 OK MOVE completed")
        boxes = {m["role"]: m["id"] for m in c.store.list_mailboxes(c.account)}
        [spam] = c.store.junk_events()
        assert (spam["class"], spam["account"], spam["mailbox"]) == ("spam", c.account,
                                                                     boxes["junk"])
        assert c.store.blobs.get(spam["blob"]) == MSG and spam["size"] == len(MSG)
        # COPY + EXPUNGE out of Junk into the inbox: ham (for the copy, which is what the
        # user keeps).
        await c.raw("s2 SELECT Junk")
        await c.cmd("c1 COPY 1 INBOX", "c1 OK [COPYUID *")
        await c.cmd("c2 STORE 1 +FLAGS.SILENT (\\Deleted)", "c2 OK STORE completed")
        await c.cmd("c3 EXPUNGE", "* 1 EXPUNGE", "c3 OK EXPUNGE completed")
        events = c.store.junk_events()
        assert [e["class"] for e in events] == ["spam", "ham"]
        assert events[1]["mailbox"] == boxes["inbox"]
        # Junk -> Trash teaches nothing; Trash -> Junk is spam again; Inbox -> Archive
        # nothing.
        await c.cmd("m2 MOVE 1 Trash", "* OK [COPYUID *", "* 1 EXPUNGE", "m2 OK MOVE completed")
        await c.raw("s3 SELECT Trash")
        await c.cmd("m3 MOVE 1 Junk", "* OK [COPYUID *", "* 1 EXPUNGE", "m3 OK MOVE completed")
        await c.raw("s4 SELECT INBOX")
        await c.cmd("m4 MOVE 1 Archive", "* OK [COPYUID *", "* 1 EXPUNGE",
                    "m4 OK MOVE completed")
        assert [e["class"] for e in c.store.junk_events()] == ["spam", "ham", "spam"]
    run(t())


def test_events_are_consumed_and_hold_their_blob_until_then():
    async def t():
        store = Store.memory()
        acc, boxes = await account(store)
        first = await store.append(acc, boxes["inbox"], b"Subject: buy now\r\n\r\ncheap\r\n")
        await store.move(acc, [first["id"]], boxes["inbox"], boxes["junk"])
        # The user empties Junk: the message and its blob refcount are gone, but the
        # event still holds the blob for the filter.
        await store.expunge(acc, boxes["junk"], [1])
        assert store.get_email(acc, first["id"]) is None
        [event] = store.junk_events()
        assert store.blobs.get(event["blob"]) == b"Subject: buy now\r\n\r\ncheap\r\n"
        from stalwart.store import keys
        assert store.kv.get(keys.blob_ref(event["blob"])) is not None
        done = await store.consume_junk_events([event["id"], 12345])
        assert done == {"consumed": [event["id"]], "missing": [12345]}
        assert store.junk_events() == []
        assert store.kv.get(keys.blob_ref(event["blob"])) is None
        # Ids keep growing; paging with ``after``.
        for _ in range(3):
            msg = await store.append(acc, boxes["inbox"], b"Subject: x\r\n\r\ny\r\n")
            await store.move(acc, [msg["id"]], boxes["inbox"], boxes["junk"])
        events = store.junk_events()
        assert [e["id"] for e in events] == [event["id"] + 1, event["id"] + 2, event["id"] + 3]
        assert store.junk_events(limit=1, after=events[0]["id"]) == [events[1]]
        with pytest.raises(StoreError) as err:
            await store.consume_junk_events(["x"])
        assert err.value.code == "invalid"
    run(t())


def test_jmap_mailbox_changes_and_copies_train_too():
    async def t():
        store = Store.memory()
        acc, boxes = await account(store)
        msg = await store.append(acc, boxes["inbox"], b"Subject: a\r\n\r\nb\r\n")
        # mailboxIds {inbox} -> {junk}: spam; {junk} -> {junk, archive}: nothing (still
        # in Junk); -> {archive}: ham; -> {trash}: nothing.
        await store.set_mailboxes(acc, msg["id"], [boxes["junk"]])
        await store.set_mailboxes(acc, msg["id"], [boxes["junk"], boxes["archive"]])
        await store.set_mailboxes(acc, msg["id"], [boxes["archive"]])
        await store.set_mailboxes(acc, msg["id"], [boxes["trash"]])
        assert summary(store.junk_events()) == [("spam", msg["id"], boxes["junk"]),
                                                ("ham", msg["id"], boxes["archive"])]
        # COPY into Junk is spam for the copy; a failed move records nothing.
        [copied] = await store.copy(acc, [msg["id"]], boxes["junk"])
        assert summary(store.junk_events())[-1] == ("spam", copied["id"], boxes["junk"])
        before = store.junk_events()
        with pytest.raises(StoreError):
            await store.move(acc, [msg["id"], 999], boxes["trash"], boxes["junk"])
        assert store.junk_events() == before
    run(t())
