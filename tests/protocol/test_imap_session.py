"""Transcript tests of the IMAP session machine over Store.memory()."""

from __future__ import annotations

import asyncio
import base64

from stalwart.protocols.imap.testing import MSG, Client

MULTI = (b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\nTo: team: a@x.org, b@x.org;\r\n"
         b"Subject: Report\r\nMessage-ID: <r1@x>\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe quarterly numbers\r\n--XX\r\n"
         b"Content-Type: application/octet-stream; name=a.bin\r\n"
         b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.bin\r\n"
         b"\r\nAAEC\r\n--XX--\r\n")


def run(coro):
    return asyncio.run(coro)


def test_greeting_capability_login_logout():
    async def t():
        c = await Client.create(login=False)
        assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev2 IMAP4rev1 ")
        await c.cmd("a0 SELECT INBOX", "a0 BAD SELECT is not allowed in the not authenticated state")
        await c.cmd("a1 LOGIN alice wrong", "a1 NO [AUTHENTICATIONFAILED] Invalid credentials")
        lines = await c.cmd("a2 CAPABILITY", "* CAPABILITY *", "a2 OK CAPABILITY completed")
        assert b"AUTH=PLAIN" in lines[0] and b"IDLE" not in lines[0]
        await c.cmd("a3 LOGIN alice secret", "a3 OK [CAPABILITY IMAP4rev2 *")
        await c.cmd("a4 LOGIN alice secret", "a4 BAD LOGIN is not allowed in the authenticated state")
        await c.cmd("a5 LOGOUT", "* BYE Logging out", "a5 OK LOGOUT completed")
        assert c.s.closed
    run(t())


def test_login_needs_tls_unless_allowed_and_starttls_drops_pipelined_bytes():
    async def t():
        c = await Client.create(login=False, allow_plain_without_tls=False)
        lines = await c.cmd("a1 CAPABILITY", "* CAPABILITY *", "a1 OK*")
        assert b"LOGINDISABLED" in lines[0] and b"STARTTLS" in lines[0]
        await c.cmd("a2 LOGIN alice secret", "a2 NO [PRIVACYREQUIRED] LOGIN is disabled until TLS is active")
        out = await c.send(b"a3 STARTTLS\r\na4 LOGIN alice secret\r\n")
        assert out == b"a3 OK Begin TLS negotiation now\r\n" and c.s.want_starttls
        c.s.tls_started()
        await c.cmd("a5 NOOP", "a5 OK NOOP completed")  # a4 was never run
        assert c.s.account is None
        await c.cmd("a6 STARTTLS", "a6 BAD [CLIENTBUG] TLS is already active")
    run(t())


def test_authenticate_plain_with_and_without_initial_response():
    async def t():
        c = await Client.create(login=False)
        token = base64.b64encode(b"\x00alice\x00secret").decode()
        out = await c.send(b"a1 AUTHENTICATE PLAIN\r\n")
        assert out == b"+ \r\n"
        await c.cmd(token, "a1 OK [CAPABILITY *")
        c2 = await Client.create(c.store, login=False)
        await c2.cmd("b1 AUTHENTICATE PLAIN " + token, "b1 OK [CAPABILITY *")
        c3 = await Client.create(c.store, login=False)
        await c3.send(b"c1 AUTHENTICATE PLAIN\r\n")
        await c3.cmd("*", "c1 BAD Authentication cancelled")
        await c3.cmd("c2 AUTHENTICATE PLAIN AB=C", "c2 BAD Invalid base64 in the initial response")
        await c3.cmd("c3 AUTHENTICATE CRAM-MD5", "c3 NO [CANNOT] Unsupported authentication mechanism CRAM-MD5")
    run(t())


