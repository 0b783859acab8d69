"""The queue delivering to a real SMTP server on loopback (a minimal sink written here,
on ports from ``ports.free_port``), with MX answers from the fake resolver: pipelined
delivery with DSN parameters passed on, connection reuse, 4xx then a retry, 5xx then a
failure DSN, opportunistic STARTTLS, null MX, a smarthost with AUTH, IPv6 falling back to
IPv4, and a delay DSN. REQUIRETLS (RFC 8689 4.2.1): refused without REQUIRETLS at the
server (5.7.30), without a DNSSEC-validated MX answer (5.7.10, nothing sent; a validated
implicit MX is enough), or with a certificate that does not verify (5.7.10); delivered
over verified TLS otherwise."""

from __future__ import annotations

import asyncio
import base64
import datetime
import email
import email.policy
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.dns import FakeBackend, Resolver
from stalwart.queue import (MemoryQueueStore, Queue, QueuedRecipient, QueueSettings,
                            RcptStatus, Route)
from stalwart.queue.delivery import verified_context
from stalwart.store.blobs import MemoryBlobStore

from . import ports

# Loopback ports from the test range (``STALWART_TEST_PORTS``), one per sink.
PORT, PORT1, PORT2, PORT3, PORT4 = (ports.free_port() for _ in range(5))
MESSAGE = (b"From: a@sender.test\r\nTo: b@dest.test\r\nSubject: hello\r\n\r\n"
           b"Body line\r\n.leading dot\r\n")


@dataclass
class Session:
    commands: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    tls: bool = False


