"""TLS-RPT (RFC 8460): the strict record parser, the counts, the JSON report and the
mail that carries it, and the daily job's choice of what to send and what to keep."""

from __future__ import annotations

import asyncio
import email
import email.policy
import gzip
import json

import pytest

from stalwart.dns import TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth.mtasts import parse_policy
from stalwart.mailauth.tlsrpt import (PolicyKey, RecordError, TlsRptRecorder,
                                      classify_tls_error, parse_record, select_record,
                                      send_reports)

RECORDS = [
    ("v=TLSRPTv1; rua=mailto:reports@example.com", ("mailto:reports@example.com",)),
    ("v=TLSRPTv1;rua=mailto:a@example.com,https://r.example.com/tls;",
     ("mailto:a@example.com", "https://r.example.com/tls")),
    ("v=TLSRPTv1; rua=mailto:a@example.com ; ext=1", ("mailto:a@example.com",)),
    ("v=TLSRPTv1; rua=mailto:a@example.com?subject=x", ("mailto:a@example.com?subject=x",)),
    ("v=TLSRPTv1", None),                                       # no rua
    ("v=TLSRPTv1; rua=", None),
    ("v=TLSRPTv1; rua=ftp://example.com/x", None),              # scheme
    ("v=TLSRPTv1; rua=http://example.com/x", None),             # https only
    ("v=TLSRPTv1; rua=mailto:nobody", None),                    # no domain
    ("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", None),
    ("rua=mailto:a@example.com; v=TLSRPTv1", None),             # v not first
    ("v=TLSRPTv2; rua=mailto:a@example.com", None),
    ("v=TLSRPTv1; rua=mailto:a@example.com; junk", None),
    ("v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com", None),
    ("v=TLSRPTv1; ;rua=mailto:a@example.com", None),
    ("", None),
]


@pytest.mark.parametrize("text,rua", RECORDS)
def test_record(text, rua):
    if rua is None:
        with pytest.raises(RecordError):
            parse_record(text)
    else:
        assert parse_record(text).rua == rua


def test_select_record_and_mailto():
    record = select_record(["v=spf1 -all", "v=TLSRPTv1; rua=mailto:a%2Bb@example.com,"
                            "mailto:c@example.com?subject=x,https://x.example/r"])
    assert record.mailto == ["a+b@example.com", "c@example.com"]
    with pytest.raises(RecordError):
        select_record(["v=TLSRPTv1; rua=mailto:a@x.com", "v=TLSRPTv1; rua=mailto:b@x.com"])


@pytest.mark.parametrize("text,kind", [
    ("TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
     "Hostname mismatch, certificate is not valid for 'mx.example.com'. (_ssl.c:1006)",
     "certificate-host-mismatch"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired",
     "certificate-expired"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
     "certificate-not-trusted"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
     "certificate", "certificate-not-trusted"),
    ("TLS handshake failed: [SSL: WRONG_VERSION_NUMBER] wrong version number",
     "validation-failure"),
])
def test_classify(text, kind):
    assert classify_tls_error(text) == kind


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_006_400.0            # 2023-11-15T00:00:00Z, a day boundary

    def __call__(self) -> float:
        return self.now


POLICY = parse_policy("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n")


def _recorded() -> tuple[TlsRptRecorder, Clock]:
    clock = Clock()
    rec = TlsRptRecorder(clock=clock)
    sts = PolicyKey.sts(POLICY)
    for _ in range(3):
        rec.success("example.com", sts)
    rec.failure("example.com", sts, "certificate-host-mismatch", mx_host="mx.example.com",
                receiving_ip="192.0.2.1", info="certificate is not valid")
    rec.failure("example.com", sts, "certificate-host-mismatch", mx_host="mx.example.com",
                receiving_ip="192.0.2.1", info="certificate is not valid")
    rec.success("other.test", PolicyKey())
    rec.failure("other.test", PolicyKey(), "starttls-not-supported", mx_host="mx.other.test")
    rec.success("norecord.test", PolicyKey())
    rec.success("later.test", PolicyKey())
    with pytest.raises(ValueError):
        rec.failure("example.com", sts, "made-up-type")
    return rec, clock


