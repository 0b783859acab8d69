"""Delivery to Postfix through a validating resolver: DNSSEC-signed zones on loopback.

NSD serves three zones, each ``MX 10 mx`` / ``mx A 127.0.0.1``: ``secure.test`` (signed),
``peer.test`` (not signed) and ``bogus.test`` (signed, but its signatures have expired).
Unbound in front of NSD trusts the two signed zones' keys (``dnsserver`` module); the
daemon's ``resolver.nameservers`` is Unbound. Postfix (``postfixpeer``) takes mail for
user1 of all three domains on ``queue.mx-port``.

Shown here (the ground DANE stands on):
- ``stalwart.dns`` sees the AD bit: MX, address, TLSA and (long, multi-string) TXT
  answers from the signed zone are ``secure``, a validated NXDOMAIN too; the unsigned zone's are not; the bogus zone is a
  temporary failure (Unbound answers SERVFAIL), never an insecure answer.
- The queue delivers to the signed and the unsigned domain through the resolver; mail for
  the bogus domain stays queued with 451 4.4.3 and is delivered once the zone is signed
  properly again and the message retried.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys

import pytest

from stalwart.dns import NxDomain, Resolver, TempFail

from .configs import certificate, memory_directory, resolver
from .conftest import wait_for
from .dnsserver import dns_server, free_port  # noqa: F401  (fixture)
from .postfixpeer import Postfix, self_signed
from .test_postfix_peer import Peers

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "stalwart.cli.main"]
ZONE = [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1")]
TLSA_DATA = "8d02536c887482bc34ff54e41d2ba659bf85b341a0a20afadb5813dcfbcf286d"
DKIM_KEY = "v=DKIM1; k=rsa; p=" + "A" * 400             # longer than one TXT string


@pytest.fixture
def secure_peers(daemon, dns_server, request):
    ports = {name: free_port() for name in ("submission", "imap", "http", "postfix")}
    dns_server.zone("secure.test", ZONE, signed=True).extend([
        ("_25._tcp.mx", "TLSA", f"3 1 1 {TLSA_DATA}"),
        ("sel._domainkey", "TXT", DKIM_KEY)])
    dns_server.zone("peer.test", ZONE)
    bogus = dns_server.zone("bogus.test", ZONE, signed=True)
    bogus.signature_window = (datetime.timedelta(days=-10), datetime.timedelta(days=-1))
    dns_server.publish()
    unbound = dns_server.validating_resolver()
    postfix = Postfix(ports["postfix"], domains=("secure.test", "peer.test", "bogus.test"),
                      users=("user1",))
    self_signed("mx.test.invalid", daemon.root / "cert.pem", daemon.root / "key.pem")
    daemon.configure(
        listeners=[("submission", "smtp", ports["submission"]), ("imap", "imap", ports["imap"]),
                   ("http", "http", ports["http"])],
        extra=f"""
{resolver(unbound.address)}

[queue]
mx-port = {ports['postfix']}
poll-interval = "200ms"
retry = ["1h"]

{certificate(daemon.root)}

{memory_directory(("jane", "jane-password", ["jane@example.test"]))}
""")
    try:
        postfix.start()
        daemon.start()
        daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30,
                        message="the memory directory")
        yield Peers(daemon, dns_server, postfix, ports), unbound
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            sys.stderr.write(f"\n--- postfix log ---\n{postfix.log()[-6000:]}\n"
                             f"--- unbound log ---\n"
                             f"{unbound.log_path.read_text(errors='replace')[-4000:]}\n")
        postfix.stop()


def test_the_resolver_sees_the_ad_bit_of_signed_zones_only(secure_peers):
    _peers, unbound = secure_peers

    async def lookups():
        resolver = Resolver.from_settings([unbound.address], timeout=2.0, lifetime=6.0)
        secure_mx = await resolver.mx_hosts("secure.test")
        secure_a = await resolver.addresses("mx.secure.test")
        plain_mx = await resolver.mx_hosts("peer.test")
        plain_a = await resolver.addresses("mx.peer.test")
        tlsa = await resolver.tlsa("_25._tcp.mx.secure.test")
        dkim = await resolver.txt("sel._domainkey.secure.test")
        with pytest.raises(NxDomain) as missing:
            await resolver.a("nothere.secure.test")
        with pytest.raises(TempFail):
            await resolver.mx_hosts("bogus.test")
        return secure_mx, secure_a, plain_mx, plain_a, tlsa, dkim, missing.value
    secure_mx, secure_a, plain_mx, plain_a, tlsa, dkim, missing = asyncio.run(lookups())
    assert [h.host for h in secure_mx.hosts] == ["mx.secure.test"] and secure_mx.secure
    assert secure_a.ipv4 == ("127.0.0.1",) and secure_a.secure
    assert [h.host for h in plain_mx.hosts] == ["mx.peer.test"] and not plain_mx.secure
    assert plain_a.ipv4 == ("127.0.0.1",) and not plain_a.secure
    assert missing.secure                                 # NSEC-proven non-existence
    # What DANE (RFC 7672) and DKIM read: a validated TLSA record, a long TXT record whole.
    assert tlsa.secure and [(t.usage, t.selector, t.mtype, t.data.hex())
                            for t in tlsa.records] == [(3, 1, 1, TLSA_DATA)]
    assert dkim.secure and list(dkim.records) == [DKIM_KEY]


def test_delivery_through_the_validating_resolver_and_a_bogus_zone(secure_peers):
    peers, unbound = secure_peers
    peers.submit(["user1@secure.test", "user1@peer.test", "user1@bogus.test"], "dnssec")
    for address in ("user1@secure.test", "user1@peer.test"):
        got = wait_for(lambda: peers.postfix.messages(address), timeout=30,
                       message=f"{address}'s copy")
        assert len(got) == 1 and b"Subject: dnssec" in got[0]

    def cli(*args: str) -> str:
        result = subprocess.run([*CLI, "--config", str(peers.daemon.config_path), *args],
                                capture_output=True, timeout=60, cwd=peers.daemon.root)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout.decode()

    def deferred() -> dict | None:
        queued = json.loads(cli("--json", "queue", "list"))["messages"]
        return queued[0] if len(queued) == 1 and queued[0]["attempts"] else None
    entry = wait_for(deferred, timeout=30, message="the bogus domain's mail to be deferred")
    show = cli("queue", "show", str(entry["id"]))
    assert "user1@bogus.test" in show and "451 4.4.3" in show and "pending" in show
    pending = [r["address"] for r in entry["recipients"] if r["status"] == "pending"]
    assert pending == ["user1@bogus.test"]
    assert peers.postfix.messages("user1@bogus.test") == []
    assert peers.inbox("jane") == []                      # deferred, not bounced

    # Signed properly again: the retried message goes through.
    peers.dns.zone("bogus.test").signature_window = (datetime.timedelta(hours=-2),
                                                     datetime.timedelta(days=7))
    peers.dns.publish()
    assert unbound.query("bogus.test", "MX").rcode() == 0
    cli("queue", "retry", str(entry["id"]))
    got = wait_for(lambda: peers.postfix.messages("user1@bogus.test"), timeout=30,
                   message="the retried delivery")
    assert len(got) == 1 and b"Subject: dnssec" in got[0]
    wait_for(lambda: json.loads(cli("--json", "queue", "list"))["messages"] == [],
             timeout=20, message="an empty queue")
