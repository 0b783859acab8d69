"""The asyncio adapter against Python's smtplib on 127.0.0.1, with Store.memory().

Covers: pipelined delivery into INBOX with Return-Path and Received headers, unknown
recipients refused, STARTTLS then AUTH (PLAIN and LOGIN), submission requiring AUTH,
implicit TLS, and the client vanishing mid-DATA (nothing delivered)."""

from __future__ import annotations

import asyncio
import datetime
import smtplib
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.protocols.smtp.delivery import LocalDelivery
from stalwart.protocols.smtp.machine import SmtpConfig
from stalwart.protocols.smtp.policy import StoreAuthenticator, StorePolicy
from stalwart.protocols.smtp.session import SmtpHandler
from stalwart.store.api import Store

PORT_BASE = 23250


def _certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("mx.example.com")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


class Server:
    """Our SMTP adapter on a loop in a background thread; smtplib runs in the test."""

    def __init__(self, tmp_path):
        self.loop = asyncio.new_event_loop()
        self.store = Store.memory()
        self.tls = _certificate(tmp_path)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers = []
        self.run(self._setup())

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _setup(self):
        await self.store.create_domain("example.com")
        acc = await self.store.create_account("jane", password="jane-pw",
                                              emails=["jane@example.com"])
        self.jane = acc["id"]
        await self.store.create_account("bob", emails=["bob@example.com"])

    async def _listen(self, port, config, implicit):
        handler = SmtpHandler(config, policy=StorePolicy(self.store),
                              authenticator=StoreAuthenticator(self.store),
                              delivery=LocalDelivery(self.store, config.hostname),
                              tls_context=self.tls, implicit_tls=implicit, auth_delay=0.0)
        server = await asyncio.start_server(handler, "127.0.0.1", port,
                                            ssl=self.tls if implicit else None)
        self.servers.append(server)

    def listen(self, port, config, implicit=False):
        self.run(self._listen(port, config, implicit))

    def inbox(self, account):
        async def read():
            inbox = self.store.find_mailbox(account, "INBOX")
            return [self.store.read_message(account, self.store.mailbox_uids(account, inbox["id"])[i][1])
                    for i in range(len(self.store.mailbox_uids(account, inbox["id"])))]
        return self.run(read())

    def close(self):
        async def stop():
            for s in self.servers:
                s.close()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    yield srv
    srv.close()


def _client_tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


MESSAGE = b"From: a@remote.example\r\nSubject: hello\r\n\r\nbody line\r\n.starts with dot\r\n"


def test_mx_delivery_with_trace_headers(server):
    server.listen(PORT_BASE, SmtpConfig(hostname="mx.example.com"))
    with smtplib.SMTP("127.0.0.1", PORT_BASE, local_hostname="client.example", timeout=10) as c:
        code, ehlo = c.ehlo()
        assert code == 250 and b"PIPELINING" in ehlo and b"STARTTLS" in ehlo
        assert b"AUTH" not in ehlo                      # no AUTH on clear text
        refused = c.sendmail("a@remote.example",
                             ["jane@example.com", "bob@example.com", "nobody@example.com"], MESSAGE)
        assert refused == {"nobody@example.com": (550, b"5.1.1 Mailbox does not exist")}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            c.sendmail("a@remote.example", ["x@remote.example"], MESSAGE)
        assert info.value.recipients["x@remote.example"][0] == 550
    [stored] = server.inbox(server.jane)
    assert stored.startswith(b"Return-Path: <a@remote.example>\r\nReceived: from client.example ([127.0.0.1])")
    assert b"by mx.example.com with ESMTP id " in stored
    assert stored.endswith(b"\r\n\r\nbody line\r\n.starts with dot\r\n")


def test_starttls_then_auth_on_submission(server):
    server.listen(PORT_BASE + 1, SmtpConfig(hostname="mx.example.com", submission=True))
    with smtplib.SMTP("127.0.0.1", PORT_BASE + 1, timeout=10) as c:
        c.ehlo("client.example")
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            c.sendmail("jane@example.com", ["bob@example.com"], MESSAGE)
        assert info.value.smtp_code == 530
        c.starttls(context=_client_tls())
        code, ehlo = c.ehlo("client.example")
        assert b"AUTH SCRAM-SHA-256 PLAIN LOGIN" in ehlo and b"STARTTLS" not in ehlo
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("jane", "wrong")
        c.login("jane", "jane-pw")                      # smtplib picks PLAIN
        with pytest.raises(smtplib.SMTPSenderRefused):
            c.sendmail("bob@example.com", ["bob@example.com"], MESSAGE)
        c.sendmail("jane@example.com", ["bob@example.com"], MESSAGE)
    bob = server.store.get_account("bob")["id"]
    [stored] = server.inbox(bob)
    assert b"with ESMTPSA" in stored


def test_implicit_tls_and_auth_login(server):
    server.listen(PORT_BASE + 2, SmtpConfig(hostname="mx.example.com", submission=True,
                                            starttls=False), implicit=True)
    with smtplib.SMTP_SSL("127.0.0.1", PORT_BASE + 2, context=_client_tls(), timeout=10) as c:
        c.ehlo("client.example")
        c.user, c.password = "jane@example.com", "jane-pw"
        code, _ = c.auth("LOGIN", c.auth_login)
        assert code == 235
        c.sendmail("jane@example.com", ["jane@example.com"], MESSAGE)
    assert len(server.inbox(server.jane)) == 1


def test_client_vanishes_mid_data(server):
    server.listen(PORT_BASE + 3, SmtpConfig(hostname="mx.example.com"))
    with socket.create_connection(("127.0.0.1", PORT_BASE + 3), timeout=10) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"220")
        f.write(b"EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<jane@example.com>\r\nDATA\r\n")
        f.flush()
        while not f.readline().startswith(b"354"):
            pass
        f.write(b"Subject: half\r\n\r\npart of a message")
        f.flush()
    # The server notices the close; give it a moment, then check nothing was stored.
    server.run(asyncio.sleep(0.2))
    assert server.inbox(server.jane) == []
