"""DMARC aggregate reports: rows in the store, the daily job building the RFC 7489
Appendix C XML and queueing it, and the parsing of DMARC and TLS reports we receive."""

from __future__ import annotations

import asyncio
import email
import email.policy
import gzip
import io
import json
import zipfile
from email.message import EmailMessage
from xml.etree import ElementTree as ET

import pytest

from stalwart.dns import FakeBackend, Resolver
from stalwart.mailauth import reports
from stalwart.queue.model import QueuedMessage
from stalwart.store.api import Store
from stalwart.store.errors import StoreError

DAY = 86400
T0 = 1_790_000_000 // DAY * DAY          # a UTC midnight


def row(ip="192.0.2.1", disposition="none", dkim="pass", spf="fail", t=T0 + 3600,
        domain="example.org", rua=("mailto:dmarc@example.org",)):
    return {"time": t, "domain": domain, "rua": list(rua),
            "policy": {"domain": domain, "adkim": "r", "aspf": "s", "p": "reject",
                       "sp": "quarantine", "pct": 100},
            "source_ip": ip, "header_from": domain, "envelope_from": "bounce.example",
            "disposition": disposition, "dkim_aligned": dkim, "spf_aligned": spf,
            "sampled_out": False,
            "dkim": [{"domain": domain, "selector": "s1", "result": dkim}],
            "spf": [{"domain": "bounce.example", "scope": "mfrom", "result": "pass"}]}


def run(coro):
    return asyncio.run(coro)


def test_store_rows_pending_and_delete():
    async def go():
        store = Store.memory()
        ids = [await store.dmarc_record(row(t=T0 + i)) for i in range(3)]
        ids.append(await store.dmarc_record(row(t=T0 + DAY + 5)))
        pending = await store.dmarc_pending(T0 + DAY)
        assert [p[0] for p in pending] == ids[:3]
        assert await store.dmarc_delete(ids[:2]) == 2
        assert [p[0] for p in await store.dmarc_pending(T0 + 2 * DAY)] == ids[2:]
        with pytest.raises(StoreError):
            await store.dmarc_record({"time": 1})              # no domain
        with pytest.raises(StoreError):
            await store.dmarc_record(dict(row(), junk="x" * 70_000))   # too large
    run(go())


def test_aggregate_xml_folds_identical_rows():
    rows = [row(), row(), row(ip="198.51.100.7", disposition="reject", dkim="fail")]
    xml = reports.aggregate_xml("example.org", rows, org_name="mx.example.net",
                                email_addr="noreply@mx.example.net", report_id="r1",
                                begin=T0, end=T0 + DAY)
    root = ET.fromstring(xml)
    assert root.findtext("report_metadata/org_name") == "mx.example.net"
    assert root.findtext("report_metadata/date_range/begin") == str(T0)
    assert root.findtext("policy_published/domain") == "example.org"
    assert root.findtext("policy_published/aspf") == "s"
    assert root.findtext("policy_published/sp") == "quarantine"
    records = root.findall("record")
    assert [(r.findtext("row/source_ip"), r.findtext("row/count"),
             r.findtext("row/policy_evaluated/disposition")) for r in records] == [
        ("192.0.2.1", "2", "none"), ("198.51.100.7", "1", "reject")]
    assert records[0].findtext("auth_results/dkim/selector") == "s1"
    assert records[0].findtext("auth_results/spf/scope") == "mfrom"
    # Our own parser reads what we write.
    parsed = reports.parse_dmarc_xml(xml)
    assert parsed["messages"] == 3 and parsed["domain"] == "example.org"


