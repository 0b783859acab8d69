"""The outbound queue end to end, through the real ``stalwart-master``.

The daemon runs with a smarthost route (``queue.route``) for every remote domain pointing
at a small SMTP sink this test runs on 127.0.0.1 (ports 28000-28999). smtplib submits
with STARTTLS and AUTH on the submission listener; what arrives is read from the sink
(envelope, headers) and from the store (local mailboxes, through a store client of this
process, as any worker reads it); the queue is driven with ``stalwart-cli queue``.

Shown here:
- one submission to a remote and a local recipient: the sink gets exactly the remote
  copy (envelope, Received with ESMTPSA, no Return-Path), the local account its own copy;
- a 5xx from the sink: a failure DSN lands in the sender's INBOX;
- a 4xx keeps the message queued (``queue list/show``), ``queue retry`` delivers it once
  the sink accepts again, ``queue cancel`` removes another one for good;
- SIGKILL of the queue process while it is in the middle of delivering a message: the
  master restarts it, the message is delivered once, nothing is lost.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import signal
import smtplib
import ssl
import time
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import pytest

from .configs import certificate, smarthost
from .certs import daemon_certificate
from .conftest import wait_for

CLI = [sys.executable, "-m", "stalwart.cli.main"]
SINK_PORTS = range(28100, 28200)


# ---------------------------------------------------------------------------- the sink

@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes


@dataclass
class Sink:
    """A minimal SMTP server in a thread. Per recipient local part: ``reject*`` gets
    550 5.1.1; ``defer*`` gets 451 4.2.0 while ``defer`` is set; a message to ``stall*``
    gets no reply to its final dot until ``release`` is set (the connection just hangs).
    A message is recorded in ``messages`` only once its 250 was sent."""

    port: int = 0
    messages: list[Received] = field(default_factory=list)
    defer: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)
    dropped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Sink":
        self.loop = asyncio.new_event_loop()
        self.release = asyncio.Event()
        ready = threading.Event()

        async def main() -> None:
            for port in SINK_PORTS:
                try:
                    self.server = await asyncio.start_server(self.session, "127.0.0.1", port)
                except OSError:
                    continue
                self.port = port
                break
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(main(), self.loop)
        assert ready.wait(10) and self.port, "no free port for the sink"
        return self

    def release_stalled(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        send("220 sink.test ESMTP")
        mail_from, rcpts = None, []
        try:
            while line := await reader.readline():
                verb = line[:4].decode().upper()
                arg = line[5:].decode().strip() if len(line) > 5 else ""
                if verb == "EHLO":
                    send("250-sink.test\r\n250-8BITMIME\r\n250-SIZE 10000000\r\n"
                         "250 ENHANCEDSTATUSCODES")
                elif verb == "MAIL":
                    mail_from, rcpts = arg[len("FROM:"):].split()[0].strip("<>"), []
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    address = arg[len("TO:"):].split()[0].strip("<>")
                    local = address.split("@")[0]
                    if local.startswith("reject"):
                        send("550 5.1.1 no such user here")
                    elif local.startswith("defer") and self.defer.is_set():
                        send("451 4.2.0 try again later")
                    else:
                        rcpts.append(address)
                        send("250 2.1.5 ok")
                elif verb == "DATA":
                    send("354 go ahead")
                    await writer.drain()
                    data = bytearray()
                    while (chunk := await reader.readline()) != b".\r\n":
                        if not chunk:
                            return
                        data += chunk[1:] if chunk.startswith(b".") else chunk
                    if any(r.startswith("stall") for r in rcpts) and not self.release.is_set():
                        self.stalled.set()
                        # Hold the reply until the client goes away or the test releases
                        # stalled deliveries (then this one is accepted like any other).
                        gone = asyncio.ensure_future(reader.read())
                        released = asyncio.ensure_future(self.release.wait())
                        done, _ = await asyncio.wait({gone, released},
                                                     return_when=asyncio.FIRST_COMPLETED)
                        if gone in done:
                            released.cancel()
                            self.dropped.set()
                            return
                        gone.cancel()
                    self.messages.append(Received(mail_from, list(rcpts), bytes(data)))
                    send("250 2.0.0 queued")
                elif verb in ("RSET", "NOOP"):
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    await writer.drain()
                    return
                else:
                    send("502 5.5.1 not implemented")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------------------- helpers

class Mail:
    """The daemon under test with its sink; CLI, submission and mailbox reading."""

    def __init__(self, daemon, sink: Sink, poll: str = "200ms") -> None:
        self.daemon = daemon
        self.sink = sink
        self.submission = daemon.port()
        daemon_certificate(daemon.root, "mx.test.invalid")
        daemon.configure(
            listeners=[("submission", "smtp", self.submission), ("http", "http", daemon.port())],
            extra=f"""