def test_select_fetch_store_expunge_transcript():
    async def t():
        c = await Client.create()
        await c.deliver()
        await c.deliver(MULTI, keywords=["$seen"])
        await c.cmd("a1 SELECT INBOX", "* 2 EXISTS", "* 2 RECENT", "* FLAGS (*",
                    "* OK [PERMANENTFLAGS (*", "* OK [UIDVALIDITY *", "* OK [UIDNEXT 3] Predicted next UID",
                    "* OK [UNSEEN 1] First unseen", "a1 OK [READ-WRITE] SELECT completed")
        await c.cmd("a2 FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)",
                    f'* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE {len(MSG)} INTERNALDATE "01-Jan-2024 10:00:00 +0000")',
                    f'* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) RFC822.SIZE {len(MULTI)} INTERNALDATE "01-Jan-2024 10:00:00 +0000")',
                    "a2 OK FETCH completed")
        await c.cmd("a3 FETCH 1 ENVELOPE",
                    '* 1 FETCH (ENVELOPE ("Mon, 1 Jan 2024 10:00:00 +0000" "Hello" (("Bob" NIL "bob" "example.org")) '
                    '(("Bob" NIL "bob" "example.org")) (("Bob" NIL "bob" "example.org")) '
                    '((NIL NIL "alice" "example.org")) NIL NIL NIL "<m1@example.org>"))',
                    "a3 OK FETCH completed")
        await c.cmd("a4 FETCH 2 BODYSTRUCTURE",
                    '* 2 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 21 1 NIL NIL NIL NIL)'
                    '("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 4 NIL ("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL) '
                    '"MIXED" ("BOUNDARY" "XX") NIL NIL NIL))', "a4 OK FETCH completed")
        await c.cmd("a5 FETCH 2 (BODY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[HEADER.FIELDS (Subject)])",
                    '* 2 FETCH (BODY[1] "The quarterly numbers" BINARY[2] ~{3}\r\n\x00\x01\x02 BINARY.SIZE[2] 3 '
                    'BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: Report\r\n\r\n)', "a5 OK FETCH completed")
        # BODY[] without PEEK sets \Seen and reports FLAGS
        await c.cmd("a6 FETCH 1 BODY[TEXT]<0.8>",
                    '* 1 FETCH (BODY[TEXT]<0> "Hi Alice" FLAGS (\\Seen \\Recent))', "a6 OK FETCH completed")
        await c.cmd("a7 STORE 1 +FLAGS (\\Deleted $Forwarded)",
                    "* 1 FETCH (FLAGS (\\Deleted $Forwarded \\Seen \\Recent))", "a7 OK STORE completed")
        await c.cmd("a8 UID STORE 2 FLAGS.SILENT (\\Flagged)", "a8 OK STORE completed")
        await c.cmd("a9 EXPUNGE", "* 1 EXPUNGE", "a9 OK EXPUNGE completed")
        await c.cmd("b1 FETCH 1 (UID FLAGS)", "* 1 FETCH (UID 2 FLAGS (\\Flagged \\Recent))", "b1 OK FETCH completed")
        await c.cmd("b2 FETCH 5 FLAGS", "b2 BAD Invalid message sequence number 5 (the mailbox has 1 messages)")
        await c.cmd("b3 UID FETCH 5 FLAGS", "b3 OK FETCH completed")
    run(t())


def test_unsolicited_updates_and_the_expunge_rule():
    async def t():
        a = await Client.create()
        b = await Client.create(a.store)
        await a.deliver()
        await a.deliver()
        await a.cmd("a1 SELECT INBOX", *(["*"] * 7), "a1 OK [READ-WRITE] SELECT completed")
        await b.cmd("b1 SELECT INBOX", *(["*"] * 7), "b1 OK [READ-WRITE] SELECT completed")
        await b.cmd("b2 STORE 1 +FLAGS.SILENT (\\Deleted)", "b2 OK STORE completed")
        await b.cmd("b3 EXPUNGE", "* 1 EXPUNGE", "b3 OK EXPUNGE completed")
        await a.deliver()
        # FETCH must not announce the expunge; the new message is announced
        await a.cmd("a2 FETCH 2 UID", "* 2 FETCH (UID 2)", "* 3 EXISTS", "* 3 RECENT",
                    "a2 OK FETCH completed")
        await a.cmd("a2b FETCH 1 UID", "a2b NO [EXPUNGEISSUED] Some messages were expunged by another session")
        await a.cmd("a3 NOOP", "* 1 EXPUNGE", "a3 OK NOOP completed")
        await b.cmd("b4 STORE 1 +FLAGS (\\Flagged)", "* 1 FETCH (FLAGS (\\Flagged))", "* 2 EXISTS", "* 0 RECENT",
                    "b4 OK STORE completed")
        await a.cmd("a4 NOOP", "* 1 FETCH (FLAGS (\\Flagged \\Recent))", "a4 OK NOOP completed")
    run(t())


