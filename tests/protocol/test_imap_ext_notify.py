"""NOTIFY (RFC 5465) in the sans-IO session: what the client asked for arrives without IDLE
and between commands, driven by the store's change events. ``watcher`` is the session
under test; ``other`` (same account, same store) makes the changes; ``pushed`` plays the
adapter: it runs ``idle_poll`` when the session asked to be woken and returns what the
session then sends."""

from __future__ import annotations

import asyncio

from stalwart.protocols.imap.testing import MSG, Client, split_lines

from .test_imap_ext_grammar import ext_client


def run(coro):
    return asyncio.run(coro)


async def pair() -> tuple[Client, Client, list]:
    watcher = await ext_client()
    other = await ext_client(watcher.store)
    wakeups: list[int] = []
    watcher.s.on_wakeup = lambda: wakeups.append(1)
    return watcher, other, wakeups


async def pushed(c: Client, wakeups: list) -> list[bytes]:
    """What the session sends unprompted after the changes made so far."""
    if not wakeups:
        return []
    wakeups.clear()
    await c.s.idle_poll()
    return split_lines(c.s.data_to_send())


def test_status_of_other_mailboxes_arrives_without_idle():
    async def t():
        w, o, wakeups = await pair()
        await w.cmd("n1 NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge FlagChange))",
                    "* STATUS Archive (MESSAGES 0 UIDNEXT 1 UNSEEN 0)",
                    "* STATUS Drafts (MESSAGES 0 UIDNEXT 1 UNSEEN 0)",
                    "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UNSEEN 0)",
                    "* STATUS Junk (MESSAGES 0 UIDNEXT 1 UNSEEN 0)",
                    "* STATUS Sent (MESSAGES 0 UIDNEXT 1 UNSEEN 0)",
                    "* STATUS Trash (MESSAGES 0 UIDNEXT 1 UNSEEN 0)",
                    "n1 OK NOTIFY completed")
        await o.deliver(mailbox="Junk")
        assert await pushed(w, wakeups) == [b"* STATUS Junk (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
        await o.cmd("o1 SELECT Junk", "* 1 EXISTS", "* 1 RECENT", "* FLAGS *", "* OK *",
                    "* OK *", "* OK *", "* OK *", "o1 OK [READ-WRITE] SELECT completed")
        assert await pushed(w, wakeups) == []     # selecting changed nothing
        await o.cmd("o2 STORE 1 +FLAGS.SILENT (\\Seen)", "o2 OK STORE completed")
        assert await pushed(w, wakeups) == [b"* STATUS Junk (UNSEEN 0)"]
        await o.cmd("o3 STORE 1 +FLAGS.SILENT (\\Flagged)", "o3 OK STORE completed")
        await w.cmd("e1 ENABLE CONDSTORE", "* ENABLED CONDSTORE", "e1 OK ENABLE completed")
        [line] = await pushed(w, wakeups)
        assert line.startswith(b"* STATUS Junk (UNSEEN 0 HIGHESTMODSEQ ")
        await o.cmd("o4 MOVE 1 INBOX", "* OK [COPYUID *", "* 1 EXPUNGE",
                    "o4 OK MOVE completed")
        lines = await pushed(w, wakeups)
        assert [ln.split(b" HIGHESTMODSEQ")[0] for ln in lines] == [
            b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 0",
            b"* STATUS Junk (MESSAGES 0 UIDNEXT 2 UNSEEN 0"]
        # Commands go on as usual; NOTIFY NONE ends it all.
        await w.cmd("n2 NOTIFY NONE", "n2 OK NOTIFY completed")
        await o.deliver(mailbox="Junk")
        assert wakeups == [] and await pushed(w, wakeups) == []
    run(t())


def test_without_notify_nothing_is_pushed_outside_idle():
    async def t():
        w, o, wakeups = await pair()
        await o.deliver(mailbox="Junk")
        assert wakeups == []
        await w.s.idle_poll()
        assert w.s.data_to_send() == b""
    run(t())


def test_mailbox_name_and_subscription_events():
    async def t():
        w, o, wakeups = await pair()
        await w.cmd("n1 NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))",
                    "n1 OK NOTIFY completed")
        await o.cmd("o1 CREATE Projects", "o1 OK CREATE completed")
        assert await pushed(w, wakeups) == [b'* LIST (\\HasNoChildren) "/" Projects']
        await o.cmd("o2 RENAME Projects Work", "o2 OK RENAME completed")
        assert await pushed(w, wakeups) == [
            b'* LIST (\\HasNoChildren) "/" Work ("OLDNAME" (Projects))']
        await o.cmd("o3 SUBSCRIBE Work", "o3 OK SUBSCRIBE completed")
        assert await pushed(w, wakeups) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Work']
        await o.cmd("o4 DELETE Work", "o4 OK DELETE completed")
        assert await pushed(w, wakeups) == [b'* LIST (\\NonExistent) "/" Work']
        # Message events were not asked for.
        await o.deliver(mailbox="Drafts")
        assert await pushed(w, wakeups) == []
    run(t())


def test_metadata_change_events():
    async def t():
        w, o, wakeups = await pair()
        await o.cmd('o0 SETMETADATA Drafts (/shared/comment "before")',
                    "o0 OK SETMETADATA completed")
        await w.cmd("n1 NOTIFY SET (MAILBOXES (INBOX Drafts) (MailboxMetadataChange)) "
                    "(PERSONAL (MessageNew MessageExpunge ServerMetadataChange))",
                    "n1 OK NOTIFY completed")
        await o.cmd('o1 SETMETADATA INBOX (/private/comment "a" /shared/x "b")',
                    "o1 OK SETMETADATA completed")
        assert await pushed(w, wakeups) == [b"* METADATA INBOX /private/comment /shared/x"]
        await o.cmd('o2 SETMETADATA Drafts (/shared/comment "after")',
                    "o2 OK SETMETADATA completed")
        await o.cmd('o3 SETMETADATA Sent (/shared/comment "not watched")',
                    "o3 OK SETMETADATA completed")
        assert await pushed(w, wakeups) == [b"* METADATA Drafts /shared/comment"]
        await o.cmd("o4 SETMETADATA INBOX (/shared/x NIL)", "o4 OK SETMETADATA completed")
        await o.cmd('o5 SETMETADATA "" (/private/vendor/a "1")', "o5 OK SETMETADATA completed")
        assert await pushed(w, wakeups) == [b"* METADATA INBOX /shared/x",
                                            b'* METADATA "" /private/vendor/a']
        # Another user's private entries are theirs alone: no event here.
        await w.store.create_account("bob", password="pw", emails=["bob@example.org"])
        bob = (w.store.get_account("bob"))["id"]
        await w.store.set_metadata(0, 0, [("/private/vendor/a", b"2")], user=bob)
        assert await pushed(w, wakeups) == []
    run(t())


def test_filters_choose_the_mailboxes_and_the_first_group_wins():
    async def t():
        w, o, wakeups = await pair()
        await o.cmd("o1 CREATE Lists/ietf", "o1 OK CREATE completed")
        await o.cmd("o2 CREATE Lists/other", "o2 OK CREATE completed")
        await o.cmd("o3 UNSUBSCRIBE Lists/other", "o3 OK UNSUBSCRIBE completed")
        await w.cmd("n1 NOTIFY SET (MAILBOXES Lists/other NONE) "
                    "(SUBTREE Lists (MessageNew MessageExpunge)) "
                    "(INBOXES (MessageNew MessageExpunge))", "n1 OK NOTIFY completed")
        for box in ("Lists/other", "Drafts"):
            await o.deliver(mailbox=box)
        assert await pushed(w, wakeups) == []
        await o.deliver(mailbox="Lists/ietf")
        await o.deliver()
        assert await pushed(w, wakeups) == [
            b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)",
            b"* STATUS Lists/ietf (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
        await w.cmd("n2 NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge))",
                    "n2 OK NOTIFY completed")
        await o.deliver(mailbox="Lists/other")
        await o.deliver(mailbox="Sent")
        assert await pushed(w, wakeups) == [b"* STATUS Sent (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
    run(t())


def test_selected_mailbox_gets_exists_fetch_and_expunge_at_once():
    async def t():
        w, o, wakeups = await pair()
        await w.deliver()
        await w.cmd("e1 ENABLE IMAP4rev2", "* ENABLED IMAP4rev2", "e1 OK ENABLE completed")
        await w.raw("s1 SELECT INBOX")
        await w.cmd("n1 NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge "
                    "FlagChange)) (PERSONAL (MessageNew MessageExpunge))",
                    "n1 OK NOTIFY completed")
        await o.raw(b"o1 APPEND INBOX (\\Flagged) {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
        assert await pushed(w, wakeups) == [b"* 2 EXISTS", b"* 2 FETCH (UID 2 FLAGS (\\Flagged))"]
        await o.raw("o2 SELECT INBOX")
        await o.cmd("o3 STORE 1 +FLAGS.SILENT (\\Deleted)", "o3 OK STORE completed")
        assert await pushed(w, wakeups) == [b"* 1 FETCH (FLAGS (\\Deleted))"]
        await o.cmd("o4 EXPUNGE", "* 1 EXPUNGE", "o4 OK EXPUNGE completed")
        assert await pushed(w, wakeups) == [b"* 1 EXPUNGE"]      # no command in progress
        # Other mailboxes still get STATUS; the selected one is never reported by STATUS.
        await o.deliver(mailbox="Trash")
        assert await pushed(w, wakeups) == [b"* STATUS Trash (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
        # The fetch attributes are PEEKed: a notification never sets \Seen.
        await w.cmd("n2 NOTIFY SET (SELECTED (MessageNew (BODY[HEADER.FIELDS (SUBJECT)]) "
                    "MessageExpunge))", "n2 OK NOTIFY completed")
        await o.deliver()
        lines = await pushed(w, wakeups)
        assert lines[0] == b"* 2 EXISTS" and b"Subject: Hello" in lines[1], lines
        await w.cmd("f1 FETCH 2 FLAGS", "* 2 FETCH (FLAGS ())", "f1 OK FETCH completed")
    run(t())


def test_selected_delayed_holds_expunges_for_a_command():
    async def t():
        w, o, wakeups = await pair()
        await w.deliver()
        await w.deliver()
        await w.raw("s1 SELECT INBOX")
        await w.cmd("n1 NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))",
                    "n1 OK NOTIFY completed")
        await o.raw("o1 SELECT INBOX")
        await o.raw("o2 STORE 1 +FLAGS.SILENT (\\Deleted)")
        await o.raw("o3 EXPUNGE")
        await o.deliver()
        # The expunged message is not reported (its flags neither) until a command
        # that allows EXPUNGE; the new one is at once.
        assert await pushed(w, wakeups) == [b"* 3 EXISTS", b"* 3 RECENT"]
        await w.cmd("f1 FETCH 2 UID", "* 2 FETCH (UID 2)", "f1 OK FETCH completed")
        await w.cmd("a1 NOOP", "* 1 EXPUNGE", "a1 OK NOOP completed")
    run(t())


def test_refused_event_groups():
    async def t():
        w, _, _ = await pair()
        await w.cmd("n1 NOTIFY SET (PERSONAL (AnnotationChange))",
                    "n1 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName "
                    "SubscriptionChange MailboxMetadataChange ServerMetadataChange)] "
                    "Unsupported event ANNOTATIONCHANGE")
        await w.cmd("n2 NOTIFY SET (PERSONAL (MessageNew))",
                    "n2 BAD [CLIENTBUG] MessageNew and MessageExpunge go together (RFC 5465 5)")
        await w.cmd("n3 NOTIFY SET (PERSONAL (FlagChange))",
                    "n3 BAD [CLIENTBUG] FlagChange needs MessageNew and MessageExpunge "
                    "(RFC 5465 5)")
        await w.cmd("n4 NOTIFY SET (SELECTED (MailboxName))",
                    "n4 BAD [CLIENTBUG] Only message events apply to the selected mailbox "
                    "(RFC 5465 6)")
        await w.cmd("n5 NOTIFY SET (PERSONAL (MessageNew (FLAGS) MessageExpunge))",
                    "n5 BAD [CLIENTBUG] MessageNew fetch attributes apply to the selected "
                    "mailbox only")
        await w.cmd("n6 NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)",
                    "n6 BAD [CLIENTBUG] SELECTED or SELECTED-DELAYED at most once")
        assert w.s.notify is None
    run(t())