class Sink:
    """A small SMTP server: EHLO with chosen extensions, STARTTLS, AUTH PLAIN/LOGIN, and a
    reply per recipient taken from ``rcpt_replies`` (default 250)."""

    def __init__(self, port: int, *, extensions=("PIPELINING", "8BITMIME", "DSN", "SIZE 1000000",
                                                 "ENHANCEDSTATUSCODES"),
                 tls: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None,
                 rcpt_replies: dict[str, str] | None = None) -> None:
        self.port = port
        self.extensions = list(extensions)
        self.tls = tls
        self.auth = auth
        self.rcpt_replies = rcpt_replies or {}
        self.sessions: list[Session] = []
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "Sink":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def messages(self) -> list[bytes]:
        return [m for s in self.sessions for m in s.messages]

    @property
    def commands(self) -> list[str]:
        return [c for s in self.sessions for c in s.commands]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = Session()
        self.sessions.append(s)

        def send(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        send("220 sink.test ESMTP")
        rcpts = 0
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                s.commands.append(line)
                verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
                if verb == "EHLO":
                    ext = list(self.extensions)
                    if self.tls and not s.tls:
                        ext.append("STARTTLS")
                    if self.auth:
                        ext.append("AUTH PLAIN LOGIN")
                    lines = ["sink.test", *ext]
                    for i, text in enumerate(lines):
                        send(f"250{'-' if i < len(lines) - 1 else ' '}{text}")
                elif verb == "STARTTLS":
                    send("220 2.0.0 go ahead")
                    await writer.drain()
                    await writer.start_tls(self.tls)
                    s.tls = True
                elif verb == "AUTH":
                    parts = line.split()
                    if parts[1].upper() == "PLAIN":
                        _, user, pw = base64.b64decode(parts[2]).decode().split("\0")
                    else:
                        send("334 VXNlcm5hbWU6")
                        await writer.drain()
                        user = base64.b64decode(await reader.readline()).decode()
                        send("334 UGFzc3dvcmQ6")
                        await writer.drain()
                        pw = base64.b64decode(await reader.readline()).decode()
                    send("235 2.7.0 ok" if (user, pw) == self.auth else "535 5.7.8 bad")
                elif verb == "MAIL":
                    rcpts = 0
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    addr = line.split("<", 1)[1].split(">", 1)[0]
                    reply = self.rcpt_replies.get(addr, "250 2.1.5 ok")
                    rcpts += reply.startswith("2")
                    send(reply)
                elif verb == "DATA":
                    if not rcpts:
                        send("554 5.5.1 no valid recipients")
                        continue
                    send("354 go")
                    await writer.drain()
                    data = bytearray()
                    while True:
                        chunk = await reader.readline()
                        if chunk == b".\r\n":
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    s.messages.append(bytes(data))
                    send("250 2.0.0 queued")
                elif verb == "RSET":
                    rcpts = 0
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    await writer.drain()
                    return
                else:
                    send("502 5.5.1 unknown")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            writer.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_queue(zone: dict, *, clock=None, port=PORT, **settings) -> tuple[Queue, MemoryQueueStore,
                                                                           MemoryBlobStore]:
    store, blobs = MemoryQueueStore(), MemoryBlobStore()
    settings.setdefault("hostname", "mail.sender.test")
    tls_verified = settings.pop("tls_verified", None)
    s = QueueSettings(mx_port=port, **settings)
    queue = Queue(store, blobs, Resolver(FakeBackend(zone)), s, tls_verified=tls_verified,
                  clock=clock or Clock())
    return queue, store, blobs


ZONE = {
    "dest.test": {"MX": [(10, "mx.dest.test")]},
    "mx.dest.test": {"A": "127.0.0.1"},
    "sender.test": {"MX": [(10, "mx.dest.test")]},
}


def test_delivery_pipelined_with_dsn_parameters_and_connection_reuse():
    async def main():
        queue, store, _ = make_queue(ZONE)
        async with Sink(PORT) as sink:
            first = await queue.enqueue(MESSAGE, return_path="a@sender.test", recipients=[
                QueuedRecipient("b@dest.test", notify=("SUCCESS", "FAILURE"),
                                orcpt=("rfc822", "b+x=y@dest.test")),
                QueuedRecipient("c@dest.test")], env_id="env 1", ret="HDRS")
            assert await queue.run_due() == 1
            await queue.enqueue(MESSAGE, return_path="a@sender.test", recipients=["d@dest.test"])
            assert await queue.run_due() == 1
            await queue.pool.close()
        assert store.queue_list() == []                 # both delivered, nothing owed
        assert store.queue_get(first) is None
        assert len(sink.sessions) == 1                  # second message reused the session
        assert sink.messages == [MESSAGE, MESSAGE]      # dot-stuffing undone by the sink
        cmds = sink.sessions[0].commands
        assert cmds[1] == f"MAIL FROM:<a@sender.test> SIZE={len(MESSAGE)} RET=HDRS ENVID=env+201"
        assert cmds[2] == "RCPT TO:<b@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx+3Dy@dest.test"
        assert cmds[3] == "RCPT TO:<c@dest.test>"
        assert "RSET" in cmds and cmds[-1] == "QUIT"
    asyncio.run(main())


def test_temporary_failure_then_retry_on_schedule():
    async def main():
        clock = Clock()
        queue, store, _ = make_queue(ZONE, clock=clock)
        async with Sink(PORT, rcpt_replies={"b@dest.test": "450 4.2.0 try later"}) as sink:
            qid = await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                      recipients=["b@dest.test", "c@dest.test"])
            await queue.run_due()
            msg = queue.get(qid)
            assert [r.status for r in msg.recipients] == [RcptStatus.PENDING,
                                                          RcptStatus.DELIVERED]
            assert str(msg.recipients[0].reply) == "450 4.2.0 try later"
            assert msg.due == clock.now + 120 and msg.attempts == 1
            assert await queue.run_due() == 0           # not due yet
            sink.rcpt_replies.clear()
            clock.now += 120
            assert await queue.run_due() == 1
            await queue.pool.close()
        assert store.queue_list() == []
        assert len(sink.messages) == 2                  # c first, then b on the retry
        assert "RCPT TO:<c@dest.test>" not in sink.sessions[-1].commands[-6:]
    asyncio.run(main())


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_permanent_failure_sends_a_failure_dsn_to_the_return_path():
    async def main():
        queue, store, blobs = make_queue(ZONE)
        async with Sink(PORT, rcpt_replies={"b@dest.test": "550 5.1.1 no such user"}) as sink:
            await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                recipients=["b@dest.test", "c@dest.test"])
            await queue.run_due()
            pending = store.queue_list()
            assert len(pending) == 1 and pending[0]["dsn"] and pending[0]["from"] == ""
            report = blobs.get(pending[0]["blob"])
            await queue.run_due()                       # the DSN itself goes out
            await queue.pool.close()
        assert store.queue_list() == []
        assert sink.messages[-1] == report
        assert "MAIL FROM:<> SIZE=%d" % len(report) in sink.commands
        dsn = parse(report)
        assert dsn.get_content_type() == "multipart/report"
        assert dsn.get_param("report-type") == "delivery-status"
        assert dsn["To"].addresses[0].addr_spec == "a@sender.test" and dsn["Auto-Submitted"] == "auto-replied"
        text, status, original = dsn.iter_parts()
        assert "<b@dest.test>: host mx.dest.test said: 550 5.1.1 no such user" in text.get_content()
        assert status.get_content_type() == "message/delivery-status"
        fields = status.as_bytes().decode()
        assert "Final-Recipient: rfc822;b@dest.test" in fields
        assert "Action: failed" in fields and "Status: 5.1.1" in fields
        assert "Remote-MTA: dns; mx.dest.test" in fields
        assert "Diagnostic-Code: smtp; 550 5.1.1 no such user" in fields
        assert "c@dest.test" not in fields              # delivered: not in the report
        assert original.get_content_type() == "message/rfc822"   # no RET: full on failure
        assert b"Body line" in report
    asyncio.run(main())


