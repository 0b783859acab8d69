"""Transcript harness for the sans-IO IMAP session over Store.memory().

    c = await Client.create()            # alice / secret, default mailboxes
    await c.cmd("a1 SELECT INBOX", "* 0 EXISTS", ..., "a1 OK [READ-WRITE]*")

Each expected line matches one response line exactly, or as a prefix when it ends with
"*"; the number of lines must match too. ``cmd`` returns the lines for further checks.
"""

from __future__ import annotations

from stalwart.protocols.imap.session import ImapSession
from stalwart.store import Store

MSG = (b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Hello\r\n"
       b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n"
       b"Hi Alice,\r\nhow are you?\r\n")


class Client:
    def __init__(self, store: Store, session: ImapSession, account: int) -> None:
        self.store = store
        self.s = session
        self.account = account

    @classmethod
    async def create(cls, store: Store | None = None, login: bool = True, **kw) -> "Client":
        if store is None:
            store = Store.memory()
            await store.create_domain("example.org")
        if store.get_account("alice") is None:
            await store.create_account("alice", password="secret", emails=["alice@example.org"])
        kw.setdefault("allow_plain_without_tls", True)
        c = cls(store, ImapSession(store, **kw), store.get_account("alice")["id"])
        c.greeting = c.s.greeting()
        if login:
            await c.cmd("L1 LOGIN alice secret", "L1 OK [CAPABILITY *")
        return c

    async def send(self, data: bytes) -> bytes:
        self.s.receive_data(data)
        await self.s.process()
        return self.s.data_to_send()

    async def raw(self, line: str | bytes) -> list[bytes]:
        data = line.encode() if isinstance(line, str) else line
        if not data.endswith(b"\n"):
            data += b"\r\n"
        return split_lines(await self.send(data))

    async def cmd(self, line: str | bytes, *expected: str) -> list[bytes]:
        lines = await self.raw(line)
        check(lines, expected)
        return lines

    async def deliver(self, message: bytes = MSG, mailbox: str = "INBOX", keywords=()) -> dict:
        from stalwart.protocols.imap.mailboxes import MailboxTree
        record = MailboxTree(self.store.list_mailboxes(self.account)).find(mailbox)
        return await self.store.append(self.account, record["id"], message,
                                       keywords=list(keywords), received=1704103200)


def split_lines(data: bytes) -> list[bytes]:
    """Response lines; a literal's octets stay inside the line that announced it."""
    out, i = [], 0
    while i < len(data):
        end = data.index(b"\r\n", i)
        line = data[i:end]
        while line.endswith(b"}") and b"{" in line:
            size = int(line[line.rindex(b"{") + 1:-1].rstrip(b"+"))
            start = end + 2
            end = data.index(b"\r\n", start + size)
            line = data[i:end]
        out.append(line)
        i = end + 2
    return out


def check(lines: list[bytes], expected) -> None:
    text = [ln.decode("utf-8", "replace") for ln in lines]
    assert len(text) == len(expected), "\n".join(text)
    for got, want in zip(text, expected):
        if want.endswith("*"):
            assert got.startswith(want[:-1]), f"{got!r} does not start with {want[:-1]!r}"
        else:
            assert got == want, f"{got!r} != {want!r}"
