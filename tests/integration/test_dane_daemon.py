"""DANE in the running daemon: the queue process turns DANE on from the config (the
default), finds TLSA records through a validating resolver (Unbound over NSD, signed
zones) and delivers to Postfix only when Postfix's certificate matches them.

- ``dane.test`` (signed): ``_<port>._tcp.mx`` is ``3 0 1`` of Postfix's certificate ->
  delivered over TLS, the daemon logs the DANE match.
- ``wrong.test`` (signed): the TLSA record names another certificate -> the message stays
  queued with 451 4.7.5 (``stalwart-cli queue show``), Postfix never gets it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

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
[resolver]
nameservers = ["{unbound.address}"]
timeout = "2s"
lifetime = "6s"

[queue]
mx-port = {ports['postfix']}
poll-interval = "200ms"
retry = ["1h"]

[certificate.default]
cert = "%{{file:{daemon.root}/cert.pem}}%"
private-key = "%{{file:{daemon.root}/key.pem}}%"

[directory.memory]
type = "memory"

[[directory.memory.principals]]
name = "jane"
class = "individual"
secret = "jane-password"
email = ["jane@example.test"]
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