def test_null_mx_and_missing_domain_bounce_without_connecting():
    async def main():
        zone = {**ZONE, "nullmx.test": {"MX": [(0, ".")]}}
        queue, store, blobs = make_queue(zone)
        async with Sink(PORT) as sink:
            await queue.enqueue(MESSAGE, return_path="a@sender.test", ret="HDRS",
                                recipients=["x@nullmx.test", "y@nowhere.test"])
            await queue.run_due()
            dsns = store.queue_list()
            assert len(dsns) == 1
            report = blobs.get(dsns[0]["blob"]).decode()
            await queue.pool.close()
        assert sink.sessions == []
        assert "Status: 5.1.10" in report and "null MX" in report
        assert "Status: 5.1.2" in report and "nowhere.test does not exist" in report
        assert "Content-Type: text/rfc822-headers" in report and "Body line" not in report
    asyncio.run(main())


def test_null_sender_gets_no_dsn():
    async def main():
        queue, store, _ = make_queue(ZONE)
        async with Sink(PORT, rcpt_replies={"b@dest.test": "550 5.1.1 no"}):
            await queue.enqueue(MESSAGE, return_path="", recipients=["b@dest.test"])
            await queue.run_due()
            await queue.pool.close()
        assert store.queue_list() == []
    asyncio.run(main())


