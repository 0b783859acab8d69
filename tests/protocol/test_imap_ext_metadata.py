"""METADATA (RFC 5464) through the sans-IO session over Store.memory(): server and mailbox
entries, /private and /shared, DEPTH and MAXSIZE, the limits, and the store's side
(entries follow a renamed mailbox and leave with a deleted one)."""

from __future__ import annotations

import asyncio

from stalwart.store.ops.metadata import MAX_ENTRIES, MAX_VALUE

from .test_imap_ext_grammar import ext_client


def run(coro):
    return asyncio.run(coro)


def test_capabilities_and_server_entries():
    async def t():
        c = await ext_client()
        caps = b" ".join(await c.raw("a0 CAPABILITY")).split()
        assert b"METADATA" in caps and b"METADATA-SERVER" in caps
        await c.cmd('a1 GETMETADATA "" /private/comment', '* METADATA "" (/private/comment NIL)',
                    "a1 OK GETMETADATA completed")
        await c.cmd('a2 SETMETADATA "" (/private/comment "My server note")',
                    "a2 OK SETMETADATA completed")
        await c.cmd('a3 GETMETADATA "" /PRIVATE/Comment',
                    '* METADATA "" (/private/comment "My server note")',
                    "a3 OK GETMETADATA completed")
        # Server /shared entries: the administrator's, read by everyone, not settable here.
        await c.store.set_metadata(0, 0, [("/shared/admin", b"mailto:postmaster@example.org")])
        await c.cmd('a4 GETMETADATA "" (/shared/admin /shared/comment)',
                    '* METADATA "" (/shared/admin "mailto:postmaster@example.org" '
                    '/shared/comment NIL)', "a4 OK GETMETADATA completed")
        await c.cmd('a5 SETMETADATA "" (/shared/admin "x")',
                    "a5 NO [NOPERM] Server /shared entries are set by the administrator")
        # Another user shares the server's /shared entries, not alice's /private ones.
        await c.store.create_account("bob", password="pw", emails=["bob@example.org"])
        b = await ext_client(c.store, login=False)
        await b.cmd("L1 LOGIN bob pw", "L1 OK [CAPABILITY *")
        await b.cmd('b1 GETMETADATA "" (/private/comment /shared/admin)',
                    '* METADATA "" (/private/comment NIL /shared/admin '
                    '"mailto:postmaster@example.org")', "b1 OK GETMETADATA completed")
    run(t())


def test_mailbox_entries_depth_and_maxsize():
    async def t():
        c = await ext_client()
        await c.cmd('m1 SETMETADATA INBOX (/private/comment "mine" /shared/comment "ours" '
                    '/shared/vendor/acme/a "1" /shared/vendor/acme/a/deep "2" '
                    '/shared/vendor/acme/b {12+}\r\nlonger value)', "m1 OK SETMETADATA completed")
        await c.cmd("g1 GETMETADATA INBOX (/shared/comment /private/comment)",
                    '* METADATA INBOX (/private/comment "mine" /shared/comment "ours")',
                    "g1 OK GETMETADATA completed")
        await c.cmd("g2 GETMETADATA (DEPTH 1) INBOX /shared/vendor/acme",
                    '* METADATA INBOX (/shared/vendor/acme NIL /shared/vendor/acme/a "1" '
                    '/shared/vendor/acme/b "longer value")', "g2 OK GETMETADATA completed")
        await c.cmd("g3 GETMETADATA (DEPTH infinity) INBOX /shared",
                    '* METADATA INBOX (/shared/comment "ours" /shared/vendor/acme/a "1" '
                    '/shared/vendor/acme/a/deep "2" /shared/vendor/acme/b "longer value")',
                    "g3 OK GETMETADATA completed")
        await c.cmd("g4 GETMETADATA (MAXSIZE 4 DEPTH infinity) INBOX /shared/vendor",
                    '* METADATA INBOX (/shared/vendor NIL /shared/vendor/acme/a "1" '
                    '/shared/vendor/acme/a/deep "2")',
                    "g4 OK [METADATA LONGENTRIES 12] GETMETADATA completed")
        # NIL removes; other mailboxes have their own entries.
        await c.cmd("m2 SETMETADATA INBOX (/shared/comment NIL)", "m2 OK SETMETADATA completed")
        await c.cmd("g5 GETMETADATA INBOX /shared/comment",
                    "* METADATA INBOX (/shared/comment NIL)", "g5 OK GETMETADATA completed")
        await c.cmd("g6 GETMETADATA Drafts /private/comment",
                    "* METADATA Drafts (/private/comment NIL)", "g6 OK GETMETADATA completed")
        await c.cmd("g7 GETMETADATA Nowhere /private/comment",
                    "g7 NO [NONEXISTENT] Mailbox does not exist")
    run(t())


def test_binary_values_and_literals_however_they_arrive(feed_ways):
    async def t():
        value = b"line one\r\nline two\x00binary"
        data = (b"m1 SETMETADATA Sent (/private/blob ~{%d}\r\n" % len(value) + value +
                b" /private/text {3}\r\nabc)\r\ng1 GETMETADATA Sent (/private/blob /private/text)"
                b"\r\n")
        for label, chunks in feed_ways(data, seed=5464):
            c = await ext_client()
            out = b""
            for chunk in chunks:
                out += await c.send(chunk)
            assert out == (b"+ Ready for literal data\r\n+ Ready for literal data\r\n"
                           b"m1 OK SETMETADATA completed\r\n"
                           b"* METADATA Sent (/private/blob ~{%d}\r\n" % len(value) + value +
                           b' /private/text "abc")\r\ng1 OK GETMETADATA completed\r\n'), label
    run(t())


