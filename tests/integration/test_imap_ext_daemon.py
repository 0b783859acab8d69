"""COMPRESS, APPENDLIMIT, METADATA, NOTIFY, \\Recent and junk training through the real
daemon (``stalwart-master``: two IMAP workers, the RocksDB store process), driven by
Python's imaplib (with a small DEFLATE layer for COMPRESS) and by raw sockets where a
client must read what the server sends unprompted (NOTIFY).

Ports come from ``ports.free_port``.

Until the native (Rust) command parser speaks these commands, the imap workers of the
daemon run ``imap_with_reference_grammar``: the real ``serve`` with the sessions parsing
through the reference grammar (the same grammar the native parser is to match); once the
native parser knows them, the daemon runs unchanged."""

from __future__ import annotations

import asyncio
import imaplib
import re
import socket
import ssl
import time
import zlib

import pytest

from .configs import certificate, memory_directory
from .certs import daemon_certificate
from .ports import free_port

for _name in ("COMPRESS", "GETMETADATA", "SETMETADATA", "NOTIFY"):
    imaplib.Commands.setdefault(_name, ("AUTH", "SELECTED"))



def _client_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _native_speaks_extensions() -> bool:
    from stalwart.protocols.imap import grammar
    from stalwart.protocols.imap.types import ImapError

    for line in (b"a COMPRESS DEFLATE", b'a GETMETADATA "" /private/x', b"a NOTIFY NONE"):
        try:
            grammar.parse_command([line], [])
        except ImapError as exc:
            if exc.message.startswith("Unknown command"):
                return False
    return True


async def imap_with_reference_grammar(ctx) -> None:
    """The imap kind, with sessions parsing through ``grammar_ref`` (runs in the daemon)."""
    from stalwart.protocols.imap import grammar_ref, server, session

    session.Parser = grammar_ref.Parser
    await server.serve(ctx)


@pytest.fixture
def server(daemon):
    if not _native_speaks_extensions():
        daemon.kinds["imap"] = "integration.test_imap_ext_daemon:imap_with_reference_grammar"
    daemon_certificate(daemon.root, "imap.test.invalid")
    ports = {"imap": free_port(), "imaps": free_port()}
    daemon.configure(listeners=[("imap", "imap", ports["imap"])], workers={"imap": 2},
                     extra=f"""
[[server.listener]]
id = "imaps"
protocol = "imap"
bind = "127.0.0.1:{ports['imaps']}"
tls.implicit = true

[imap]
append-limit = "1mb"

{certificate(daemon.root)}

{memory_directory(("alice", "alice-pw", ["alice@example.org"]),
                  ("bob", "bob-pw", ["bob@example.org"]))}
""")
    daemon.ports = list(ports.values())
    daemon.start()
    daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30)
    return daemon, ports


def _message(subject: str, size: int = 0) -> bytes:
    head = (f"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\n").encode()
    return head + b"x" * max(0, size - len(head) - 2) + b"\r\n"


class Deflating:
    """imaplib with COMPRESS=DEFLATE (RFC 4978): after the OK, send and receive through
    raw DEFLATE streams."""

    _out = _in = None
    _buf = b""

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self._out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._in = zlib.decompressobj(wbits=-15)
        return typ, data

    def send(self, data):
        if self._out is not None:
            data = self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise self.abort("socket closed")
        self.raw_received += len(chunk)
        self._buf += self._in.decompress(chunk)

    def read(self, size):
        if self._in is None:
            return super().read(size)
        while len(self._buf) < size:
            self._fill()
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def readline(self):
        if self._in is None:
            return super().readline()
        while b"\n" not in self._buf:
            self._fill()
        i = self._buf.index(b"\n") + 1
        out, self._buf = self._buf[:i], self._buf[i:]
        return out


class DeflatingIMAP4(Deflating, imaplib.IMAP4):
    raw_received = 0


class DeflatingIMAP4_SSL(Deflating, imaplib.IMAP4_SSL):
    raw_received = 0