def test_idle_wakes_on_delivery():
    async def t():
        c = await Client.create()
        await c.cmd("a1 SELECT INBOX", *(["*"] * 6), "a1 OK [READ-WRITE] SELECT completed")
        woken = []
        c.s.on_wakeup = lambda: woken.append(1)
        await c.cmd("a2 IDLE", "+ idling")
        await c.deliver()
        assert woken
        await c.s.idle_poll()
        assert c.s.data_to_send() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
        await c.cmd("DONE", "a2 OK IDLE terminated")
    run(t())


def test_condstore_qresync():
    async def t():
        c = await Client.create()
        await c.deliver()
        await c.deliver()
        await c.cmd("a1 ENABLE QRESYNC UTF8=ACCEPT", "* ENABLED QRESYNC UTF8=ACCEPT", "a1 OK ENABLE completed")
        lines = await c.cmd("a2 SELECT INBOX", *(["*"] * 8), "a2 OK [READ-WRITE] SELECT completed")
        hms = int([ln for ln in lines if b"HIGHESTMODSEQ" in ln][0].split()[3].rstrip(b"]"))
        uidvalidity = int([ln for ln in lines if b"UIDVALIDITY" in ln][0].split()[3].rstrip(b"]"))
        await c.cmd(f"a3 STORE 1 (UNCHANGEDSINCE {hms}) +FLAGS (\\Seen)", f"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) MODSEQ ({hms + 1}))", "a3 OK STORE completed")
        await c.cmd(f"a4 STORE 1,2 (UNCHANGEDSINCE {hms}) +FLAGS (\\Answered)",
                    f"* 2 FETCH (UID 2 FLAGS (\\Answered \\Recent) MODSEQ ({hms + 2}))",
                    "a4 OK [MODIFIED 1] Conditional STORE failed for some messages")
        await c.cmd("a5 UID STORE 2 +FLAGS.SILENT (\\Deleted)", f"* 2 FETCH (UID 2 MODSEQ ({hms + 3}))", "a5 OK STORE completed")
        await c.cmd("a6 UID EXPUNGE 2", "* VANISHED 2", "a6 OK EXPUNGE completed")
        await c.cmd(f"a7 UID FETCH 1:* FLAGS (CHANGEDSINCE {hms} VANISHED)", "* VANISHED (EARLIER) 2",
                    f"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) MODSEQ ({hms + 1}))", "a7 OK FETCH completed")
        await c.cmd("a8 UNSELECT", "a8 OK UNSELECT completed")
        await c.cmd(f"a9 SELECT INBOX (QRESYNC ({uidvalidity} {hms} 1:2))", "* VANISHED (EARLIER) 2",
                    f"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ({hms + 1}))", *(["*"] * 7),
                    "a9 OK [READ-WRITE] SELECT completed")
    run(t())