[queue]
retry = ["1h"]
poll-interval = "{poll}"

{smarthost(sink.port)}

{certificate(daemon.root)}
""")

    def cli(self, *args: str, stdin: bytes = b"", check: bool = True
            ) -> subprocess.CompletedProcess:
        result = subprocess.run([*CLI, "--config", str(self.daemon.config_path), *args],
                                input=stdin, capture_output=True, timeout=60,
                                cwd=self.daemon.root)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def queued(self) -> list[dict]:
        return json.loads(self.cli("--json", "queue", "list").stdout)["messages"]

    def submit(self, to: list[str], subject: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        message = (f"From: Jane <jane@example.org>\r\nTo: {', '.join(to)}\r\n"
                   f"Subject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\n"
                   f"Hello from the submission test: {subject}.\r\n.dot-line\r\n")
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=30) as client:
            client.starttls(context=context)
            client.login("jane", "jane-password")
            refused = client.sendmail("jane@example.org", to, message)
        assert refused == {}

    def inbox(self, account: str) -> list[bytes]:
        """The messages of ``account``'s INBOX, read through a store client."""
        from stalwart.config import load
        from stalwart.store.api import Store

        async def read() -> list[bytes]:
            store = await Store.open(load(self.daemon.config_path),
                                     name=f"test-{os.getpid()}")
            try:
                acc = store.get_account(account)["id"]
                inbox = store.find_mailbox(acc, "INBOX")
                return [store.read_message(acc, email_id)
                        for _uid, email_id in store.mailbox_uids(acc, inbox["id"])]
            finally:
                await store.close()
        return asyncio.run(read())


@pytest.fixture
def mail(daemon, request):
    sink = Sink().start()
    m = Mail(daemon, sink, poll=getattr(request, "param", "200ms"))
    daemon.start()
    m.cli("domain", "create", "example.org")
    m.cli("account", "create", "jane", "--email", "jane@example.org", "--password", "-",
          stdin=b"jane-password\n")
    m.cli("account", "create", "bob", "--email", "bob@example.org")
    yield m
    sink.release_stalled()
    sink.stop()


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


# ---------------------------------------------------------------------------- tests

def test_submission_delivers_remote_through_the_smarthost_and_local_to_the_mailbox(mail):
    mail.submit(["carol@remote.test", "bob@example.org"], "both")
    wait_for(lambda: mail.sink.messages, timeout=20, message="the sink to receive the mail")
    assert len(mail.sink.messages) == 1
    got = mail.sink.messages[0]
    assert got.mail_from == "jane@example.org"
    assert got.rcpt_to == ["carol@remote.test"]
    remote = _parse(got.data)
    assert remote["Subject"] == "both" and remote["Message-ID"] == "<both@example.org>"
    assert "Return-Path" not in remote                       # only final delivery adds it
    received = remote["Received"]
    assert "by mx.test.invalid with ESMTPSA" in received, received
    assert b"\r\n.dot-line\r\n" in got.data                   # unstuffed at us, restuffed out

    bob = mail.inbox("bob")
    assert len(bob) == 1
    local = _parse(bob[0])
    assert local["Return-Path"] == "<jane@example.org>" and local["Subject"] == "both"
    wait_for(lambda: mail.queued() == [], timeout=10, message="an empty queue")
    assert mail.inbox("jane") == []                          # no DSN for a success


