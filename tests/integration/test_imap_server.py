"""The asyncio adapter (``ImapServer``/``ImapConnection``) over real sockets, memory store.

Covers: implicit TLS and STARTTLS with imaplib; plaintext bytes pipelined behind
STARTTLS are dropped; a client that pipelines thousands of FETCHes and never reads keeps
the server's buffers bounded, then gets every answer once it reads; the pre-login
autologout; drain with BYE; a client that half-closes after its commands still gets the
answers.
"""

from __future__ import annotations

import asyncio
import datetime
import imaplib
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.protocols.imap.server import WRITE_HIGH, ImapServer
from stalwart.store import Store

PORTS = iter(range(25600, 25700))


def _tls_context() -> ssl.SSLContext:
    from stalwart.http.tls import server_context

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imap.example.org")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("imap.example.org")]),
                           False)
            .sign(key, hashes.SHA256()))

    class Cert:
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        default = True

    return server_context({"main": Cert()}, alpn=("imap",))


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Harness:
    """An ImapServer on a loop in a background thread; clients run in the test."""

    def __init__(self, **kw) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = Store.memory()
        self.run(self._setup())
        self.server = ImapServer(self.store, tls_context=_tls_context(), **kw)
        self.plain = self.listen(False)
        self.tls = self.listen(True)

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _setup(self) -> None:
        await self.store.create_domain("example.org")
        acc = await self.store.create_account("alice", password="pw",
                                              emails=["alice@example.org"])
        self.account = acc["id"]

    def listen(self, implicit: bool) -> int:
        for port in PORTS:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen(64)
            sock.setblocking(False)
            self.run(self.server.listen(sock, implicit_tls=implicit))
            return port
        raise RuntimeError("no free port")

    def close(self) -> None:
        self.run(self.server.drain(2))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.close()


def test_implicit_tls_and_starttls(harness):
    m = imaplib.IMAP4_SSL("127.0.0.1", harness.tls, ssl_context=_client_tls())
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    m.login("alice", "pw")
    assert m.select("INBOX") == ("OK", [b"0"])
    m.logout()
    m = imaplib.IMAP4("127.0.0.1", harness.plain)
    assert "STARTTLS" in m.capabilities
    assert m.starttls(ssl_context=_client_tls())[0] == "OK"
    assert "STARTTLS" not in m.capabilities
    m.login("alice", "pw")
    m.logout()


def test_plaintext_pipelined_behind_starttls_is_dropped(harness):
    raw = socket.create_connection(("127.0.0.1", harness.plain))
    raw.recv(4096)
    raw.sendall(b"a STARTTLS\r\nb LOGIN alice pw\r\n")
    time.sleep(0.2)
    assert raw.recv(4096) == b"a OK Begin TLS negotiation now\r\n"
    tls = _client_tls().wrap_socket(raw, server_hostname="imap.example.org")
    tls.sendall(b"c NOOP\r\n")
    assert tls.recv(4096) == b"c OK NOOP completed\r\n"   # nothing from "b LOGIN"
    tls.close()


def test_client_that_never_reads_keeps_buffers_bounded(harness):
    body = b"Subject: big\r\n\r\n" + b"x" * 100_000 + b"\r\n"
    mailbox = harness.store.find_mailbox(harness.account, "Inbox")
    harness.run(harness.store.append(harness.account, mailbox["id"], body))
    sock = socket.create_connection(("127.0.0.1", harness.plain))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.recv(4096)
    sock.sendall(b"l LOGIN alice pw\r\ns SELECT INBOX\r\n")
    count = 2000                                  # 200 MB of answers if all were buffered
    pipeline = b"".join(b"f%d FETCH 1 BODY.PEEK[]\r\n" % i for i in range(count))
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 3
    while sent < len(pipeline) and time.monotonic() < deadline:
        try:
            sent += sock.send(pipeline[sent:])
        except BlockingIOError:
            time.sleep(0.05)
    time.sleep(0.5)
    [conn] = list(harness.server.connections)
    buffered = conn.transport.get_write_buffer_size()
    assert buffered <= WRITE_HIGH + 2 * len(body), buffered
    assert conn.session.parser.buffered() <= 2 * 1024 * 1024
    # Now read everything: every FETCH is answered, in order.
    sock.setblocking(True)
    sock.settimeout(30)
    if sent < len(pipeline):
        threading.Thread(target=sock.sendall, args=(pipeline[sent:],), daemon=True).start()
    received = bytearray()
    last = b"f%d OK FETCH completed\r\n" % (count - 1)
    while not received.endswith(last):
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed early"
        received += chunk
    assert received.count(b" OK FETCH completed\r\n") == count
    sock.close()


def test_preauth_autologout_and_drain():
    h = Harness(preauth_timeout=0.3)
    try:
        sock = socket.create_connection(("127.0.0.1", h.plain))
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"* OK [CAPABILITY")
        assert sock.recv(4096) == b"* BYE Autologout; idle for too long\r\n"
        assert sock.recv(4096) == b""
        idle = IMAPIdle(h.plain)
        h.run(h.server.drain(2))
        assert idle.read_rest().endswith(b"* BYE Server shutting down\r\n")
    finally:
        h.loop.call_soon_threadsafe(h.loop.stop)
        h.thread.join(5)


class IMAPIdle:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(5)
        self.sock.recv(4096)
        self.sock.sendall(b"a LOGIN alice pw\r\nb SELECT INBOX\r\nc IDLE\r\n")
        data = b""
        while b"+ idling\r\n" not in data:
            data += self.sock.recv(4096)

    def read_rest(self) -> bytes:
        data = b""
        while chunk := self.sock.recv(4096):
            data += chunk
        return data


def test_half_closed_client_gets_its_answers(harness):
    sock = socket.create_connection(("127.0.0.1", harness.plain))
    sock.settimeout(5)
    sock.recv(4096)
    sock.sendall(b"a LOGIN alice pw\r\nb LOGOUT\r\n")
    sock.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert b"a OK [CAPABILITY" in data and data.endswith(b"b OK LOGOUT completed\r\n")
