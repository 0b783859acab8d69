"""Inbound SPF/DKIM/DMARC through the real daemon: smtplib sends from 127.0.0.1, a real
authoritative DNS server (NSD, ``tests/integration/dnsserver.py``) on loopback serves the
senders' zones, ``resolver.nameservers`` points the daemon at it, and imaplib reads what
was filed where.

Zones (every client is 127.0.0.1):
- ``good.test``: SPF allows 127.0.0.1, DMARC p=reject: pass, INBOX.
- ``reject.test``: SPF ``-all``, DMARC p=reject: 550 5.7.1 after DATA.
- ``quarantine.test``: SPF ``-all``, DMARC p=quarantine: filed into Junk.
- ``signed.test``: SPF ``-all``, DMARC p=reject, but the message carries a DKIM signature
  by dkimpy with the key published at ``sel._domainkey.signed.test``: DMARC passes on
  DKIM alone, INBOX.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import gzip
import imaplib
import smtplib
import time
from xml.etree import ElementTree as ET

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .configs import memory_directory, resolver
from .dnsserver import DnsServer

pytestmark = pytest.mark.integration

HOST = "mx.test.invalid"


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(tmp_path / "dns")
    yield server
    server.stop()


def _dkim_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(public).decode()


def _message(sender: str, subject: str) -> bytes:
    return (f"From: Sender <{sender}>\r\nTo: jane@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@test>\r\n"
            f"Authentication-Results: {HOST}; dmarc=pass header.from=forged.test\r\n"
            f"\r\nHello Jane.\r\n").encode()


def _fetch_all(imap_port: int, mailbox: str) -> list[bytes]:
    m = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    try:
        assert m.login("jane", "jane-password")[0] == "OK"
        status, data = m.select(mailbox, readonly=True)
        assert status == "OK", data
        count = int(data[0])
        out = []
        for i in range(1, count + 1):
            out.append(m.fetch(str(i), "(BODY.PEEK[])")[1][0][1])
        return out
    finally:
        m.logout()


def test_spf_dkim_dmarc_verdicts_through_the_daemon(dns, daemon):
    import dkim as dkimpy                           # the independent signer

    private, public = _dkim_key()
    dns.zone("good.test", [("@", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
                           ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test")])
    dns.zone("reject.test", [("@", "TXT", "v=spf1 -all"),
                             ("_dmarc", "TXT", "v=DMARC1; p=reject")])
    dns.zone("quarantine.test", [("@", "TXT", "v=spf1 -all"),
                                 ("_dmarc", "TXT", "v=DMARC1; p=quarantine")])
    dns.zone("signed.test", [("@", "TXT", "v=spf1 -all"),
                             ("_dmarc", "TXT", "v=DMARC1; p=reject"),
                             ("sel._domainkey", "TXT", f"v=DKIM1; k=rsa; p={public}")])
    dns.zone("elsewhere.test", [("@", "TXT", "v=spf1 -all")])
    dns.publish()

    smtp, imap = daemon.port(), daemon.port()
    daemon.configure(listeners=[("smtp", "smtp", smtp), ("imap", "imap", imap)], extra=f"""
{resolver(dns.address, lifetime="4s")}

{memory_directory(("jane", "jane-password", ["jane@example.com"]))}
""")
    daemon.start()
    daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=20)

    signed = _message("news@signed.test", "signed")
    signature = dkimpy.sign(signed, b"sel", b"signed.test", private,
                            include_headers=[b"from", b"to", b"subject", b"message-id"])
    with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as s:
        s.ehlo("client.test")
        s.sendmail("alice@good.test", ["jane@example.com"], _message("alice@good.test", "good"))
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail("mallory@reject.test", ["jane@example.com"],
                       _message("ceo@reject.test", "spoofed"))
        assert refused.value.smtp_code == 550
        assert refused.value.smtp_error.startswith(b"5.7.1 ")
        s.sendmail("bulk@quarantine.test", ["jane@example.com"],
                   _message("bulk@quarantine.test", "quarantined"))
        s.sendmail("bounce@elsewhere.test", ["jane@example.com"], signature + signed)

    inbox = _fetch_all(imap, "INBOX")
    junk = _fetch_all(imap, "Junk")
    subjects = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in inbox)
    assert subjects == [b"good", b"signed"]
    assert [m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in junk] == [b"quarantined"]

    good = next(m for m in inbox if b"Subject: good" in m)
    assert b"Received-SPF: pass (mx.test.invalid: domain of alice@good.test designates " \
           b"127.0.0.1 as permitted sender)" in good
    assert b"spf=pass smtp.mailfrom=alice@good.test" in good
    assert b"dmarc=pass (p=REJECT dis=NONE) header.from=good.test" in good
    assert b"forged.test" not in good               # the forged field was removed

    dkim_signed = next(m for m in inbox if b"Subject: signed" in m)
    assert b"dkim=pass header.d=signed.test header.s=sel header.a=rsa-sha256" in dkim_signed
    assert b"spf=fail smtp.mailfrom=bounce@elsewhere.test" in dkim_signed
    assert b"dmarc=pass" in dkim_signed
    # The stored message still verifies for an independent verifier (dkimpy), with the
    # key from our DNS server: the fields we prepend are outside the signature.
    def dnsfunc(name, timeout=5):
        answer = dns.query(name.decode().rstrip("."), "TXT").answer
        return b"".join(answer[0][0].strings) if answer else b""

    assert dkimpy.verify(dkim_signed, dnsfunc=dnsfunc)
    assert b"dmarc=fail (p=QUARANTINE dis=QUARANTINE) header.from=quarantine.test" in junk[0]
    # The DMARC row of good.test (it publishes rua=) reached the store, and the daily job
    # (run here as the scheduler runs it, a day later) queues the aggregate report.
    assert "could not record the DMARC result" not in daemon.log()
    report = asyncio.run(_run_report_job(daemon.config_path))
    assert report["recipients"] == ["dmarc@good.test"] and report["return_path"] == ""
    msg = email.message_from_bytes(report["message"], policy=email.policy.SMTP)
    assert msg["Subject"].startswith("Report Domain: good.test Submitter: mx.test.invalid")
    [attachment] = list(msg.iter_attachments())
    xml = ET.fromstring(gzip.decompress(attachment.get_content()))
    assert xml.findtext("policy_published/domain") == "good.test"
    assert xml.findtext("record/row/source_ip") == "127.0.0.1"
    assert xml.findtext("record/row/count") == "1"
    assert xml.findtext("record/row/policy_evaluated/spf") == "pass"
    assert xml.findtext("record/identifiers/header_from") == "good.test"
    assert daemon.stop() == 0


async def _run_report_job(config_path) -> dict:
    from stalwart.config import load
    from stalwart.mailauth.reports import report_identity, send_aggregate_reports
    from stalwart.queue.model import QueuedMessage
    from stalwart.store.api import Store

    config = load(config_path)
    store = await Store.open(config, name="test-dmarc-report", subscribe=False)
    try:
        hostname, org, sender = report_identity(config)
        result = await send_aggregate_reports(store, hostname=hostname, org_name=org,
                                              sender=sender, now=time.time() + 86400)
        assert result == {"reports": 1, "rows": 1}
        [entry] = [QueuedMessage.from_record(e) for e in store.queue_list()]
        return {"recipients": [r.address for r in entry.recipients],
                "return_path": entry.return_path, "message": store.blobs.get(entry.blob)}
    finally:
        await store.close()