def make_cert(name: str, directory: Path) -> tuple[ssl.SSLContext, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, str(cert_path)


#: ZONE as a validating resolver answers it for a signed dest.test: the AD bit on the MX
#: and address answers (what REQUIRETLS needs without MTA-STS, RFC 8689 4.2.1).
SECURE_ZONE = {**ZONE, "dest.test": {**ZONE["dest.test"], "secure": True},
               "mx.dest.test": {**ZONE["mx.dest.test"], "secure": True}}


def dsn_reports(store, blobs) -> list[str]:
    return [blobs.get(m["blob"]).decode() for m in store.queue_list() if not m["from"]]


def test_opportunistic_starttls_and_requiretls():
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            server_ctx, ca = make_cert("mx.dest.test", Path(tmp))
            queue, store, blobs = make_queue(SECURE_ZONE, tls_verified=verified_context(ca))
            async with Sink(PORT, tls=server_ctx) as sink:
                await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                    recipients=["b@dest.test"])
                await queue.run_due()
                assert sink.sessions[0].tls and sink.messages == [MESSAGE]
                assert sink.sessions[0].commands[:3] == [
                    "EHLO mail.sender.test", "STARTTLS", "EHLO mail.sender.test"]
                # REQUIRETLS: the server has TLS but does not offer REQUIRETLS -> 5.7.30.
                await queue.enqueue(MESSAGE, return_path="a@sender.test", requiretls=True,
                                    recipients=["c@dest.test"])
                await queue.run_due()
                dsn = store.queue_list()
                assert len(dsn) == 1 and dsn[0]["requiretls"]
                report = blobs.get(dsn[0]["blob"]).decode()
                assert "Status: 5.7.30" in report and "Body line" not in report
                await store.queue_delete(dsn[0]["id"])
                # Offering REQUIRETLS (certificate verified against mx.dest.test, the MX
                # answer DNSSEC-validated): delivered.
                sink.extensions.append("REQUIRETLS")
                await queue.pool.close()
                await queue.enqueue(MESSAGE, return_path="a@sender.test", requiretls=True,
                                    recipients=["d@dest.test"])
                await queue.run_due()
                await queue.pool.close()
            assert store.queue_list() == []
            assert f"MAIL FROM:<a@sender.test> SIZE={len(MESSAGE)} REQUIRETLS" in sink.sessions[-1].commands
            assert sink.sessions[-1].tls
    asyncio.run(main())


def test_requiretls_refused_when_the_mx_answer_is_not_validated():
    """RFC 8689 4.2.1: without DNSSEC on the MX answer and without an MTA-STS policy in
    enforce mode, a REQUIRETLS message goes to no host; the sender gets 5.7.10."""
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            server_ctx, ca = make_cert("mx.dest.test", Path(tmp))
            # mx.dest.test is signed (its own domain: an implicit MX), dest.test is not.
            zone = {**ZONE, "mx.dest.test": {"A": "127.0.0.1", "secure": True}}
            queue, store, blobs = make_queue(zone, tls_verified=verified_context(ca))
            async with Sink(PORT, tls=server_ctx,
                            extensions=("PIPELINING", "SIZE 1000000", "REQUIRETLS")) as sink:
                qid = await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                          requiretls=True,
                                          recipients=["b@dest.test", "c@[127.0.0.1]"])
                await queue.run_due()
                assert sink.sessions == []                   # no host was even tried
                assert queue.get(qid) is None                # failed for good
                [report] = dsn_reports(store, blobs)
                assert report.count("Status: 5.7.10") == 2
                assert "dest.test are not DNSSEC-validated" in report
                assert "no MTA-STS policy" in report and "address literal" in report
                assert "Body line" not in report             # headers only (RFC 8689 4.3)
                for m in store.queue_list():
                    await store.queue_delete(m["id"])
                # The same message without REQUIRETLS is delivered (verified TLS or not).
                await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                    recipients=["b@dest.test"])
                await queue.run_due()
                assert sink.messages == [MESSAGE]
                # A validated implicit MX (no MX records, signed A) is protected.
                await queue.pool.close()
                await queue.enqueue(MESSAGE, return_path="a@sender.test", requiretls=True,
                                    recipients=["x@mx.dest.test"])
                await queue.run_due()
                await queue.pool.close()
            assert store.queue_list() == []
            assert sink.messages == [MESSAGE, MESSAGE] and sink.sessions[-1].tls
            assert "REQUIRETLS" in sink.sessions[-1].commands[3]
    asyncio.run(main())