def test_daily_job_queues_one_gzipped_report_per_domain():
    async def go():
        store = Store.memory()
        for r in (row(), row(), row(domain="other.example", rua=("mailto:r@reports.example",)),
                  row(domain="third.example", rua=("mailto:r@noconsent.example",)),
                  row(t=T0 + DAY + 10)):                      # today: not yet
            await store.dmarc_record(r)
        resolver = Resolver(FakeBackend({
            "other.example._report._dmarc.reports.example": {"TXT": "v=DMARC1"}}))
        result = await reports.send_aggregate_reports(
            store, hostname="mx.example.net", org_name="Example Net",
            sender="noreply-dmarc@mx.example.net", resolver=resolver, now=T0 + DAY + 3600)
        assert result == {"reports": 2, "rows": 4}
        queued = [QueuedMessage.from_record(r) for r in store.queue_list()]
        assert sorted(q.recipients[0].address for q in queued) == [
            "dmarc@example.org", "r@reports.example"]
        entry = next(q for q in queued if q.recipients[0].address == "dmarc@example.org")
        assert entry.return_path == ""
        msg = email.message_from_bytes(store.blobs.get(entry.blob), policy=email.policy.SMTP)
        assert msg["Subject"].startswith("Report Domain: example.org Submitter: Example Net "
                                         "Report-ID: <")
        [attachment] = [p for p in msg.iter_attachments()]
        assert attachment.get_content_type() == "application/gzip"
        assert attachment.get_filename() == f"mx.example.net!example.org!{T0}!{T0 + DAY}.xml.gz"
        root = ET.fromstring(gzip.decompress(attachment.get_content()))
        assert root.findtext("record/row/count") == "2"
        # Reported rows are gone, today's row stays for tomorrow.
        left = await store.dmarc_pending(T0 + 2 * DAY)
        assert [r["time"] for _, r in left] == [T0 + DAY + 10]
        # Nothing more to send today.
        again = await reports.send_aggregate_reports(
            store, hostname="mx", org_name="o", sender="s@mx", now=T0 + DAY + 7200)
        assert again == {"reports": 0, "rows": 0}
    run(go())


def test_rua_addresses():
    assert reports.rua_addresses(["mailto:a@x.example", "mailto:b%40y.example?subject=x",
                                  "https://x", "mailto:no-at", "mailto:a@x.example",
                                  "mailto:bad <x>@z"]) == ["a@x.example", "b@y.example"]


DMARC_XML = b"""<?xml version="1.0"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">
 <report_metadata><org_name>google.com</org_name><email>noreply@google.com</email>
  <report_id>123</report_id><date_range><begin>1700000000</begin><end>1700086399</end>
  </date_range></report_metadata>
 <policy_published><domain>Example.NET</domain><adkim>r</adkim><aspf>r</aspf><p>none</p>
  <sp>none</sp><pct>100</pct></policy_published>
 <record><row><source_ip>203.0.113.5</source_ip><count>7</count><policy_evaluated>
  <disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
  <identifiers><header_from>example.net</header_from></identifiers>
  <auth_results><dkim><domain>example.net</domain><result>pass</result></dkim>
  <spf><domain>example.net</domain><result>softfail</result></spf></auth_results></record>
</feedback>"""

TLSRPT = {"organization-name": "Company-X", "date-range": {
    "start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z"},
    "contact-info": "sts-reporting@company-x.example", "report-id": "5065427c-23d3",
    "policies": [{"policy": {"policy-type": "sts", "policy-domain": "example.net"},
                  "summary": {"total-successful-session-count": 5326,
                              "total-failure-session-count": 303},
                  "failure-details": [{"result-type": "certificate-expired",
                                       "receiving-mx-hostname": "mx1.example.net",
                                       "failed-session-count": 100}]}]}


def _mail(*attachments) -> bytes:
    msg = EmailMessage()
    msg["From"] = "reporter@google.com"
    msg["To"] = "dmarc@example.net"
    msg["Subject"] = "Report"
    msg.set_content("see attachment")
    for data, maintype, subtype, name in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def test_extract_received_reports():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("report.xml", DMARC_XML)
    message = _mail((gzip.compress(DMARC_XML), "application", "gzip", "a.xml.gz"),
                    (buf.getvalue(), "application", "zip", "a.zip"),
                    (gzip.compress(json.dumps(TLSRPT).encode()), "application",
                     "tlsrpt+gzip", "r.json.gz"),
                    (b"not a report", "application", "octet-stream", "x.bin"),
                    (b"<feedback><broken", "text", "xml", "bad.xml"))
    found = reports.extract_reports(message)
    kinds = [r["kind"] for r in found]
    assert kinds == ["dmarc", "dmarc", "tlsrpt"]
    dm = found[0]
    assert (dm["org_name"], dm["domain"], dm["messages"]) == ("google.com", "example.net", 7)
    assert dm["records"][0]["spf_results"] == [{"domain": "example.net", "scope": "",
                                                "result": "softfail"}]
    tls = found[2]
    assert tls["policies"][0]["failed"] == 303
    assert tls["policies"][0]["failures"][0]["result"] == "certificate-expired"


