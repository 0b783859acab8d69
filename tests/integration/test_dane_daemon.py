"""DANE in the running daemon: the queue process turns DANE on from the config (the
default), finds TLSA records through a validating resolver (Unbound over NSD, signed
zones) and delivers to Postfix only when Postfix's certificate matches them.

- ``dane.test`` (signed): ``_<port>._tcp.mx`` is ``3 0 1`` of Postfix's certificate ->
  delivered over TLS, the daemon logs the DANE match.
- ``wrong.test`` (signed): the TLSA record names another certificate -> the message stays
  queued with 451 4.7.5 (``stalwart-cli queue show``), Postfix never gets it.

REQUIRETLS (RFC 8689) through the daemon, submitted with ``MAIL FROM ... REQUIRETLS``:

- ``dane.test`` (signed, DANE authenticates Postfix): Postfix 3.7 does not offer
  REQUIRETLS -> nothing sent, the sender's DSN says 5.7.30.
- ``plain.test`` (unsigned, no MTA-STS): the MX cannot be trusted -> no connection, the
  DSN says 5.7.10; the same message without REQUIRETLS is delivered to Postfix.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import ssl
import subprocess
import sys

import pytest

from .configs import certificate, memory_directory, resolver
from .conftest import wait_for
from .dnsserver import dns_server, free_port  # noqa: F401  (fixture)
from .postfixpeer import Postfix, self_signed
from .test_postfix_peer import Peers

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "stalwart.cli.main"]


def test_the_daemon_queue_applies_dane(daemon, dns_server, tmp_path):  # noqa: F811
    ports = {name: free_port() for name in ("submission", "imap", "http", "postfix")}
    postfix = Postfix(ports["postfix"], domains=("dane.test", "wrong.test"), users=("user1",))
    try:
        postfix.start()
        other = self_signed("mx.wrong.test", tmp_path / "o.pem", tmp_path / "o.key")
        tlsa_name = f"_{ports['postfix']}._tcp.mx"
        for domain, der in (("dane.test", postfix.cert_der), ("wrong.test", other)):
            dns_server.zone(domain, [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1"),
                                     (tlsa_name, "TLSA",
                                      f"3 0 1 {hashlib.sha256(der).hexdigest()}")],
                            signed=True)
        dns_server.publish()
        unbound = dns_server.validating_resolver()
        self_signed("mx.test.invalid", daemon.root / "cert.pem", daemon.root / "key.pem")
        daemon.configure(
            listeners=[("submission", "smtp", ports["submission"]),
                       ("imap", "imap", ports["imap"]), ("http", "http", ports["http"])],
            extra=f"""
{resolver(unbound.address)}

[queue]
mx-port = {ports['postfix']}
poll-interval = "200ms"
retry = ["1h"]

{certificate(daemon.root)}

{memory_directory(("jane", "jane-password", ["jane@example.test"]))}
""")
        daemon.start()
        daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30,
                        message="the memory directory")
        peers = Peers(daemon, dns_server, postfix, ports)
        peers.submit(["user1@dane.test", "user1@wrong.test"], "dane")
        got = wait_for(lambda: postfix.messages("user1@dane.test"), timeout=30,
                       message="the DANE-checked delivery")
        assert len(got) == 1 and b"Subject: dane" in got[0]
        assert "DANE authenticated" in daemon.log()
        assert "TLS connection established from" in postfix.log()

        def cli(*args: str) -> str:
            result = subprocess.run([*CLI, "--config", str(daemon.config_path), *args],
                                    capture_output=True, timeout=60, cwd=daemon.root)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
            return result.stdout.decode()

        def deferred() -> dict | None:
            queued = json.loads(cli("--json", "queue", "list"))["messages"]
            return queued[0] if len(queued) == 1 and queued[0]["attempts"] else None
        entry = wait_for(deferred, timeout=30, message="wrong.test's mail to be deferred")
        show = cli("queue", "show", str(entry["id"]))
        assert "user1@wrong.test" in show and "451 4.7.5" in show and "DANE" in show
        assert [r["address"] for r in entry["recipients"] if r["status"] == "pending"] \
            == ["user1@wrong.test"]
        assert postfix.messages("user1@wrong.test") == []
    finally:
        postfix.stop()


def test_the_daemon_queue_applies_requiretls(daemon, dns_server, tmp_path):  # noqa: F811
    ports = {name: free_port() for name in ("submission", "imap", "postfix")}
    postfix = Postfix(ports["postfix"], domains=("dane.test", "plain.test"), users=("user1",))
    try:
        postfix.start()
        tlsa_name = f"_{ports['postfix']}._tcp.mx"
        for domain, signed in (("dane.test", True), ("plain.test", False)):
            dns_server.zone(domain, [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1"),
                                     (tlsa_name, "TLSA", "3 0 1 "
                                      + hashlib.sha256(postfix.cert_der).hexdigest())],
                            signed=signed)
        dns_server.publish()
        unbound = dns_server.validating_resolver()
        self_signed("mx.test.invalid", daemon.root / "cert.pem", daemon.root / "key.pem")
        daemon.configure(
            listeners=[("submission", "smtp", ports["submission"]),
                       ("imap", "imap", ports["imap"])],
            extra=f"""
{resolver(unbound.address)}

[queue]
mx-port = {ports['postfix']}
poll-interval = "200ms"
retry = ["1h"]

{certificate(daemon.root)}

{memory_directory(("jane", "jane-password", ["jane@example.test"]))}
""")
        daemon.start()
        daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30,
                        message="the memory directory")

        def submit(rcpt: str, subject: str, options: tuple = ()) -> None:
            message = (f"From: Jane <jane@example.test>\r\nTo: {rcpt}\r\n"
                       f"Subject: {subject}\r\nMessage-ID: <{subject}@example.test>\r\n"
                       f"\r\nSecret body of {subject}.\r\n")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=30) as client:
                client.starttls(context=context)
                client.login("jane", "jane-password")
                assert client.sendmail("jane@example.test", [rcpt], message,
                                       mail_options=list(options)) == {}

        submit("user1@dane.test", "rt-dane", ("REQUIRETLS",))
        submit("user1@plain.test", "rt-plain", ("REQUIRETLS",))
        peers = Peers(daemon, dns_server, postfix, ports)
        dsns = wait_for(lambda: (lambda box: box if len(box) >= 2 else None)(
            peers.inbox("jane")), timeout=30, message="two DSNs in jane's INBOX")
        text = b"\n".join(dsns).decode()
        assert "user1@dane.test" in text and "Status: 5.7.30" in text
        assert "user1@plain.test" in text and "Status: 5.7.10" in text
        assert "Secret body" not in text                 # headers only (REQUIRETLS)
        assert postfix.messages("user1@dane.test") == []
        assert postfix.messages("user1@plain.test") == []
        # Without REQUIRETLS the unsigned domain gets the message (opportunistic TLS).
        submit("user1@plain.test", "plain")
        got = wait_for(lambda: postfix.messages("user1@plain.test"), timeout=30,
                       message="the delivery without REQUIRETLS")
        assert len(got) == 1 and b"Subject: plain" in got[0]
    finally:
        postfix.stop()
