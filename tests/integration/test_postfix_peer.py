"""Postfix on loopback as our peer in both directions, MX answers from a real DNS server.

The daemon (``mx.test.invalid``, domain ``example.test``: jane and alice) runs with
``resolver.nameservers`` pointing at NSD (``dnsserver.DnsServer``) serving ``peer.test``
(``MX 10 mx.peer.test``, ``mx A 127.0.0.1``) and ``nullmx.test`` (``MX 0 .``), and with
``queue.mx-port`` set to the port of a Postfix instance (``postfixpeer.Postfix``,
``mx.peer.test``, users user1 and user2 of peer.test, STARTTLS on both its sides).
Postfix sends mail for example.test to our MX listener (transport map); what it delivers
is read from its Maildir files, what we deliver from IMAP.

Shown here:
- Postfix relays mail to us over STARTTLS: it lands in alice's INBOX with Return-Path,
  our Received (ESMTPS, from Postfix's HELO name) above Postfix's, the body unchanged
  (a line starting with a dot); a recipient we do not have is refused at RCPT and Postfix
  bounces it to its own sender quoting our reply.
- Our queue delivers to Postfix through the MX from DNS: one transaction for two
  recipients (one Postfix queue id, ``nrcpt=2``), over STARTTLS, headers on both sides.
- Postfix refuses one recipient of two: the other gets the mail, and jane gets a failure
  DSN (RFC 3464) naming the refused recipient, Postfix's reply and ``mx.peer.test``.
- DNS decides: a null MX domain (RFC 7505) and a name that does not exist bounce at once
  with 5.1.10 and 5.1.2, and nothing reaches Postfix.
- DSN parameters travel: NOTIFY=SUCCESS, ORCPT, ENVID and RET=HDRS go on to Postfix, whose
  success report comes back through our MX listener into jane's INBOX.
- 8-bit UTF-8 bodies (BODY=8BITMIME) arrive byte for byte in both directions.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import smtplib
import ssl
import sys
import time

import pytest

from .configs import certificate, memory_directory, resolver
from .conftest import wait_for
from .dnsserver import dns_server, free_port  # noqa: F401  (fixture)
from .postfixpeer import Postfix, self_signed

pytestmark = pytest.mark.integration


class Peers:
    def __init__(self, daemon, dns, postfix: Postfix, ports: dict[str, int]) -> None:
        self.daemon = daemon
        self.dns = dns
        self.postfix = postfix
        self.ports = ports

    def submit(self, rcpts: list[str], subject: str, body: str = "Hello Postfix.\r\n") -> bytes:
        """jane submits on our submission port (STARTTLS, AUTH PLAIN)."""
        message = (f"From: Jane <jane@example.test>\r\nTo: {', '.join(rcpts)}\r\n"
                   f"Subject: {subject}\r\nMessage-ID: <{subject}@example.test>\r\n"
                   f"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\n{body}").encode()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.ports["submission"], timeout=30) as client:
            client.starttls(context=context)
            client.login("jane", "jane-password")
            assert client.sendmail("jane@example.test", rcpts, message) == {}
        return message

    def inbox(self, user: str) -> list[bytes]:
        imap = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=30)
        try:
            imap.login(user, f"{user}-password")
            imap.select("INBOX", readonly=True)
            _, data = imap.uid("SEARCH", "ALL")
            out = []
            for uid in data[0].split():
                _, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                out.append(fetched[0][1])
            return out
        finally:
            imap.logout()


@pytest.fixture
def peers(daemon, dns_server, request):
    ports = {name: free_port() for name in ("smtp", "submission", "imap", "postfix")}
    dns_server.zone("peer.test", [("@", "MX", "10 mx"), ("mx", "A", "127.0.0.1")])
    dns_server.zone("nullmx.test", [("@", "MX", "0 .")])
    dns_server.publish()
    postfix = Postfix(ports["postfix"], hostname="mx.peer.test", domains=("peer.test",),
                      users=("user1", "user2"),
                      transports={"example.test": f"smtp:[127.0.0.1]:{ports['smtp']}"})
    self_signed("mx.test.invalid", daemon.root / "cert.pem", daemon.root / "key.pem")
    daemon.configure(
        listeners=[("smtp", "smtp", ports["smtp"]), ("submission", "smtp", ports["submission"]),
                   ("imap", "imap", ports["imap"])],
        extra=f"""
{resolver(dns_server.address)}

