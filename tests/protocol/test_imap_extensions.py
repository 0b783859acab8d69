"""Transcript tests of the IMAP extensions: SCRAM-SHA-256 in AUTHENTICATE, SORT and
SORT=DISPLAY (RFC 5256, 5957), THREAD=ORDEREDSUBJECT and REFERENCES, QUOTA (RFC 9208),
MULTIAPPEND through one atomic store write, REPLACE (RFC 8508), and the base-subject rules
of RFC 5256 2.1 as a data table."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import pytest

from stalwart.protocols.imap.sorting import base_subject
from stalwart.protocols.imap.testing import Client


def run(coro):
    return asyncio.run(coro)


async def select(c: Client, tag: str, name: str, command: str = "SELECT") -> None:
    lines = await c.raw(f"{tag} {command} {name}")
    mode = "READ-ONLY" if command == "EXAMINE" else "READ-WRITE"
    assert lines[-1] == f"{tag} OK [{mode}] {command} completed".encode(), lines


def msg(subject: str, *, sender: str = "Bob <bob@example.org>", to: str = "alice@example.org",
        date: str = "Mon, 1 Jan 2024 10:00:00 +0000", mid: str = "", refs: str = "",
        body: str = "text") -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
    if mid:
        head += f"Message-ID: <{mid}>\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    return (head + "\r\n" + body + "\r\n").encode()


# ------------------------------------------------------------------ SCRAM-SHA-256

def _scram_client(password: str, server_first: bytes, client_first_bare: str):
    attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
    salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_bare = f"c=biws,r={attrs['r']}"
    auth_message = f"{client_first_bare},{server_first.decode()},{final_bare}".encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    verifier = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    final = f"{final_bare},p={base64.b64encode(proof).decode()}"
    return final.encode(), b"v=" + base64.b64encode(verifier)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("password,ok", [("secret", True), ("wrong", False)])
def test_authenticate_scram_sha_256(password, ok):
    async def t():
        c = await Client.create(login=False, allow_plain_without_tls=False)
        assert b"AUTH=SCRAM-SHA-256" in c.greeting and b"AUTH=PLAIN" not in c.greeting
        first_bare = "n=alice,r=clientnonce123"
        [challenge] = await c.cmd("a1 AUTHENTICATE SCRAM-SHA-256 " +
                                  _b64(b"n,," + first_bare.encode()), "+ *")
        server_first = base64.b64decode(challenge[2:])
        assert server_first.startswith(b"r=clientnonce123")
        final, verifier = _scram_client(password, server_first, first_bare)
        if ok:
            [last] = await c.cmd(_b64(final), "+ *")
            assert base64.b64decode(last[2:]) == verifier
            await c.cmd("", "a1 OK [CAPABILITY IMAP4rev2 *")
            await select(c, "a2", "INBOX")
        else:
            await c.cmd(_b64(final), "a1 NO [AUTHENTICATIONFAILED] Invalid credentials")
    run(t())


def test_authenticate_scram_unknown_user_and_cancel():
    async def t():
        c = await Client.create(login=False)
        [challenge] = await c.cmd("a1 AUTHENTICATE SCRAM-SHA-256", "+ ")
        [challenge] = await c.cmd(_b64(b"n,,n=nobody,r=abc"), "+ *")
        final, _ = _scram_client("x", base64.b64decode(challenge[2:]), "n=nobody,r=abc")
        await c.cmd(_b64(final), "a1 NO [AUTHENTICATIONFAILED] Invalid credentials")
        await c.cmd("a2 AUTHENTICATE SCRAM-SHA-256 " + _b64(b"n,,n=alice,r=abc"), "+ *")
        await c.cmd("*", "a2 BAD Authentication cancelled")
        await c.cmd("a3 AUTHENTICATE SCRAM-SHA-256 " + _b64(b"p=tls-unique,,n=alice,r=abc"),
                    "a3 BAD Malformed SASL message")
    run(t())


# ------------------------------------------------------------------ SORT

async def _sort_mailbox() -> Client:
    c = await Client.create()
    await c.deliver(msg("Re: Budget", sender="Zed <a-zed@example.org>",
                        date="Wed, 3 Jan 2024 10:00:00 +0000", body="x" * 300))
    await c.deliver(msg("apples", sender="<mike@example.org>", to="Yan <y@example.org>",
                        date="Mon, 1 Jan 2024 10:00:00 +0000"))
    await c.deliver(msg("[list] Budget (fwd)", sender="Anna <zz@example.org>",
                        date="Tue, 2 Jan 2024 10:00:00 +0000", body="x" * 100))
    await select(c, "s", "INBOX")
    return c


@pytest.mark.parametrize("criteria,expected", [
    ("(DATE)", "2 3 1"),
    ("(REVERSE DATE)", "1 3 2"),
    ("(SUBJECT)", "2 1 3"),          # "apples" < "budget" = "budget": ties by sequence
    ("(SUBJECT REVERSE DATE)", "2 1 3"),
    ("(REVERSE SUBJECT DATE)", "3 1 2"),
    ("(FROM)", "1 2 3"),             # a-zed < mike < zz (local parts)
    ("(DISPLAYFROM)", "3 2 1"),      # anna < mike@example.org < zed
    ("(TO)", "1 3 2"),               # alice, alice, y
    ("(DISPLAYTO)", "1 3 2"),        # alice@..., alice@..., yan
    ("(SIZE)", "2 3 1"),
    ("(ARRIVAL)", "1 2 3"),
    ("(CC SIZE)", "2 3 1"),
])
def test_sort_keys(criteria, expected):
    async def t():
        c = await _sort_mailbox()
        await c.cmd(f"a SORT {criteria} UTF-8 ALL", f"* SORT {expected}", "a OK SORT completed")
    run(t())


def test_sort_with_search_uid_and_errors():
    async def t():
        c = await _sort_mailbox()
        await c.cmd("a UID SORT (DATE) UTF-8 SUBJECT budget", "* SORT 3 1", "a OK SORT completed")
        await c.cmd("b SORT (DATE) US-ASCII NOT ALL", "* SORT", "b OK SORT completed")
        await c.cmd("c SORT (DATE) KLINGON ALL",
                    "c NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KLINGON")
        await c.cmd("d SORT (COLOR) UTF-8 ALL", "d BAD Unknown sort key COLOR")
        await c.cmd("e SORT () UTF-8 ALL", "e BAD Expected at least one sort key")
        await c.cmd("f SORT (DATE) ALL",   # the charset is mandatory: ALL is read as one
                    "f NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset ALL")
        await c.cmd("f2 SORT (DATE) UTF-8", "f2 BAD Expected search keys")
        await c.cmd("g UNSELECT", "g OK UNSELECT completed")
        await c.cmd("h SORT (DATE) UTF-8 ALL", "h BAD SORT is not allowed in the authenticated state")
    run(t())


# ------------------------------------------------------------------ THREAD

async def _thread_mailbox() -> Client:
    c = await Client.create()
    await c.deliver(msg("Plans", mid="a@x", date="Mon, 1 Jan 2024 10:00:00 +0000"))
    await c.deliver(msg("Re: Plans", mid="b@x", refs="<a@x>", date="Mon, 1 Jan 2024 11:00:00 +0000"))
    await c.deliver(msg("Other", mid="c@x", date="Mon, 1 Jan 2024 09:00:00 +0000"))
    await c.deliver(msg("Re: Plans", mid="d@x", refs="<a@x> <b@x>",
                        date="Mon, 1 Jan 2024 12:00:00 +0000"))
    await c.deliver(msg("Re: Plans", mid="e@x", refs="<a@x>", date="Mon, 1 Jan 2024 13:00:00 +0000"))
    # A reply whose parent we never saw: a dummy parent; same subject as message 3.
    await c.deliver(msg("Re: Other", mid="f@x", refs="<missing@x>",
                        date="Mon, 1 Jan 2024 14:00:00 +0000"))
    await select(c, "s", "INBOX")
    return c


def test_thread_references():
    async def t():
        c = await _thread_mailbox()
        await c.cmd("a THREAD REFERENCES UTF-8 ALL", "* THREAD (3 6)(1 (2 4)(5))",
                    "a OK THREAD completed")
        await c.cmd("b UID THREAD REFERENCES UTF-8 NOT SUBJECT other",
                    "* THREAD (1 (2 4)(5))", "b OK THREAD completed")
        await c.cmd("c THREAD REFERENCES UTF-8 SUBJECT nothing", "* THREAD", "c OK THREAD completed")
    run(t())


def test_thread_orderedsubject():
    async def t():
        c = await _thread_mailbox()
        await c.cmd("a THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (3 6)(1 (2)(4)(5))",
                    "a OK THREAD completed")
        await c.cmd("b THREAD XYZ UTF-8 ALL", "b BAD Unsupported threading algorithm XYZ")
    run(t())


def test_thread_reference_cycle_does_not_loop():
    async def t():
        c = await Client.create()
        await c.deliver(msg("x", mid="p@x", refs="<q@x>"))
        await c.deliver(msg("x", mid="q@x", refs="<p@x>"))
        await select(c, "s", "INBOX")
        lines = await c.cmd("a THREAD REFERENCES UTF-8 ALL", "* THREAD *", "a OK THREAD completed")
        assert lines[0] in (b"* THREAD (1 2)", b"* THREAD (2 1)")
    run(t())


@pytest.mark.parametrize("subject,base", [
    ("Re: hello", "hello"),
    ("RE: Re:  Fwd: hello   world", "hello world"),
    ("[list] Re: hello (fwd)", "hello"),
    ("Re[2]: hello", "hello"),
    ("[fwd: Re: hello]", "hello"),
    ("[only a blob]", "[only a blob]"),
    ("Fw: [PATCH] fix (fwd) (fwd)", "fix"),
    ("", ""),
    ("re:", ""),
    ("Reply all", "reply all"),
    ("=?utf-8?q?caf=C3=A9?=", "=?utf-8?q?caf=c3=a9?="),   # decoding is the parser's job
])
def test_base_subject(subject, base):
    assert base_subject(subject) == base


# ------------------------------------------------------------------ QUOTA

def test_quota_commands():
    async def t():
        c = await Client.create()
        await c.cmd("a GETQUOTAROOT INBOX", "* QUOTAROOT INBOX", "a OK GETQUOTAROOT completed")
        await c.cmd('b GETQUOTA ""', "b NO [NONEXISTENT] No such quota root")
        await c.store.update_account("alice", quota=10 * 1024)
        await c.deliver(b"Subject: x\r\n\r\n" + b"y" * 2000 + b"\r\n")
        await c.cmd("c GETQUOTAROOT INBOX", '* QUOTAROOT INBOX ""',
                    '* QUOTA "" (STORAGE 2 10)', "c OK GETQUOTAROOT completed")
        await c.cmd('d GETQUOTA ""', '* QUOTA "" (STORAGE 2 10)', "d OK GETQUOTA completed")
        await c.cmd('e GETQUOTA "other"', "e NO [NONEXISTENT] No such quota root")
        await c.cmd('f SETQUOTA "" (STORAGE 100)',
                    "f NO [NOPERM] Quota limits are set by the administrator")
        await c.cmd("g GETQUOTAROOT Nowhere", "g NO [NONEXISTENT] Mailbox does not exist")
        big = b"Subject: big\r\n\r\n" + b"z" * 9000 + b"\r\n"
        await c.cmd(b"h APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n", "h NO [OVERQUOTA] *")
        lines = await c.cmd("i CAPABILITY", "* CAPABILITY *", "i OK CAPABILITY completed")
        for cap in (b" QUOTA ", b" QUOTA=RES-STORAGE", b" SORT ", b" SORT=DISPLAY",
                    b" THREAD=REFERENCES", b" THREAD=ORDEREDSUBJECT", b" REPLACE",
                    b" APPENDLIMIT="):
            assert cap in lines[0] + b" ", cap
    run(t())


# ------------------------------------------------------------------ MULTIAPPEND, REPLACE

def test_multiappend_is_all_or_nothing():
    async def t():
        c = await Client.create()
        one, two = msg("one"), msg("two")
        [ok] = await c.cmd(b"a APPEND INBOX (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n"
                           % (len(one), one, len(two), two), "a OK [APPENDUID *")
        assert ok.endswith(b" 1:2] APPEND completed")
        await c.cmd(b"b APPEND INBOX {%d+}\r\n%s {0+}\r\n\r\n" % (len(one), one),
                    "b NO Empty messages cannot be appended")
        await c.cmd("c STATUS INBOX (MESSAGES UIDNEXT)", "* STATUS INBOX (MESSAGES 2 UIDNEXT 3)",
                    "c OK STATUS completed")
    run(t())


def test_replace_and_uid_replace():
    async def t():
        c = await Client.create()
        await c.deliver(msg("draft v1"), mailbox="Drafts")
        await c.deliver(msg("other draft"), mailbox="Drafts")
        await select(c, "s", "Drafts")
        v2 = msg("draft v2")
        await c.cmd(b"a REPLACE 1 Drafts (\\Draft) {%d+}\r\n" % len(v2) + v2 + b"\r\n",
                    "* OK [APPENDUID *", "* 1 EXPUNGE", "* 2 EXISTS", "* 2 RECENT",
                    "a OK REPLACE completed")
        v3 = msg("draft v3")
        await c.cmd(b"b UID REPLACE 3 Drafts {%d+}\r\n" % len(v3) + v3 + b"\r\n",
                    "* OK [APPENDUID *", "* 2 EXPUNGE", "* 2 EXISTS", "* 2 RECENT",
                    "b OK REPLACE completed")
        await c.cmd("c UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
                    "* 1 FETCH (UID 2 FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] *",
                    "* 2 FETCH (UID 4 FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] *",
                    "c OK FETCH completed")
        await c.cmd(b"d REPLACE 9 Drafts {%d+}\r\n" % len(v3) + v3 + b"\r\n",
                    "d BAD Invalid message sequence number 9 (the mailbox has 2 messages)")
        await c.cmd(b"e UID REPLACE 1 Drafts {%d+}\r\n" % len(v3) + v3 + b"\r\n",
                    "e NO [NONEXISTENT] No message with that UID")
        await c.cmd(b"f REPLACE 1 Nowhere {%d+}\r\n" % len(v3) + v3 + b"\r\n",
                    "f NO [TRYCREATE] Mailbox does not exist")
        await select(c, "g", "Drafts", "EXAMINE")
        await c.cmd(b"h REPLACE 1 Drafts {%d+}\r\n" % len(v3) + v3 + b"\r\n", "h NO Mailbox is read-only")
        # Into another mailbox: the old one leaves this mailbox, the new one lands there.
        await select(c, "i", "Drafts")
        await c.cmd(b"j REPLACE 2 INBOX {%d+}\r\n" % len(v3) + v3 + b"\r\n",
                    "* OK [APPENDUID *", "* 2 EXPUNGE",
                    "j OK REPLACE completed")
    run(t())