def test_report_for_each_finished_day_is_queued_to_the_rua_addresses():
    async def main():
        rec, clock = _recorded()
        day = int(clock.now)
        assert rec.summary(day, "example.com") == {"success": 3, "failure": 2}
        zone = {"_smtp._tls.example.com": {"TXT": [
                    "v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/x"]},
                "_smtp._tls.other.test": {"TXT": ["v=TLSRPTv1; rua=mailto:r@other.test"]},
                "_smtp._tls.later.test": TEMPFAIL}
        queued: list[tuple[bytes, list[str]]] = []

        async def enqueue(message, recipients):
            queued.append((message, recipients))
            return len(queued)

        resolver = Resolver(FakeBackend(zone))
        kwargs = dict(org_name="Example Org", submitter="mail.sender.test",
                      sender="noreply-tls@mail.sender.test")
        # The day is not finished: nothing is sent.
        assert await send_reports(rec, resolver, enqueue, **kwargs) == {"reports": 0,
                                                                         "skipped": 0}
        clock.now += 86400
        result = await send_reports(rec, resolver, enqueue, **kwargs)
        assert result == {"reports": 2, "skipped": 1}              # norecord.test skipped
        assert [r for _, r in queued] == [["tls@example.com"], ["r@other.test"]]
        msg = email.message_from_bytes(queued[0][0], policy=email.policy.default)
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "tlsrpt"
        assert msg["TLS-Report-Domain"] == "example.com"
        assert msg["TLS-Report-Submitter"] == "mail.sender.test"
        assert msg["Subject"].startswith("Report Domain: example.com Submitter: mail.sender.test"
                                         " Report-ID: <")
        parts = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
        assert len(parts) == 1
        name = parts[0].get_filename()
        assert name.startswith(f"mail.sender.test!example.com!{day}!{day + 86400}!")
        assert name.endswith(".json.gz")
        report = json.loads(gzip.decompress(parts[0].get_payload(decode=True)))
        assert report["organization-name"] == "Example Org"
        assert report["contact-info"] == "noreply-tls@mail.sender.test"
        assert report["date-range"] == {"start-datetime": "2023-11-15T00:00:00Z",
                                        "end-datetime": "2023-11-16T00:00:00Z"}
        assert msg["Subject"].endswith(f"<{report['report-id']}>")
        [entry] = report["policies"]
        assert entry["policy"] == {
            "policy-type": "sts", "policy-domain": "example.com",
            "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.example.com",
                              "max_age: 86400"],
            "mx-host": ["mx.example.com"]}
        assert entry["summary"] == {"total-successful-session-count": 3,
                                    "total-failure-session-count": 2}
        assert entry["failure-details"] == [{
            "result-type": "certificate-host-mismatch", "failed-session-count": 2,
            "receiving-mx-hostname": "mx.example.com", "receiving-ip": "192.0.2.1",
            "additional-information": "certificate is not valid"}]
        other = json.loads(gzip.decompress(
            [p for p in email.message_from_bytes(queued[1][0]).walk()
             if p.get_content_type() == "application/tlsrpt+gzip"][0].get_payload(decode=True)))
        assert other["policies"][0]["policy"] == {"policy-type": "no-policy-found",
                                                  "policy-domain": "other.test"}
        assert other["policies"][0]["failure-details"][0]["result-type"] == \
            "starttls-not-supported"
        # later.test's lookup failed temporarily: kept for the next run, the rest dropped.
        assert list(rec.days[day]) == ["later.test"]
        resolver.backend.set("_smtp._tls.later.test", {"TXT": ["v=TLSRPTv1; rua=mailto:x@later.test"]})
        resolver.cache.clear()
        assert (await send_reports(rec, resolver, enqueue, **kwargs))["reports"] == 1
        assert rec.days == {}
    asyncio.run(main())


def test_recorder_is_bounded_per_day():
    rec = TlsRptRecorder(max_domains=2, clock=Clock())
    for d in ("a.test", "b.test", "c.test"):
        rec.success(d, PolicyKey())
    assert sorted(next(iter(rec.days.values()))) == ["a.test", "b.test"]


def test_install_wires_the_queue_and_signs_reports(tmp_path):
    """``install`` puts the MTA-STS cache and the recorder on the deliverer (settings
    read from a real config) and its report job queues DKIM-signed reports."""
    from stalwart.config import load
    from stalwart.mailauth import dkim, keys
    from stalwart.mailauth.mtasts import MtaSts
    from stalwart.mailauth.tlsrpt import install, signed_enqueue
    from stalwart.queue import Queue, QueueSettings
    from stalwart.store.api import Store

    async def main():
        store = Store.memory()
        await store.create_domain("sender.test")
        key = keys.generate("ed25519-sha256")
        await store.dkim_key_put("sender.test", "ed-1", "ed25519-sha256",
                                 keys.private_key_pem(key))
        resolver = Resolver(FakeBackend({}))
        queue = Queue(store, store.blobs, resolver, QueueSettings(hostname="sender.test"))
        path = tmp_path / "config.toml"
        path.write_text('[server]\nhostname = "sender.test"\n[storage]\ndirectory = "%s"\n'
                        '[queue.mta-sts]\nport = 8443\ntimeout = "3s"\n' % tmp_path)
        stop = asyncio.Event()
        job = install(queue, resolver, load(path), stop)
        assert isinstance(queue.deliverer.mtasts, MtaSts)
        assert (queue.deliverer.mtasts.port, queue.deliverer.mtasts.timeout) == (8443, 3.0)
        assert isinstance(queue.deliverer.tlsrpt, TlsRptRecorder)
        stop.set()
        await job                                   # returns at once once stopped

        message = (b"From: noreply-tls@sender.test\r\nTo: tls@dest.test\r\n"
                   b"Subject: report\r\n\r\nbody\r\n")
        qid = await signed_enqueue(queue)(message, ["tls@dest.test"])
        entry = queue.get(qid)
        assert entry.return_path == "" and [r.address for r in entry.recipients] == [
            "tls@dest.test"]
        queued = store.blobs.get(entry.blob)
        assert queued.startswith(b"DKIM-Signature:") and queued.endswith(message)
        record = keys.dns_record("sender.test", "ed-1", key)
        results = await dkim.verify(queued, Resolver(FakeBackend(
            {record.name: {"TXT": [record.value]}})))
        assert [r.result for r in results] == ["pass"]

        path.write_text('[storage]\ndirectory = "%s"\n[queue.mta-sts]\nenable = false\n'
                        '[queue.tls-report]\nenable = false\n' % tmp_path)
        queue2 = Queue(store, store.blobs, resolver, QueueSettings())
        assert install(queue2, resolver, load(path), stop) is None
        assert queue2.deliverer.mtasts is None and queue2.deliverer.tlsrpt is None
        await store.close()
    asyncio.run(main())
