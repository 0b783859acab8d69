"""Our MTA-STS policy served by the real daemon's http pool at
``/.well-known/mta-sts.txt``: only for ``Host: mta-sts.<one of our domains>``, as
``text/plain``, built from ``auth.mta-sts.*``; and fetched over HTTPS (implicit-TLS http
listener, certificate from a test CA) by our own MTA-STS client, which parses it back.

Ports: 23300-23399 (NSD: 23340-23399)."""

from __future__ import annotations

import asyncio
import http.client
import random
import smtplib
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from stalwart.dns import FakeBackend, Resolver
from stalwart.mailauth.mtasts import fetch_policy, parse_policy

from .configs import certificate
from .certs import daemon_certificate
from .conftest import wait_for
from .dnsserver import DnsServer
from .test_mtasts_queue import ENFORCE, BoundSink, LocalCA, PolicyServer

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "stalwart.cli.main"]


def _port(taken: set[int]) -> int:
    for _ in range(200):
        port = random.randint(23300, 23399)
        if port in taken:
            continue
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):     # NSD takes both
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        taken.add(port)
        return port
    raise RuntimeError("no free port in 23300-23399")


def _get(port: int, host: str, path: str = "/.well-known/mta-sts.txt"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.getheader("content-type"), response.read()
    finally:
        conn.close()


def test_policy_served_for_our_domains_only(daemon, tmp_path):
    ca = LocalCA(tmp_path)
    cert, key = ca.issue("mta-sts.example.org")
    taken: set[int] = set()
    plain, tls = _port(taken), _port(taken)
    daemon.configure(listeners=[("http", "http", plain)], server={"hostname": "mx1.example.org"},
                     extra=f"""
[[server.listener]]
id = "https"
protocol = "http"
bind = "127.0.0.1:{tls}"
tls.implicit = true

[certificate.default]
cert = "%{{file:{cert}}}%"
private-key = "%{{file:{key}}}%"

[auth.mta-sts]
mode = "enforce"
mx = ["mx1.example.org", "*.mx.example.org"]
max-age = "1d"
""")
    daemon.ports.append(tls)
    daemon.start()
    result = subprocess.run([*CLI, "--config", str(daemon.config_path), "domain", "create",
                             "example.org"], capture_output=True, timeout=60, cwd=daemon.root)
    assert result.returncode == 0, result.stderr

    expected = (b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\n"
                b"mx: *.mx.example.org\r\nmax_age: 86400\r\n")
    status, ctype, body = _get(plain, "mta-sts.example.org")
    assert (status, ctype, body) == (200, "text/plain; charset=utf-8", expected)
    assert _get(plain, "MTA-STS.Example.org:443")[2] == expected
    assert _get(plain, "mta-sts.other.org")[0] == 404           # not our domain
    assert _get(plain, "example.org")[0] == 404                 # not the mta-sts host
    assert _get(plain, "mta-sts.")[0] == 404

    # Our own MTA-STS client fetches it over HTTPS, checking the certificate.
    resolver = Resolver(FakeBackend({"mta-sts.example.org": {"A": "127.0.0.1"}}))
    policy = asyncio.run(fetch_policy("example.org", resolver, port=tls,
                                      ssl_context=ca.client_context(), timeout=20))
    assert policy == parse_policy(expected)
    assert policy.matches("mx1.example.org") and policy.matches("a.mx.example.org")
    assert daemon.stop() == 0


class Background:
    """An event loop in a thread hosting asyncio servers (the policy site, the MX sinks)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.entered: list = []

    def enter(self, server):
        asyncio.run_coroutine_threadsafe(server.__aenter__(), self.loop).result(10)
        self.entered.append(server)
        return server

    def close(self) -> None:
        for server in reversed(self.entered):
            asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None),
                                             self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def dns_server(tmp_path_factory):
    """NSD (``dnsserver.DnsServer``) on a port of this file's range."""
    server = DnsServer(tmp_path_factory.mktemp("dns"), port=_port(set(range(23300, 23340))))
    yield server
    server.stop()


def test_queue_enforces_a_policy_end_to_end(daemon, dns_server, tmp_path):
    """Submitted mail to a domain with an enforce policy (TXT from NSD, policy over HTTPS
    on a test port, certificates from a test CA trusted through SSL_CERT_FILE) goes to
    the MX host the policy names, over verified TLS, and never to the preferred MX host
    it does not name; a message submitted with REQUIRETLS keeps it up to that host."""
    ca = LocalCA(tmp_path)
    taken: set[int] = set()
    submission, https, smtp, http_port = (_port(taken) for _ in range(4))
    bg = Background()
    try:
        site = bg.enter(PolicyServer(https, ca.server_context("mta-sts.dest.test"), ENFORCE))
        ext = ("PIPELINING", "8BITMIME", "SIZE 10000000", "ENHANCEDSTATUSCODES", "REQUIRETLS")
        good = bg.enter(BoundSink("127.0.0.1", smtp, extensions=ext,
                                  tls=ca.server_context("mx.dest.test")))
        evil = bg.enter(BoundSink("127.0.0.2", smtp, extensions=ext,
                                  tls=ca.server_context("evil.dest.test")))
        dns_server.zone("dest.test", [
            ("@", "MX", "5 evil"), ("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1"),
            ("evil", "A", "127.0.0.2"), ("mta-sts", "A", "127.0.0.1"),
            ("_mta-sts", "TXT", "v=STSv1; id=e2e1"),
            ("_smtp._tls", "TXT", "v=TLSRPTv1; rua=mailto:tls@dest.test")])
        dns_server.publish()
        daemon_certificate(daemon.root)
        daemon.configure(listeners=[("submission", "smtp", submission),
                                    ("http", "http", http_port)], extra=f"""
[queue]
retry = ["1h"]
poll-interval = "200ms"
mx-port = {smtp}

[queue.mta-sts]
port = {https}

[resolver]
nameservers = ["{dns_server.address}"]

{certificate(daemon.root)}
""")
        daemon.start(env={"SSL_CERT_FILE": str(ca.cafile)})

        def cli(*args: str, stdin: bytes = b"") -> None:
            result = subprocess.run([*CLI, "--config", str(daemon.config_path), *args],
                                    input=stdin, capture_output=True, timeout=60,
                                    cwd=daemon.root)
            assert result.returncode == 0, (args, result.stdout, result.stderr)

        cli("domain", "create", "example.org")
        cli("account", "create", "jane", "--email", "jane@example.org", "--password", "-",
            stdin=b"jane-password\n")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        message = ("From: jane@example.org\r\nTo: bob@dest.test\r\nSubject: sts\r\n"
                   "Message-ID: <sts-1@example.org>\r\n\r\nover verified TLS\r\n")
        with smtplib.SMTP("127.0.0.1", submission, timeout=30) as client:
            client.starttls(context=context)
            client.login("jane", "jane-password")
            assert client.sendmail("jane@example.org", ["bob@dest.test"], message) == {}
            # REQUIRETLS (RFC 8689) from the submission client to the MX host.
            client.sendmail("jane@example.org", ["bob@dest.test"],
                            message.replace("sts-1@", "sts-2@"), mail_options=["REQUIRETLS"])
        wait_for(lambda: len(good.messages) == 2, timeout=60,
                 message="the allowed MX to get both messages")
        assert b"over verified TLS" in good.messages[0]
        assert all(s.tls for s in good.sessions) and evil.sessions == []
        mail_from = [c for c in good.commands if c.startswith("MAIL FROM")]
        assert [c.endswith(" REQUIRETLS") for c in mail_from].count(True) == 1, mail_from
        assert len(site.requests) == 1
        assert daemon.stop() == 0
    finally:
        bg.close()