def test_search_esearch_and_searchres():
    async def t():
        c = await Client.create()
        await c.deliver()
        await c.deliver(MULTI, keywords=["$seen"])
        await c.deliver(MSG.replace(b"Hello", b"Lunch"), keywords=["$flagged"])
        await c.cmd("a1 SELECT INBOX", *(["*"] * 7), "a1 OK [READ-WRITE] SELECT completed")
        await c.cmd("a2 SEARCH UNSEEN", "* SEARCH 1 3", "a2 OK SEARCH completed")
        await c.cmd("a3 UID SEARCH FROM jorg", "* SEARCH 2", "a3 OK SEARCH completed")
        await c.cmd('a4 SEARCH SUBJECT "lunch" FLAGGED', "* SEARCH 3", "a4 OK SEARCH completed")
        await c.cmd("a5 SEARCH BODY quarterly", "* SEARCH 2", "a5 OK SEARCH completed")
        await c.cmd("a6 SEARCH OR SEEN FLAGGED NOT 3", "* SEARCH 2", "a6 OK SEARCH completed")
        await c.cmd("a7 SEARCH RETURN (MIN MAX COUNT ALL) LARGER 10", '* ESEARCH (TAG "a7") MIN 1 MAX 3 ALL 1:3 COUNT 3',
                    "a7 OK SEARCH completed")
        await c.cmd("a8 UID SEARCH RETURN (SAVE) HEADER Message-ID r1", "a8 OK SEARCH completed, result saved")
        await c.cmd("a9 FETCH $ UID", "* 2 FETCH (UID 2)", "a9 OK FETCH completed")
        await c.cmd("b1 SEARCH SENTON 1-Jan-2024 SINCE 1-Jan-2024 NOT BEFORE 1-Jan-2024", "* SEARCH 1 3", "b1 OK SEARCH completed")
        await c.cmd("b2 SEARCH CHARSET BOGUS ALL", "b2 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset BOGUS")
        await c.cmd("b3 ENABLE IMAP4rev2", "* ENABLED IMAP4rev2", "b3 OK ENABLE completed")
        await c.cmd("b4 UID SEARCH ALL", '* ESEARCH (TAG "b4") UID ALL 1:3', "b4 OK SEARCH completed")
        await c.cmd("b5 SEARCH DELETED", '* ESEARCH (TAG "b5")', "b5 OK SEARCH completed")
    run(t())


def test_mailbox_management_and_list():
    async def t():
        c = await Client.create()
        await c.cmd('a1 CREATE "Projects/2024/Q1"', "a1 OK CREATE completed")
        await c.cmd("a2 CREATE Projects", "a2 NO [ALREADYEXISTS] Mailbox already exists")
        await c.cmd("a3 CREATE inbox", "a3 NO [ALREADYEXISTS] Mailbox already exists")
        await c.cmd("a4 CREATE Later (USE (\\Flagged))", "a4 OK CREATE completed")
        await c.cmd("a5 CREATE Bad (USE (\\Bogus))", "a5 NO [USEATTR] Unsupported special-use attribute \\Bogus")
        await c.cmd('a6 LIST "" %',
                    '* LIST (\\HasNoChildren) "/" INBOX', '* LIST (\\HasNoChildren \\Archive) "/" Archive',
                    '* LIST (\\HasNoChildren \\Drafts) "/" Drafts', '* LIST (\\HasNoChildren \\Junk) "/" Junk',
                    '* LIST (\\HasNoChildren \\Flagged) "/" Later', '* LIST (\\HasChildren) "/" Projects',
                    '* LIST (\\HasNoChildren \\Sent) "/" Sent', '* LIST (\\HasNoChildren \\Trash) "/" Trash',
                    "a6 OK LIST completed")
        await c.cmd('a7 LIST "" ""', '* LIST (\\Noselect) "/" ""', "a7 OK LIST completed")
        await c.cmd('a8 LIST "Projects/" * RETURN (STATUS (MESSAGES UIDNEXT))',
                    '* LIST (\\HasChildren) "/" Projects/2024', '* STATUS Projects/2024 (MESSAGES 0 UIDNEXT 1)',
                    '* LIST (\\HasNoChildren) "/" Projects/2024/Q1', '* STATUS Projects/2024/Q1 (MESSAGES 0 UIDNEXT 1)',
                    "a8 OK LIST completed")
        await c.cmd("a9 DELETE Projects", "a9 NO [HASCHILDREN] Mailbox has children; delete them first")
        await c.cmd("b1 RENAME Projects/2024/Q1 Archive/Q1", "b1 OK RENAME completed")
        await c.cmd("b2 UNSUBSCRIBE Archive/Q1", "b2 OK UNSUBSCRIBE completed")
        await c.cmd('b3 LIST (SUBSCRIBED RECURSIVEMATCH) "" Arch*', '* LIST (\\HasChildren \\Subscribed \\Archive) "/" Archive',
                    "b3 OK LIST completed")
        await c.cmd('b4 LIST (SPECIAL-USE) "" *', *(["* LIST*"] * 6), "b4 OK LIST completed")
        await c.cmd("b5 CREATE &AOk-t&AOk-", "b5 OK CREATE completed")
        await c.cmd('b6 LIST "" &AOk-*', '* LIST (\\HasNoChildren) "/" &AOk-t&AOk-', "b6 OK LIST completed")
        await c.cmd("b7 DELETE INBOX", "b7 NO [CANNOT] INBOX cannot be deleted")
        await c.cmd("b8 STATUS Nope (MESSAGES)", "b8 NO [NONEXISTENT] Mailbox does not exist")
        await c.cmd("b9 NAMESPACE", '* NAMESPACE (("" "/")) (("Other Users/" "/")) NIL', "b9 OK NAMESPACE completed")
    run(t())


