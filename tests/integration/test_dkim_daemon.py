"""DKIM signing through the real ``stalwart-master``: ``stalwart-cli dkim create`` makes the
keys of a domain and prints the TXT records; a message submitted with smtplib (STARTTLS,
AUTH) leaves through the queue to a smarthost sink signed with RSA-SHA256 and
Ed25519-SHA256; both signatures verify, with our verifier and with dkimpy, against exactly
the records the CLI printed (served by a fake DNS for ours, a lookup function for dkimpy).

With ``auth.dkim.sign.*`` set, the same path signs as configured (the SMTP worker hands
``SignOptions`` to its ``LocalDelivery``): only the allowed algorithm, the chosen
canonicalization and header list, an ``x=``; dkimpy still verifies.

Ports: from the test range (``ports.free_port``).
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
import subprocess
import sys

import dkim as dkimpy
import pytest

from stalwart.dns import FakeBackend, Resolver
from stalwart.mailauth import dkim

from .configs import certificate, smarthost
from .certs import daemon_certificate
from . import ports
from . import test_queue_daemon as queue_tests
from .conftest import wait_for

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "stalwart.cli.main"]


def _port(taken: set[int]) -> int:
    """A loopback port from the test range (``STALWART_TEST_PORTS``, ``ports.py``)."""
    port = ports.free_port()
    taken.add(port)
    return port


def _zone(text: str) -> dict:
    zone = {}
    for name, strings in re.findall(r"^(\S+)\. IN TXT \( (.*) \)$", text, re.M):
        zone[name] = {"TXT": tuple(re.findall(r'"([^"]*)"', strings))}
    return zone


def _submit_signed(daemon, monkeypatch, config: str = "") -> tuple[bytes, dict]:
    """Make example.org's keys with the CLI, submit a message from jane@example.org to a
    remote address, and return what the smarthost sink received and the CLI's records."""
    monkeypatch.setattr(queue_tests, "SINK_PORTS", [ports.free_port() for _ in range(3)])
    sink = queue_tests.Sink().start()
    try:
        taken: set[int] = set()
        submission, http = _port(taken), _port(taken)
        daemon_certificate(daemon.root)
        daemon.configure(listeners=[("submission", "smtp", submission), ("http", "http", http)],
                         extra=f"""
[queue]
retry = ["1h"]
poll-interval = "200ms"

{smarthost(sink.port)}

{certificate(daemon.root)}
{config}""")
        daemon.start()

        def cli(*args: str, stdin: bytes = b"") -> str:
            result = subprocess.run([*CLI, "--config", str(daemon.config_path), *args],
                                    input=stdin, capture_output=True, timeout=60,
                                    cwd=daemon.root)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
            return result.stdout.decode()

        cli("domain", "create", "example.org")
        cli("account", "create", "jane", "--email", "jane@example.org", "--password", "-",
            stdin=b"jane-password\n")
        created = cli("dkim", "create", "example.org")
        zone = _zone(created)
        assert len(zone) == 2, created
        assert _zone(cli("dkim", "dns", "example.org")) == zone
        listing = cli("dkim", "list", "example.org")
        assert "rsa-sha256" in listing and "ed25519-sha256" in listing

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        message = ("From: Jane <jane@example.org>\r\nTo: carol@remote.test\r\n"
                   "Subject: signed\r\nMessage-ID: <signed-1@example.org>\r\n"
                   "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\n"
                   "Hello Carol,\r\n  with trailing spaces  \r\n\r\n\r\n")
        with smtplib.SMTP("127.0.0.1", submission, timeout=30) as client:
            client.starttls(context=context)
            client.login("jane", "jane-password")
            assert client.sendmail("jane@example.org", ["carol@remote.test"], message) == {}
        wait_for(lambda: sink.messages, timeout=30, message="the sink to receive the mail")
        return sink.messages[0].data, zone
    finally:
        sink.stop()


def _dkimpy_lookup(zone: dict):
    def lookup(name, timeout=5):
        entry = zone.get(name.decode().rstrip("."))
        return "".join(entry["TXT"]).encode() if entry else None
    return lookup


def test_submitted_mail_leaves_signed_with_the_keys_the_cli_printed(daemon, monkeypatch):
    data, zone = _submit_signed(daemon, monkeypatch)
    assert data.startswith(b"DKIM-Signature:")

    results = asyncio.run(dkim.verify(data, Resolver(FakeBackend(zone))))
    assert sorted((r.result, r.algorithm, r.domain) for r in results) == [
        ("pass", "ed25519-sha256", "example.org"), ("pass", "rsa-sha256", "example.org")]

    lookup = _dkimpy_lookup(zone)
    checker = dkimpy.DKIM(data)
    assert checker.verify(idx=0, dnsfunc=lookup) and checker.verify(idx=1, dnsfunc=lookup)


def test_signing_options_from_the_config(daemon, monkeypatch):
    data, zone = _submit_signed(daemon, monkeypatch, config="""
[auth.dkim.sign]
algorithms = ["rsa-sha256", "ed25519-sha256"]
canonicalization = "simple/simple"
headers = ["from", "subject", "message-id"]
expire = "1d"
""")
    fields = re.findall(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", data, re.M | re.S)
    assert len(fields) == 2
    for field in fields:
        tags = dict(t.split("=", 1) for t in re.sub(r"\s+", "", field.decode()).split(";") if t)
        assert tags["c"] == "simple/simple" and tags["h"] == "from:subject:message-id:from"
        assert int(tags["x"]) == int(tags["t"]) + 86400
    lookup = _dkimpy_lookup(zone)
    checker = dkimpy.DKIM(data)
    assert checker.verify(idx=0, dnsfunc=lookup) and checker.verify(idx=1, dnsfunc=lookup)