def test_hostile_reports_are_skipped():
    bomb = gzip.compress(b"<feedback>" + b" " * (reports.MAX_REPORT_SIZE + 10))
    entity = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><feedback>&a;</feedback>'
    message = _mail((bomb, "application", "gzip", "bomb.xml.gz"),
                    (entity, "text", "xml", "e.xml"),
                    (b"{\"policies\": 3}", "application", "tlsrpt+json", "x.json"),
                    (b"<other/>", "text", "xml", "o.xml"))
    assert reports.extract_reports(message) == []


def test_incoming_reports_are_stored_through_delivery():
    from stalwart.mailauth.inbound import InboundAuth, InboundSettings
    from stalwart.protocols.smtp.address import Address, Path
    from stalwart.protocols.smtp.delivery import LocalDelivery
    from stalwart.protocols.smtp.events import Deliver, Envelope, Recipient, Session
    from stalwart.protocols.smtp.params import MailParams, RcptParams

    async def go():
        store = Store.memory()
        await store.create_domain("example.net")
        acc = (await store.create_account("dmarc", emails=["dmarc@example.net"]))["id"]
        auth = InboundAuth(InboundSettings(hostname="mx.example.net",
                                           report_addresses=("dmarc@example.net",)),
                           Resolver(FakeBackend({})), dkim_verify=_no_dkim)
        delivery = LocalDelivery(store, "mx.example.net", inbound=auth)
        rcpt = Recipient(Path(Address("dmarc", "example.net")), RcptParams(),
                         {"account": acc, "address": "dmarc@example.net"})
        event = Deliver(Session(remote_ip="192.0.2.1", helo="mail.google.com"),
                        Envelope(Path(Address("reporter", "google.com")), MailParams(),
                                 [rcpt]),
                        _mail((gzip.compress(DMARC_XML), "application", "gzip", "a.xml.gz")))
        replies = await delivery.deliver(event)
        assert replies[0].code == 250
        [stored] = store.list_reports()
        assert (stored["kind"], stored["org_name"], stored["messages"]) == ("dmarc",
                                                                            "google.com", 7)
        assert store.list_reports("tlsrpt") == []
        assert await store.report_delete(stored["id"]) and store.list_reports() == []
    run(go())


async def _no_dkim(message, resolver):
    return []


def test_scheduler_job_runs_and_stops():
    import time

    from stalwart.config import loads

    def config(aggregate: bool):
        return loads(f'[server]\nhostname = "mx.example.net"\n'
                     f'[auth.dmarc.report]\naggregate = {str(aggregate).lower()}\n')

    async def go():
        from stalwart.mailauth import keys

        store = Store.memory()
        await store.create_domain("mx.example.net")     # the sender's domain has a key
        await store.dkim_key_put("mx.example.net", "s1", "rsa-sha256",
                                 keys.private_key_pem(keys.generate("rsa-sha256")))
        await store.dmarc_record(row(t=int(time.time()) - 2 * DAY))
        stop = asyncio.Event()
        job = asyncio.create_task(reports.run_report_job(
            config(True), stop, period=0.05, first_delay=0.01, store=store,
            resolver=Resolver(FakeBackend({}))))
        for _ in range(200):
            if store.queue_list():
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(job, 2)
        [entry] = [QueuedMessage.from_record(r) for r in store.queue_list()]
        msg = email.message_from_bytes(store.blobs.get(entry.blob), policy=email.policy.SMTP)
        assert msg["From"] == "noreply-dmarc@mx.example.net"
        assert "Submitter: mx.example.net" in msg["Subject"]
        assert "d=mx.example.net" in msg["DKIM-Signature"]      # signed (auth.dkim.sign.*)
        assert await store.dmarc_pending(2**40) == []
        # Disabled: the job returns at once.
        await asyncio.wait_for(reports.run_report_job(config(False), asyncio.Event()), 1)
    run(go())