def test_append_copy_move_uidplus():
    async def t():
        c = await Client.create()
        out = await c.send(b"a1 APPEND INBOX (\\Seen) {%d}\r\n" % len(MSG))
        assert out == b"+ Ready for literal data\r\n"
        lines = await c.cmd(MSG + b"\r\n", "a1 OK [APPENDUID *")
        validity = lines[0].split()[3]
        await c.cmd(b"a2 APPEND INBOX {3+}\r\nabc {3+}\r\ndef", f"a2 OK [APPENDUID {validity.decode()} 2:3] APPEND completed")
        await c.cmd(b"a3 APPEND Nowhere {3+}\r\nabc", "a3 NO [TRYCREATE] Mailbox does not exist")
        await c.cmd("a4 SELECT INBOX", *(["*"] * 7), "a4 OK [READ-WRITE] SELECT completed")
        lines = await c.cmd("a5 COPY 1:2 Trash", "a5 OK [COPYUID *")
        assert lines[0].endswith(b" 1,2 1,2] COPY completed")
        await c.cmd("a6 COPY 1 Nowhere", "a6 NO [TRYCREATE] Destination mailbox does not exist")
        await c.cmd("a7 MOVE 2:3 Archive", "* OK [COPYUID *", "* 3 EXPUNGE", "* 2 EXPUNGE", "a7 OK MOVE completed")
        await c.cmd("a8 STATUS Archive (MESSAGES UNSEEN SIZE)", "* STATUS Archive (MESSAGES 2 UNSEEN 2 SIZE 6)", "a8 OK STATUS completed")
        await c.cmd("a9 EXAMINE Archive", "* OK [CLOSED] Previous mailbox closed", *(["*"] * 7), "a9 OK [READ-ONLY] EXAMINE completed")
        await c.cmd("b1 STORE 1 +FLAGS (\\Seen)", "b1 NO Mailbox is read-only")
        await c.cmd("b2 FETCH 1 BODY[]", '* 1 FETCH (BODY[] "abc")', "b2 OK FETCH completed")
        await c.cmd("b3 CLOSE", "b3 OK CLOSE completed")
    run(t())


def test_hostile_input_keeps_session_sound():
    async def t():
        c = await Client.create(login=False)
        # before authentication, literals are small
        await c.cmd("a1 LOGIN {9000}", "a1 BAD [TOOBIG] Literal of 9000 octets is over the limit of 8192 octets")
        await c.cmd("a2 APPEND INBOX {5}", "a2 BAD APPEND is not allowed in the not authenticated state")
        await c.cmd("a3 LOGIN alice secret", "a3 OK*")
        await c.cmd("a4 APPEND INBOX {4294967295}", "a4 NO [TOOBIG] Message of 4294967295 octets is over the limit of 52428800 octets")
        await c.cmd("a5 SELECT &Jj!o-", "a5 BAD Invalid mailbox name: invalid character in modified UTF-7 shift sequence")
        await c.cmd("a6 SEARCH " + "(" * 100 + "ALL" + ")" * 100, "a6 BAD Parentheses nested too deep (limit 32)")
        lines = await c.raw(b"".join(b"p%d NOOP\r\n" % i for i in range(3000)))
        assert len(lines) == 3000 and lines[-1] == b"p2999 OK NOOP completed"
        await c.cmd("a7 FETCH 1 FLAGS", "a7 BAD FETCH is not allowed in the authenticated state")
        await c.cmd("a8 NOOP", "a8 OK NOOP completed")
    run(t())