def test_limits_and_bad_entry_names():
    async def t():
        c = await ext_client()
        big = b"v" * (MAX_VALUE + 1)
        lines = await c.raw(b"m1 SETMETADATA INBOX (/private/a {%d+}\r\n" % len(big) + big +
                            b")")
        assert lines == [b"m1 NO [METADATA MAXSIZE %d] The value of /private/a is over %d "
                         b"octets" % (MAX_VALUE, MAX_VALUE)]
        entries = " ".join(f'/private/n{i} "x"' for i in range(MAX_ENTRIES))
        await c.cmd(f"m2 SETMETADATA INBOX ({entries})", "m2 OK SETMETADATA completed")
        await c.cmd('m3 SETMETADATA INBOX (/private/one-more "x" /private/n0 "changed")',
                    f"m3 NO [METADATA TOOMANY] Too many entries (at most {MAX_ENTRIES} per "
                    "mailbox and user)")
        # All or nothing: the refused request changed nothing.
        await c.cmd("g1 GETMETADATA INBOX /private/n0", '* METADATA INBOX (/private/n0 "x")',
                    "g1 OK GETMETADATA completed")
        # Removing makes room again; /shared counts apart from /private.
        await c.cmd('m4 SETMETADATA INBOX (/private/n1 NIL /private/one-more "x" '
                    '/shared/s "y")', "m4 OK SETMETADATA completed")
        for tag, entry in (("b1", "/other/x"), ("b2", "/private/a//b"), ("b3", "/private/a/"),
                           ("b4", "/shared/a*"), ("b5", "/private")):
            [line] = await c.raw(f'{tag} SETMETADATA INBOX ("{entry}" "v")')
            assert line.startswith(f"{tag} BAD invalid entry name".encode()), line
        [line] = await c.raw('b6 GETMETADATA INBOX "/shared/%"')
        assert line.startswith(b"b6 BAD invalid entry name")
    run(t())


def test_entries_follow_a_rename_and_leave_with_a_delete():
    async def t():
        c = await ext_client()
        await c.cmd("c1 CREATE Projects", "c1 OK CREATE completed")
        await c.cmd('m1 SETMETADATA Projects (/private/color "blue")',
                    "m1 OK SETMETADATA completed")
        await c.cmd("r1 RENAME Projects Work", "r1 OK RENAME completed")
        await c.cmd("g1 GETMETADATA Work /private/color",
                    '* METADATA Work (/private/color "blue")', "g1 OK GETMETADATA completed")
        old = next(m["id"] for m in c.store.list_mailboxes(c.account) if m["name"] == "Work")
        await c.cmd("d1 DELETE Work", "d1 OK DELETE completed")
        assert c.store.get_metadata(c.account, old, ["/private/color"], user=c.account) == []
        await c.cmd("c2 CREATE Work", "c2 OK CREATE completed")
        await c.cmd("g2 GETMETADATA Work /private/color",
                    "* METADATA Work (/private/color NIL)", "g2 OK GETMETADATA completed")
    run(t())


def test_private_specialuse_is_the_mailbox_special_use():
    """RFC 6154 4: /private/specialuse reads and sets the role LIST shows."""
    async def t():
        c = await ext_client()
        await c.cmd("g1 GETMETADATA Junk /private/specialuse",
                    '* METADATA Junk (/private/specialuse "\\\\Junk")',
                    "g1 OK GETMETADATA completed")
        await c.cmd("c1 CREATE Old", "c1 OK CREATE completed")
        await c.cmd("g2 GETMETADATA Old /private/specialuse",
                    "* METADATA Old (/private/specialuse NIL)", "g2 OK GETMETADATA completed")
        # Archive's role moves to Old: clear it first, then set it, with another entry
        # in the same (atomic) request.
        await c.cmd("s1 SETMETADATA Old (/private/specialuse \"\\\\Archive\")",
                    "s1 NO [USEATTR] Another mailbox already has that special use")
        await c.cmd("s2 SETMETADATA Archive (/private/specialuse NIL)",
                    "s2 OK SETMETADATA completed")
        await c.cmd('s3 SETMETADATA Old (/private/specialuse "\\\\Archive" /private/note "x")',
                    "s3 OK SETMETADATA completed")
        await c.cmd('l1 LIST "" "Old"', '* LIST (\\HasNoChildren \\Archive) "/" Old',
                    "l1 OK LIST completed")
        await c.cmd("g3 GETMETADATA (DEPTH 1) Old /private",
                    '* METADATA Old (/private/note "x" /private/specialuse "\\\\Archive")',
                    "g3 OK GETMETADATA completed")
        for tag, value, text in (
                ("e1", '"\\\\Bogus"', "Unsupported special-use attribute \\Bogus"),
                ("e2", '"\\\\Sent \\\\Drafts"', "Only one special-use attribute per mailbox")):
            await c.cmd(f"{tag} SETMETADATA Old (/private/specialuse {value} /private/n \"1\")",
                        f"{tag} NO [USEATTR] {text}")
        await c.cmd('e3 SETMETADATA INBOX (/private/specialuse "\\\\Sent")',
                    "e3 NO [USEATTR] The special use of this mailbox cannot be changed")
        # The refused requests changed nothing.
        await c.cmd("g4 GETMETADATA Old /private/n", "* METADATA Old (/private/n NIL)",
                    "g4 OK GETMETADATA completed")
    run(t())