@pytest.mark.parametrize("tls", ["plain", "implicit", "starttls"])
def test_compress_deflate_with_and_without_tls(server, tls):
    daemon, ports = server
    if tls == "implicit":
        m = DeflatingIMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=_client_tls(),
                               timeout=20)
    else:
        m = DeflatingIMAP4("127.0.0.1", ports["imap"], timeout=20)
        if tls == "starttls":
            assert m.starttls(ssl_context=_client_tls())[0] == "OK"
            assert isinstance(m.sock, ssl.SSLSocket)
    m.login("alice", "alice-pw")
    assert b"COMPRESS=DEFLATE" in m.capability()[1][0].split()
    assert m.compress() == ("OK", [b"DEFLATE active"])
    big = _message("compressible", 200_000)
    assert m.append("INBOX", None, None, big)[0] == "OK"
    before = m.raw_received
    typ, data = m.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == big
    # 200 kB of repeated text came over the wire in far fewer octets.
    assert m.raw_received - before < 20_000
    assert m._simple_command("COMPRESS", "DEFLATE") == \
        ("NO", [b"[COMPRESSIONACTIVE] DEFLATE is already active"])
    assert b"COMPRESS=DEFLATE" not in m.capability()[1][0].split()
    assert m.noop()[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_appendlimit_refuses_before_the_literal(server):
    daemon, ports = server
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    m.login("alice", "alice-pw")
    caps = m.capability()[1][0].split()
    [limit] = [int(c.split(b"=")[1]) for c in caps if c.startswith(b"APPENDLIMIT=")]
    assert limit == 1 << 20                         # imap.append-limit = "1mb"
    assert m.status("INBOX", "(APPENDLIMIT)") == \
        ("OK", [b"INBOX (APPENDLIMIT %d)" % limit])
    tag = m._new_tag()
    m.send(tag + b' LIST "" "Junk" RETURN (STATUS (MESSAGES APPENDLIMIT))\r\n')
    assert m._get_tagged_response(tag) == ("OK", [b"LIST completed"])
    assert m.untagged_responses["STATUS"][-1] == b"Junk (MESSAGES 0 APPENDLIMIT %d)" % limit
    too_big = _message("too big", limit + 1)
    started = time.monotonic()
    typ, data = m.append("INBOX", None, None, too_big)
    assert typ == "NO" and data[0].startswith(b"[TOOBIG]")
    assert time.monotonic() - started < 10          # nothing was uploaded
    assert m.noop()[0] == "OK"                      # and the connection is in step
    assert m.append("INBOX", None, None, _message("fits", 10_000))[0] == "OK"
    assert m.status("INBOX", "(MESSAGES)")[1][-1] == b"INBOX (MESSAGES 1)"
    m.logout()


def _metadata(m, *args: str) -> list:
    typ, data = m._simple_command("GETMETADATA", *args)
    assert typ == "OK", data
    return m._untagged_response(typ, data, "METADATA")[1]


def test_metadata_is_stored_durably(server):
    daemon, ports = server
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    m.login("alice", "alice-pw")
    assert b"METADATA" in m.capability()[1][0].split()
    assert m._simple_command("SETMETADATA", "INBOX",
                             '(/private/comment "my inbox" /shared/comment "team inbox")')[0] \
        == "OK"
    assert m._simple_command("SETMETADATA", '""', '(/private/vendor/client/theme "dark")')[0] \
        == "OK"
    m.logout()
    assert daemon.stop() == 0
    daemon.start()
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    m.login("alice", "alice-pw")
    assert _metadata(m, "INBOX", "(/private/comment /shared/comment)") == \
        [b'INBOX (/private/comment "my inbox" /shared/comment "team inbox")']
    assert _metadata(m, "(DEPTH infinity)", '""', "/private") == \
        [b'"" (/private/vendor/client/theme "dark")']
    m.logout()
    b = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    b.login("bob", "bob-pw")
    assert _metadata(b, '""', "/private/vendor/client/theme") == \
        [b'"" (/private/vendor/client/theme NIL)']
    b.logout()


class Raw:
    """A line-oriented raw IMAP connection (to read what arrives unprompted)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.line()

    def line(self, timeout: float = 10.0) -> bytes:
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, tag: str, text: str) -> list[bytes]:
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def close(self) -> None:
        self.sock.close()


def test_notify_pushes_status_without_idle(server):
    daemon, ports = server
    watcher = Raw(ports["imap"])
    assert watcher.cmd("a1", "LOGIN alice alice-pw")[-1].startswith(b"a1 OK")
    assert watcher.cmd("a2", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge "
                             "MailboxName))")[-1] == b"a2 OK NOTIFY completed"
    # Changes made through other connections (possibly in the other worker process).
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    m.login("alice", "alice-pw")
    started = time.monotonic()
    assert m.append("Junk", None, None, _message("spam?"))[0] == "OK"
    assert watcher.line(timeout=5) == b"* STATUS Junk (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    assert time.monotonic() - started < 5
    assert m.create("Receipts")[0] == "OK"
    assert watcher.line(timeout=5) == b'* LIST (\\HasNoChildren) "/" Receipts'
    m.logout()
    assert watcher.cmd("a3", "NOTIFY NONE")[-1] == b"a3 OK NOTIFY completed"
    watcher.close()


def test_notify_selected_pushes_exists_fetch_and_expunge(server):
    daemon, ports = server
    watcher = Raw(ports["imap"])
    watcher.cmd("a1", "LOGIN alice alice-pw")
    watcher.cmd("a2", "ENABLE IMAP4rev2")
    assert watcher.cmd("a3", "SELECT INBOX")[-1] == b"a3 OK [READ-WRITE] SELECT completed"
    assert watcher.cmd("a4", "NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge "
                             "FlagChange))")[-1] == b"a4 OK NOTIFY completed"
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    m.login("alice", "alice-pw")
    assert m.append("INBOX", "(\\Flagged)", None, _message("pushed"))[0] == "OK"
    assert [watcher.line(5), watcher.line(5)] == [b"* 1 EXISTS",
                                                  b"* 1 FETCH (UID 1 FLAGS (\\Flagged))"]
    m.select("INBOX")
    assert m.store("1", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
    assert watcher.line(5) == b"* 1 FETCH (FLAGS (\\Deleted \\Flagged))"
    assert m.expunge()[0] == "OK"
    assert watcher.line(5) == b"* 1 EXPUNGE"      # no command in progress: at once
    m.logout()
    watcher.close()


def test_recent_is_given_to_one_session(server):
    daemon, ports = server
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    m.login("alice", "alice-pw")
    assert m.append("INBOX", None, None, _message("new one"))[0] == "OK"
    a = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    a.login("alice", "alice-pw")
    b = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    b.login("alice", "alice-pw")
    assert a.select("INBOX") == ("OK", [b"1"])
    assert a.response("RECENT") == ("RECENT", [b"1"])
    assert b.select("INBOX") == ("OK", [b"1"])
    assert b.response("RECENT") == ("RECENT", [b"0"])
    assert a.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent))"]
    assert b.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS ())"]
    assert m.status("INBOX", "(RECENT)")[1] == [b"INBOX (RECENT 0)"]
    for c in (m, a, b):
        c.logout()


def test_moving_into_and_out_of_junk_records_training_events(server):
    daemon, ports = server
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    m.login("alice", "alice-pw")
    assert m.append("INBOX", None, None, _message("cheap pills"))[0] == "OK"
    assert m.append("Junk", None, None, _message("real newsletter"))[0] == "OK"
    m.select("INBOX")
    assert m._simple_command("MOVE", "1", "Junk")[0] == "OK"
    m.select("Junk")
    typ, data = m.uid("SEARCH", "SUBJECT", "newsletter")
    uid = data[0].decode()
    assert m.uid("COPY", uid, "INBOX")[0] == "OK"
    assert m.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
    assert m.expunge()[0] == "OK"
    m.logout()

    from stalwart.config import load
    from stalwart.store import Store

    async def events():
        store = await Store.open(load(daemon.config_path), name="junk-test")
        try:
            found = store.junk_events()
            bodies = [store.blobs.get(e["blob"]) for e in found]
            await store.consume_junk_events([e["id"] for e in found])
            return found, bodies, store.junk_events()
        finally:
            await store.close()

    found, bodies, after = asyncio.run(events())
    assert [e["class"] for e in found] == ["spam", "ham"]
    assert b"Subject: cheap pills" in bodies[0] and b"Subject: real newsletter" in bodies[1]
    assert after == []
    assert all(re.fullmatch(r"\d+", str(e["time"])) for e in found)