[queue]
mx-port = {ports['postfix']}
poll-interval = "200ms"
retry = ["1h"]

{certificate(daemon.root)}

{memory_directory(("jane", "jane-password", ["jane@example.test"]),
                  ("alice", "alice-password", ["alice@example.test"]))}
""")
    try:
        postfix.start()
        daemon.start()
        daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30,
                        message="the memory directory")
        yield Peers(daemon, dns_server, postfix, ports)
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            sys.stderr.write(f"\n--- postfix log ---\n{postfix.log()[-6000:]}\n")
        postfix.stop()


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _unfold(value: str) -> str:
    return re.sub(r"\s+", " ", str(value))


# ------------------------------------------------------------------ Postfix -> us

def test_postfix_relays_to_us_and_the_mail_lands_in_the_inbox(peers):
    body = "First line.\r\n.A line that starts with a dot.\r\nLast line.\r\n"
    message = ("From: User One <user1@peer.test>\r\nTo: Alice <alice@example.test>\r\n"
               "Subject: through postfix\r\nMessage-ID: <pf-1@peer.test>\r\n"
               "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\n" + body)
    with smtplib.SMTP("127.0.0.1", peers.postfix.port, timeout=30) as client:
        client.ehlo("client.peer.test")
        assert client.sendmail("user1@peer.test", ["alice@example.test"], message) == {}

    raw = wait_for(lambda: peers.inbox("alice"), timeout=30, message="alice's mail")
    assert len(raw) == 1
    got = _parse(raw[0])
    assert got["Return-Path"] == "<user1@peer.test>"
    assert got["Subject"] == "through postfix" and got["Message-ID"] == "<pf-1@peer.test>"
    received = [_unfold(r) for r in got.get_all("Received")]
    assert len(received) == 2, received
    ours, theirs = received
    # Ours on top: Postfix's HELO name, its address, our name, TLS (Postfix used STARTTLS).
    assert ours.startswith("from mx.peer.test ([127.0.0.1]) by mx.test.invalid with ESMTPS")
    assert "for <alice@example.test>" in ours
    # Postfix's below: the test client's HELO and Postfix's queue id.
    m = re.search(r"from client\.peer\.test \(localhost \[127\.0\.0\.1\]\) by mx\.peer\.test "
                  r"\(Postfix\) with ESMTP id ([0-9A-F]+)", theirs)
    assert m, theirs
    assert raw[0].endswith(body.encode())              # the dot line came through unstuffed
    log = peers.postfix.log()
    assert re.search(rf"{m.group(1)}: to=<alice@example.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]"
                     rf":{peers.ports['smtp']}, .*status=sent \(250 ", log), log[-2000:]
    assert re.search(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:"
                     rf"{peers.ports['smtp']}", log)

    # A recipient we do not have: refused at RCPT, so Postfix bounces to its sender.
    with smtplib.SMTP("127.0.0.1", peers.postfix.port, timeout=30) as client:
        client.sendmail("user2@peer.test", ["nobody@example.test"],
                        "Subject: to nobody\r\nMessage-ID: <pf-2@peer.test>\r\n\r\nhello\r\n")
    bounce = wait_for(lambda: peers.postfix.messages("user2@peer.test"), timeout=30,
                      message="Postfix's bounce to user2")
    text = bounce[0].decode(errors="replace")
    assert "Undelivered Mail Returned to Sender" in text
    assert "Final-Recipient: rfc822; nobody@example.test" in text
    assert re.search(r"Diagnostic-Code: smtp; 550 5\.1\.1", text), text
    assert "Remote-MTA: dns; 127.0.0.1" in text
    assert len(peers.inbox("alice")) == 1                # nothing else was delivered


# ------------------------------------------------------------------ us -> Postfix

def test_our_queue_delivers_to_postfix_through_the_mx_in_one_transaction(peers):
    peers.submit(["user1@peer.test", "user2@peer.test"], "two-rcpts",
                 body="Hello both.\r\n.dot\r\n")
    one = wait_for(lambda: peers.postfix.messages("user1@peer.test"), timeout=30,
                   message="user1's copy")
    two = wait_for(lambda: peers.postfix.messages("user2@peer.test"), timeout=30,
                   message="user2's copy")
    assert len(one) == 1 and len(two) == 1
    ids = []
    for address, raw in (("user1@peer.test", one[0]), ("user2@peer.test", two[0])):
        got = _parse(raw)
        assert got["Return-Path"] == "<jane@example.test>"
        assert got["Delivered-To"] == address
        assert got["Subject"] == "two-rcpts" and got["Message-ID"] == "<two-rcpts@example.test>"
        received = [_unfold(r) for r in got.get_all("Received")]
        assert len(received) == 2, received
        theirs, ours = received
        # Postfix saw our EHLO name, over TLS; no "for" with two recipients in one go.
        m = re.search(r"^from mx\.test\.invalid \(localhost \[127\.0\.0\.1\]\) \(using TLS"
                      r".*by mx\.peer\.test \(Postfix\) with ESMTPS id ([0-9A-F]+);", theirs)
        assert m, theirs
        ids.append(m.group(1))
        assert ours.startswith("from ") and "by mx.test.invalid with ESMTPSA" in ours, ours
        # The body is what jane sent (Maildir files have LF line ends).
        assert raw.endswith(b"Hello both.\n.dot\n")
    assert ids[0] == ids[1], ids                          # one Postfix message, two rcpts
    log = peers.postfix.log()
    assert re.search(rf"{ids[0]}: from=<jane@example\.test>, size=\d+, nrcpt=2 ", log), log
    assert "TLS connection established from localhost[127.0.0.1]" in log
    assert peers.inbox("jane") == []                      # no DSN for a success


def test_postfix_refuses_one_recipient_and_the_sender_gets_a_failure_dsn(peers):
    peers.submit(["user1@peer.test", "nobody@peer.test"], "half-bounce")
    wait_for(lambda: peers.postfix.messages("user1@peer.test"), timeout=30,
             message="user1's copy")
    dsn_raw = wait_for(lambda: peers.inbox("jane"), timeout=30, message="the DSN")
    assert len(dsn_raw) == 1
    dsn = _parse(dsn_raw[0])
    assert dsn["Return-Path"] == "<>"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    text = dsn_raw[0].decode(errors="replace")
    assert "\r\nTo: <jane@example.test>\r\n" in text
    assert re.search(r"Final-Recipient: rfc822; ?nobody@peer\.test\r\n", text)
    assert "Action: failed" in text and "Status: 5.1.1" in text
    assert "Remote-MTA: dns; mx.peer.test" in text
    assert re.search(r"Diagnostic-Code: smtp; 550 5\.1\.1 <nobody@peer\.test>: Recipient "
                     r"address rejected: User unknown in virtual mailbox table", text), text
    assert "user1@peer.test" not in text.split("Content-Type: message/delivery-status", 1)[1] \
        .split("--", 1)[0]                                # only the failed one is reported
    parts = list(dsn.iter_parts())
    assert [p.get_content_type() for p in parts] == \
        ["text/plain", "message/delivery-status", "message/rfc822"]
    returned = parts[2].get_content()
    assert returned["Subject"] == "half-bounce"
    assert len(peers.postfix.messages("user1@peer.test")) == 1
    assert peers.postfix.messages("nobody@peer.test") == []


def test_dns_answers_decide_null_mx_and_missing_domains_bounce_at_once(peers):
    peers.submit(["someone@nullmx.test", "someone@gone.peer.test"], "no-route")
    dsn_raw = wait_for(lambda: peers.inbox("jane"), timeout=30, message="the DSN")
    text = "".join(r.decode(errors="replace") for r in dsn_raw)
    assert re.search(r"Final-Recipient: rfc822; ?someone@nullmx\.test\r\nAction: failed\r\n"
                     r"Status: 5\.1\.10", text), text
    assert re.search(r"Final-Recipient: rfc822; ?someone@gone\.peer\.test\r\nAction: failed"
                     r"\r\nStatus: 5\.1\.2", text), text
    time.sleep(1)
    assert "from=<jane@example.test>" not in peers.postfix.log()   # nothing reached Postfix


def test_a_success_dsn_request_travels_to_postfix_and_its_report_comes_back(peers):
    """NOTIFY=SUCCESS and ORCPT go on to Postfix (it offers DSN, so it reports delivery
    itself, RFC 3461 5.2.2); its report comes back to jane through our MX listener."""
    message = ("From: Jane <jane@example.test>\r\nTo: user2@peer.test\r\n"
               "Subject: tell me\r\nMessage-ID: <tell-me@example.test>\r\n\r\n"
               "Please confirm.\r\n")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", peers.ports["submission"], timeout=30) as client:
        client.starttls(context=context)
        client.login("jane", "jane-password")
        assert client.sendmail("jane@example.test", ["user2@peer.test"], message,
                               mail_options=["RET=HDRS", "ENVID=tell-me-env"],
                               rcpt_options=["NOTIFY=SUCCESS",
                                             "ORCPT=rfc822;user2@peer.test"]) == {}
    wait_for(lambda: peers.postfix.messages("user2@peer.test"), timeout=30,
             message="user2's copy")
    report_raw = wait_for(lambda: peers.inbox("jane"), timeout=30,
                          message="Postfix's success report in jane's INBOX")
    assert len(report_raw) == 1
    report = _parse(report_raw[0])
    text = report_raw[0].decode(errors="replace")
    assert report["Return-Path"] == "<>"
    assert report.get_content_type() == "multipart/report"
    assert "Successful Mail Delivery Report" in report["Subject"]
    assert "Reporting-MTA: dns; mx.peer.test" in text
    assert "Original-Envelope-Id: tell-me-env" in text
    assert "Original-Recipient: rfc822;user2@peer.test" in text
    assert "Action: delivered" in text and "Status: 2.0.0" in text
    # RET=HDRS: Postfix returned the headers only.
    assert "Subject: tell me" in text and "Please confirm." not in text
    # Our Received on top: Postfix's report came in on the MX listener, over TLS.
    assert _unfold(report.get_all("Received")[0]).startswith(
        "from mx.peer.test ([127.0.0.1]) by mx.test.invalid with ESMTPS")


def test_eight_bit_content_arrives_unchanged_in_both_directions(peers):
    body = "Grüße aus Köln — 日本語のテキスト.\r\n.Zeile mit Punkt.\r\n"
    mime = ("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n")
    # Ours -> Postfix (BODY=8BITMIME on submission and on to Postfix).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    out = (f"From: jane@example.test\r\nTo: user1@peer.test\r\nSubject: 8bit out\r\n"
           f"{mime}\r\n{body}").encode()
    with smtplib.SMTP("127.0.0.1", peers.ports["submission"], timeout=30) as client:
        client.starttls(context=context)
        client.login("jane", "jane-password")
        assert client.sendmail("jane@example.test", ["user1@peer.test"], out,
                               mail_options=["BODY=8BITMIME"]) == {}
    got = wait_for(lambda: peers.postfix.messages("user1@peer.test"), timeout=30,
                   message="user1's copy")[0]
    assert got.endswith(body.replace("\r\n", "\n").encode())
    # Postfix -> ours.
    back = (f"From: user1@peer.test\r\nTo: alice@example.test\r\nSubject: 8bit in\r\n"
            f"{mime}\r\n{body}").encode()
    with smtplib.SMTP("127.0.0.1", peers.postfix.port, timeout=30) as client:
        assert client.sendmail("user1@peer.test", ["alice@example.test"], back,
                               mail_options=["BODY=8BITMIME"]) == {}
    raw = wait_for(lambda: peers.inbox("alice"), timeout=30, message="alice's copy")[0]
    assert raw.endswith(body.encode())
    assert _parse(raw).get_content() == body
