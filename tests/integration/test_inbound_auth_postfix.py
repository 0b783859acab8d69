"""Postfix as the sending MTA, our verdicts on both sides: SPF, DMARC and BIMI of mail that
Postfix (``mx.peer.test`` on loopback, ``postfixpeer.Postfix``) relays to us, with every
zone served by a real authoritative DNS server (NSD, ``dnsserver.DnsServer``) that the
daemon's ``resolver.nameservers`` points at.

- ``peer.test`` (SPF allows 127.0.0.1, DMARC p=reject, a BIMI record): mail from
  user1@peer.test lands in alice's INBOX with ``spf=pass``, ``dmarc=pass``, ``bimi=pass``
  and our ``BIMI-Location``; the ``BIMI-Location`` the sender wrote is gone. (Fetching
  the logo needs a public HTTPS server: ``auth.bimi.indicator`` is off here; the unit
  tests fetch it from a local one.)
- ``bank.test`` (DMARC p=reject): a message whose From claims ceo@bank.test but that
  Postfix relays for user2@peer.test is refused after DATA with ``550 5.7.1``; Postfix
  bounces it to user2 quoting our reply (its side of the verdict).
- ``promo.test`` (DMARC p=quarantine): filed into alice's Junk mailbox.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import smtplib

import pytest

from .configs import certificate, memory_directory, resolver
from .conftest import wait_for
from .dnsserver import DnsServer, free_port
from .postfixpeer import Postfix, self_signed

pytestmark = pytest.mark.integration

LOGO = "https://peer.test/brand/logo.svg"


@pytest.fixture
def setup(daemon, tmp_path):
    dns = DnsServer(tmp_path / "dns")
    dns.zone("peer.test", [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1"),
                           ("mx", "TXT", "v=spf1 a -all"),
                           ("@", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
                           ("_dmarc", "TXT", "v=DMARC1; p=reject"),
                           ("default._bimi", "TXT", f"v=BIMI1; l={LOGO}")])
    dns.zone("bank.test", [("@", "TXT", "v=spf1 -all"),
                           ("_dmarc", "TXT", "v=DMARC1; p=reject")])
    dns.zone("promo.test", [("@", "TXT", "v=spf1 -all"),
                            ("_dmarc", "TXT", "v=DMARC1; p=quarantine")])
    dns.publish()
    ports = {"smtp": free_port(), "imap": free_port(), "postfix": free_port()}
    postfix = Postfix(ports["postfix"], hostname="mx.peer.test", domains=("peer.test",),
                      users=("user1", "user2"),
                      transports={"example.test": f"smtp:[127.0.0.1]:{ports['smtp']}"})
    self_signed("mx.test.invalid", daemon.root / "cert.pem", daemon.root / "key.pem")
    daemon.configure(listeners=[("smtp", "smtp", ports["smtp"]),
                                ("imap", "imap", ports["imap"])], extra=f"""
{resolver(dns.address, lifetime="4s")}

[auth.bimi]
indicator = false          # the logo would have to be on a public HTTPS server

{certificate(daemon.root)}

{memory_directory(("alice", "alice-password", ["alice@example.test"]))}
""")
    try:
        postfix.start()
        daemon.start()
        daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30)
        yield postfix, ports
    finally:
        postfix.stop()
        dns.stop()


def _mailbox(port: int, name: str) -> list[bytes]:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        imap.login("alice", "alice-password")
        status, _ = imap.select(name, readonly=True)
        assert status == "OK"
        _, data = imap.uid("SEARCH", "ALL")
        return [imap.uid("FETCH", uid, "(BODY.PEEK[])")[1][0][1] for uid in data[0].split()]
    finally:
        imap.logout()


def _send(postfix: Postfix, mail_from: str, header_from: str, subject: str,
          extra: str = "") -> None:
    message = (f"{extra}From: {header_from}\r\nTo: alice@example.test\r\n"
               f"Subject: {subject}\r\nMessage-ID: <{subject}@peer.test>\r\n\r\nHello.\r\n")
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
        client.ehlo("client.peer.test")
        assert client.sendmail(mail_from, ["alice@example.test"], message) == {}


def test_postfix_relayed_mail_gets_our_verdicts(setup):
    postfix, ports = setup
    _send(postfix, "user1@peer.test", "User One <user1@peer.test>", "aligned",
          extra="BIMI-Location: v=BIMI1; l=https://evil.test/fake.svg\r\n")
    _send(postfix, "user2@peer.test", "CEO <ceo@bank.test>", "forged")
    _send(postfix, "user1@peer.test", "Promo <news@promo.test>", "promo")

    inbox = wait_for(lambda: _mailbox(ports["imap"], "INBOX"), timeout=30,
                     message="the aligned message")
    junk = wait_for(lambda: _mailbox(ports["imap"], "Junk"), timeout=30,
                    message="the quarantined message")
    assert len(inbox) == 1 and len(junk) == 1
    good = email.message_from_bytes(inbox[0], policy=email.policy.default)
    assert good["Subject"] == "aligned"
    results = re.sub(r"\s+", " ", str(good["Authentication-Results"]))
    assert results.startswith("mx.test.invalid;")
    assert "spf=pass smtp.mailfrom=user1@peer.test" in results
    assert "spf=pass smtp.helo=mx.peer.test" in results         # Postfix's HELO name
    assert "dmarc=pass (p=REJECT dis=NONE) header.from=peer.test" in results
    assert "bimi=pass header.d=peer.test header.selector=default" in results
    assert [re.sub(r"\s+", " ", str(v)) for v in good.get_all("BIMI-Location")] == \
        [f"v=BIMI1; l={LOGO}"]
    assert str(good["Received-SPF"]).startswith("pass (mx.test.invalid: domain of "
                                                "user1@peer.test designates 127.0.0.1")
    quarantined = email.message_from_bytes(junk[0], policy=email.policy.default)
    assert quarantined["Subject"] == "promo"
    assert "dmarc=fail (p=QUARANTINE dis=QUARANTINE) header.from=promo.test" in \
        re.sub(r"\s+", " ", str(quarantined["Authentication-Results"]))

    # Postfix's side: the forged message came back to its sender with our 550 5.7.1.
    bounce = wait_for(lambda: postfix.messages("user2@peer.test"), timeout=30,
                      message="Postfix's bounce of the forged message")
    text = bounce[0].decode(errors="replace")
    assert "Final-Recipient: rfc822; alice@example.test" in text
    wanted = r"Diagnostic-Code: smtp; 550 5.7.1 Message rejected by the DMARC policy of " \
             r"the sender domain"
    assert re.search(r"\s+".join(map(re.escape, wanted.split())), text), text
    assert re.search(r"to=<alice@example\.test>, relay=127\.0\.0\.1.*status=bounced "
                     r"\(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.7\.1", postfix.log())