def test_requiretls_refused_when_the_certificate_is_not_verified():
    """A validated MX, but the server's certificate names another host: no clear-text
    retry, no unchecked TLS, the message bounces with 5.7.10; a certificate that does
    not chain to a trusted CA is the same."""
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "trusted").mkdir()
            # The trusted certificate names other.test; the one for mx.dest.test is
            # self-signed by a key nobody trusts.
            wrong_ctx, ca = make_cert("other.test", Path(tmp) / "trusted")
            right_ctx, _untrusted = make_cert("mx.dest.test", Path(tmp))
            queue, store, blobs = make_queue(SECURE_ZONE, tls_verified=verified_context(ca))
            ext = ("PIPELINING", "SIZE 1000000", "REQUIRETLS")
            for ctx in (wrong_ctx, right_ctx):
                async with Sink(PORT, tls=ctx, extensions=ext) as sink:
                    qid = await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                              requiretls=True, recipients=["b@dest.test"])
                    await queue.run_due()
                    await queue.pool.close()
                assert sink.messages == [] and queue.get(qid) is None
                assert sink.commands == ["EHLO mail.sender.test", "STARTTLS"]
                [report] = dsn_reports(store, blobs)
                assert "Status: 5.7.10" in report and "Body line" not in report
                for m in store.queue_list():
                    await store.queue_delete(m["id"])
    asyncio.run(main())


def test_smarthost_with_auth_and_ipv6_fallback():
    async def main():
        route = Route(kind="relay", host="relay.test", port=PORT1, tls="none",
                      username="user", password="secret", allow_plaintext_auth=True)
        zone = {"relay.test": {"A": "127.0.0.1", "AAAA": "::1"}}
        queue, store, _ = make_queue(zone, routes={"*": route})
        async with Sink(PORT1, auth=("user", "secret")) as sink:
            await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                recipients=["someone@anywhere.example"])
            await queue.run_due()
            await queue.pool.close()
        # ::1 was tried first (nothing listens there on this port), then 127.0.0.1.
        assert store.queue_list() == []
        assert sink.messages == [MESSAGE]
        assert any(c.startswith("AUTH PLAIN ") for c in sink.commands)
    asyncio.run(main())


def test_smarthost_bad_credentials_defer_instead_of_bouncing():
    async def main():
        route = Route(kind="relay", host="127.0.0.1", port=PORT2, tls="none",
                      username="user", password="wrong", allow_plaintext_auth=True)
        queue, store, _ = make_queue({}, routes={"*": route})
        async with Sink(PORT2, auth=("user", "secret")) as sink:
            qid = await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                      recipients=["x@anywhere.example"])
            await queue.run_due()
            await queue.pool.close()
        msg = queue.get(qid)
        assert msg.recipients[0].status is RcptStatus.PENDING
        assert msg.recipients[0].reply.code == 451 and sink.messages == []
    asyncio.run(main())


def test_delay_dsn_once_then_expiry_bounce():
    async def main():
        clock = Clock()
        zone = {"down.test": {"MX": [(10, "mx.down.test")]}, "mx.down.test": {"A": "127.0.0.1"},
                "sender.test": {"MX": [(10, "mx.sender.test")]},
                "mx.sender.test": {"A": "127.0.0.1"}}
        # Nothing listens on PORT3 for down.test; the sender's MX is a sink on PORT4
        # reached through a route so the DSNs can be delivered and inspected.
        routes = {"*": Route(), "sender.test": Route(kind="relay", host="127.0.0.1",
                                                     port=PORT4, tls="none")}
        queue, store, _ = make_queue(zone, clock=clock, port=PORT3, routes=routes,
                                     notify_delay=3600.0, expire=4 * 3600.0)
        async with Sink(PORT4) as sender_mx:
            qid = await queue.enqueue(MESSAGE, return_path="a@sender.test",
                                      recipients=["z@down.test"])
            for _ in range(12):
                await queue.run_due()
                nxt = store.queue_next_due()
                if nxt is None:
                    break
                clock.now = max(clock.now, nxt)
            await queue.pool.close()
        assert store.queue_get(qid) is None and store.queue_list() == []
        kinds = [parse(m).get("Subject") for m in sender_mx.messages]
        assert kinds == ["Delayed Mail (still being retried)",
                         "Undelivered Mail Returned to Sender"]
        expired = sender_mx.messages[1].decode()
        assert "Status: 4.4.7" in expired and "Action: failed" in expired
        assert "Will-Retry-Until" in sender_mx.messages[0].decode()
    asyncio.run(main())