def test_a_5xx_from_the_smarthost_bounces_to_the_senders_mailbox(mail):
    mail.submit(["reject-me@remote.test"], "bounce")
    raw = wait_for(lambda: mail.inbox("jane"), timeout=20, message="the DSN")[0]
    dsn = _parse(raw)
    assert dsn["Return-Path"] == "<>"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    text = raw.decode("utf-8", "replace")
    assert re.search(r"Final-Recipient: rfc822; ?reject-me@remote.test\r\n", text)
    assert "Action: failed" in text and "Status: 5.1.1" in text
    assert "no such user here" in text                       # the sink's own words
    assert mail.queued() == [] and mail.sink.messages == []


def test_deferred_mail_waits_then_cli_retry_delivers_and_cancel_removes(mail):
    mail.sink.defer.set()
    mail.submit(["defer-a@remote.test"], "deferred-a")
    mail.submit(["defer-b@remote.test"], "deferred-b")

    def both_deferred() -> list[dict] | None:
        queued = mail.queued()
        return queued if len(queued) == 2 and all(m["attempts"] for m in queued) else None

    queued = wait_for(both_deferred, timeout=20, message="two deferred messages")
    by_rcpt = {m["recipients"][0]["address"]: m["id"] for m in queued}
    show = mail.cli("queue", "show", str(by_rcpt["defer-a@remote.test"])).stdout.decode()
    assert "defer-a@remote.test" in show and "451 4.2.0 try again later" in show
    assert "pending" in show
    listing = mail.cli("queue", "list").stdout.decode()
    assert "defer-a@remote.test" in listing and "defer-b@remote.test" in listing

    mail.cli("queue", "cancel", str(by_rcpt["defer-b@remote.test"]))
    missing = mail.cli("queue", "show", str(by_rcpt["defer-b@remote.test"]), check=False)
    assert missing.returncode == 5                           # not found

    mail.sink.defer.clear()
    mail.cli("queue", "retry", str(by_rcpt["defer-a@remote.test"]))
    wait_for(lambda: mail.sink.messages, timeout=20, message="the retried delivery")
    wait_for(lambda: mail.queued() == [], timeout=10, message="an empty queue")
    assert [m.rcpt_to for m in mail.sink.messages] == [["defer-a@remote.test"]]
    assert mail.inbox("jane") == []                          # the cancel notifies nobody


def test_sigkill_of_the_queue_mid_delivery_loses_nothing(mail):
    mail.submit(["stall@remote.test"], "survivor")
    assert mail.sink.stalled.wait(20), "the queue never started the delivery"
    queue = mail.daemon.singleton("queue")
    assert queue is not None
    os.kill(queue.pid, signal.SIGKILL)
    assert mail.sink.dropped.wait(10), "the killed queue's connection stayed open"
    assert len(mail.queued()) == 1                            # still there, still pending
    mail.sink.release_stalled()
    mail.daemon.wait_for(lambda: (p := mail.daemon.singleton("queue")) and p.pid != queue.pid,
                         timeout=20, message="the queue process to be restarted")
    wait_for(lambda: mail.sink.messages, timeout=20, message="delivery after the restart")
    wait_for(lambda: mail.queued() == [], timeout=10, message="an empty queue")
    assert len(mail.sink.messages) == 1
    assert _parse(mail.sink.messages[0].data)["Subject"] == "survivor"


@pytest.mark.parametrize("mail", ["1h"], indirect=True)
def test_a_queued_message_leaves_at_once_without_waiting_for_the_poll(mail):
    """The SMTP worker wakes the queue process after committing the entry (QueueWaker):
    with an hour between polls, the message still reaches the smarthost at once."""
    time.sleep(1.0)          # the queue's first look at start is over: the next is in 1 h
    started = time.monotonic()
    mail.submit(["carol@remote.test"], "prompt")
    wait_for(lambda: mail.sink.messages, timeout=20, message="the sink to receive the mail")
    assert time.monotonic() - started < 15
    assert mail.sink.messages[0].rcpt_to == ["carol@remote.test"]

