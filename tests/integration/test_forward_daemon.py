"""Forwarding aliases end to end through the real ``stalwart-master``.

``stalwart-cli`` creates the domains, an account, DKIM keys and two forwarding aliases;
NSD (``dnsserver.py``) serves the sender's SPF record and the DKIM records the CLI
printed; the queue's smarthost route points every remote domain at an SMTP sink
(``test_queue_daemon.Sink``). An unauthenticated client on the MX listener sends to
``info@example.org`` (-> alice@example.org, bob@remote.test):

- alice finds her copy in her INBOX (IMAP);
- the sink gets exactly one copy, for bob@remote.test only, with the original envelope
  sender, ARC-sealed by example.org (i=1, cv=none) with our SPF verdict in the
  ARC-Authentication-Results; dkimpy's ARC verifier (``dkim.arc_verify``) accepts it with
  the keys from the DNS server;
- that copy sent again to ``out@example.net`` (a second of our domains) leaves with i=2,
  cv=pass, and dkimpy accepts the two-hop chain;
- relay tricks on the forward's address are refused; a message with more Received fields
  than ``smtp.hop-limit`` gets 554 5.4.6.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import subprocess
import sys

import dkim as dkimpy
import pytest

from .configs import resolver, smarthost
from . import test_queue_daemon as queue_tests
from .conftest import wait_for
from .dnsserver import DnsServer
from .ports import free_port

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "stalwart.cli.main"]


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(tmp_path / "dns")
    yield server
    server.stop()


def _zone_lines(text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(name, tuple(re.findall(r'"([^"]*)"', strings)))
            for name, strings in re.findall(r"^(\S+)\. IN TXT \( (.*) \)$", text, re.M)]


def _message(subject: str, received: int = 0) -> bytes:
    hops = "".join(f"Received: from h{i}.test by h{i + 1}.test; "
                   f"Fri, 04 Dec 2026 12:00:00 +0000\r\n" for i in range(received))
    return (hops + f"From: Sender <x@sender.test>\r\nTo: info@example.org\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@sender.test>\r\n"
            f"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nHello through a forward.\r\n").encode()


def test_forwarded_mail_arrives_arc_sealed_and_the_local_copy_in_the_mailbox(dns, daemon,
                                                                             monkeypatch):
    monkeypatch.setattr(queue_tests, "SINK_PORTS", [free_port()])
    sink = queue_tests.Sink().start()
    try:
        smtp, imap, http = daemon.port(), daemon.port(), daemon.port()
        dns.zone("sender.test", [("@", "TXT", "v=spf1 ip4:127.0.0.1 -all")])
        dns.publish()
        daemon.configure(listeners=[("mx", "smtp", smtp), ("imap", "imap", imap),
                                    ("http", "http", http)], extra=f"""
{resolver(dns.address, lifetime="4s")}

[queue]
retry = ["1h"]
poll-interval = "200ms"

{smarthost(sink.port)}
""")
        daemon.start()

        def cli(*args: str, stdin: bytes = b"", ok: bool = True) -> str:
            result = subprocess.run([*CLI, "--config", str(daemon.config_path), *args],
                                    input=stdin, capture_output=True, timeout=60,
                                    cwd=daemon.root)
            if ok:
                assert result.returncode == 0, (args, result.stdout, result.stderr)
            return result.stdout.decode() + result.stderr.decode()

        cli("domain", "create", "example.org")
        cli("domain", "create", "example.net")
        cli("account", "create", "alice", "--email", "alice@example.org", "--password", "-",
            stdin=b"alice-password\n")
        for domain in ("example.org", "example.net"):
            printed = cli("dkim", "create", domain, "--algorithm", "rsa-sha256")
            zone = dns.zone(domain)
            for name, strings in _zone_lines(printed):
                zone.add(name + ".", "TXT", strings)
        dns.publish()
        out = cli("alias", "create", "info@example.org", "--to", "alice@example.org",
                  "--to", "bob@remote.test")
        assert "created alias info@example.org" in out
        cli("alias", "create", "out@example.net", "--to", "carol@far.test")
        assert "bob@remote.test" in cli("alias", "list")
        refused = cli("alias", "create", "bob@remote.test", "--to", "x@far.test", ok=False)
        assert "not a local domain" in refused

        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.ehlo("client.sender.test")
            # Relay tricks on the forward's address reach nobody.
            for rcpt, code in (("bob@remote.test", 550), ("info%bob@example.org", 550),
                               ("bob%remote.test@example.org", 550),
                               ('"bob@remote.test"@example.org', 550)):
                client.mail("x@sender.test")
                assert client.rcpt(rcpt)[0] == code, rcpt
                client.rset()
            assert client.sendmail("x@sender.test", ["info@example.org"],
                                   _message("first hop")) == {}
            with pytest.raises(smtplib.SMTPDataError) as loop:
                client.sendmail("x@sender.test", ["info@example.org"],
                                _message("looping", received=101))
            assert loop.value.smtp_code == 554 and loop.value.smtp_error.startswith(b"5.4.6")

        wait_for(lambda: sink.messages, timeout=30, message="the forwarded copy")
        [first] = sink.messages
        assert first.rcpt_to == ["bob@remote.test"]
        assert first.mail_from == "x@sender.test"
        data = first.data
        assert data.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.org;")
        aar = re.search(rb"ARC-Authentication-Results: i=1; ((?:[^\r\n]|\r\n[ \t])*)",
                        data).group(1)
        assert aar.startswith(b"mx.test.invalid;") and b"spf=pass" in aar
        assert b"DKIM-Signature" not in data

        def dnsfunc(name, timeout=5):
            answer = dns.query(name.decode().rstrip("."), "TXT").answer
            return b"".join(answer[0][0].strings) if answer else b""

        cv, results, reason = dkimpy.arc_verify(data, dnsfunc=dnsfunc)
        assert cv == b"pass", reason

        # Alice has her copy (and only one: the looping message was refused).
        m = imaplib.IMAP4("127.0.0.1", imap, timeout=10)
        try:
            assert m.login("alice", "alice-password")[0] == "OK"
            status, count = m.select("INBOX", readonly=True)
            assert status == "OK" and count == [b"1"]
            body = m.fetch("1", "(BODY.PEEK[])")[1][0][1]
            assert b"Subject: first hop" in body and b"ARC-Seal" not in body
        finally:
            m.logout()

        # The forwarded copy comes back in to a forward of example.net: i=2, cv=pass.
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.ehlo("client.sender.test")
            assert client.sendmail("x@sender.test", ["out@example.net"], data) == {}
        wait_for(lambda: len(sink.messages) == 2, timeout=30, message="the second hop")
        second = sink.messages[1]
        assert second.rcpt_to == ["carol@far.test"]
        assert re.match(rb"ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=example\.net;", second.data)
        cv, results, reason = dkimpy.arc_verify(second.data, dnsfunc=dnsfunc)
        assert cv == b"pass", reason
        assert sorted(r["instance"] for r in results) == [1, 2]
        assert daemon.stop() == 0
    finally:
        sink.stop()
