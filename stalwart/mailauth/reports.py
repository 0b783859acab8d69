"""DMARC aggregate reports (RFC 7489 7.2): the ones we send, and the reports (DMARC
aggregate, TLS-RPT) that others send us.

Sending. Every checked message whose From domain publishes ``rua=`` leaves one row in the
store (``InboundVerdict.aggregate``, ``store.dmarc_record``). Once a day the scheduler
(``send_aggregate_reports``) takes the rows of the finished UTC days, groups them per
policy domain, folds identical rows into one ``<record>`` with a ``<count>``, writes the
XML of RFC 7489 Appendix C, gzips it, and queues one message per policy domain to its
``rua=`` addresses through the outbound queue (``store.queue_put``), DKIM-signed with the
keys of the sender's domain when it has some (``auth.dkim.sign.*``). Rows are deleted
only after their report is queued. An ``rua`` address outside the policy domain's
organisational domain gets reports only if that domain agrees with a
``<policy-domain>._report._dmarc.<rua-domain>`` record (RFC 7489 7.1).

Receiving. Mail to the addresses in ``auth.report.addresses`` is also read as reports:
each part that is XML (``text/xml``, ``application/xml``), gzip or zip holding XML
(DMARC aggregate) or TLS-RPT JSON (``application/tlsrpt+json``/``+gzip``, RFC 8460 5.3)
is parsed and its summary stored (``store.report_store``). Decompression stops at
``MAX_REPORT_SIZE``; the XML parser is the standard library's expat (no external
entities; expat 2.4+ limits entity amplification); anything unparseable is skipped.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import gzip
import io
import json
import logging
import time
import urllib.parse
import uuid
import zipfile
import zlib
from collections import Counter, defaultdict
from email.message import EmailMessage
from typing import Any, Callable, Iterable, Sequence
from xml.etree import ElementTree as ET

log = logging.getLogger("stalwart.mailauth.reports")

__all__ = ["aggregate_xml", "report_message", "group_rows", "parse_dmarc_xml",
           "parse_tlsrpt", "extract_reports", "rua_addresses", "MAX_REPORT_SIZE",
           "send_aggregate_reports"]

MAX_REPORT_SIZE = 20 * 1024 * 1024
DAY = 86400


# ---------------------------------------------------------------------- building
def _row_key(row: dict) -> str:
    keep = {k: row.get(k) for k in ("source_ip", "header_from", "envelope_from",
                                     "disposition", "dkim_aligned", "spf_aligned", "dkim",
                                     "spf", "sampled_out")}
    return json.dumps(keep, sort_keys=True)


def group_rows(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """Rows per policy domain (``row["domain"]``)."""
    out: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("domain"), str) and row["domain"]:
            out[row["domain"].lower()].append(row)
    return dict(out)


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def aggregate_xml(domain: str, rows: Sequence[dict], *, org_name: str, email_addr: str,
                  report_id: str, begin: int, end: int) -> bytes:
    """The aggregate report (RFC 7489 Appendix C) for one policy domain."""
    root = ET.Element("feedback")
    _sub(root, "version", "1.0")
    meta = _sub(root, "report_metadata")
    _sub(meta, "org_name", org_name)
    _sub(meta, "email", email_addr)
    _sub(meta, "report_id", report_id)
    rng = _sub(meta, "date_range")
    _sub(rng, "begin", int(begin))
    _sub(rng, "end", int(end))
    policy = rows[-1].get("policy") or {}          # the newest policy seen
    pub = _sub(root, "policy_published")
    _sub(pub, "domain", domain)
    _sub(pub, "adkim", policy.get("adkim", "r"))
    _sub(pub, "aspf", policy.get("aspf", "r"))
    _sub(pub, "p", policy.get("p", "none"))
    _sub(pub, "sp", policy.get("sp") or policy.get("p", "none"))
    _sub(pub, "pct", policy.get("pct", 100))
    counts = Counter(_row_key(r) for r in rows)
    first: dict[str, dict] = {}
    for r in rows:
        first.setdefault(_row_key(r), r)
    for key, count in counts.items():
        r = first[key]
        record = _sub(root, "record")
        row = _sub(record, "row")
        _sub(row, "source_ip", r.get("source_ip", ""))
        _sub(row, "count", count)
        ev = _sub(row, "policy_evaluated")
        _sub(ev, "disposition", r.get("disposition", "none"))
        _sub(ev, "dkim", r.get("dkim_aligned", "fail"))
        _sub(ev, "spf", r.get("spf_aligned", "fail"))
        if r.get("sampled_out"):
            reason = _sub(ev, "reason")
            _sub(reason, "type", "sampled_out")
        ids = _sub(record, "identifiers")
        if r.get("envelope_from"):
            _sub(ids, "envelope_from", r["envelope_from"])
        _sub(ids, "header_from", r.get("header_from", ""))
        auth = _sub(record, "auth_results")
        for d in r.get("dkim") or []:
            el = _sub(auth, "dkim")
            _sub(el, "domain", d.get("domain", ""))
            if d.get("selector"):
                _sub(el, "selector", d["selector"])
            _sub(el, "result", d.get("result", "none"))
        for s in (r.get("spf") or [{"domain": "", "scope": "mfrom", "result": "none"}])[:1]:
            el = _sub(auth, "spf")
            _sub(el, "domain", s.get("domain", ""))
            _sub(el, "scope", s.get("scope", "mfrom"))
            _sub(el, "result", s.get("result", "none"))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def rua_addresses(uris: Iterable[str]) -> list[str]:
    """``mailto:`` URIs (RFC 7489 6.2) as addresses; anything else dropped."""
    out = []
    for uri in uris:
        if not isinstance(uri, str) or not uri.lower().startswith("mailto:"):
            continue
        address = urllib.parse.unquote(uri[7:].split("?", 1)[0]).strip()
        if "@" in address and all(ch.isprintable() and ch not in " <>,;" for ch in address) \
                and address not in out:
            out.append(address)
    return out


def report_message(domain: str, xml: bytes, *, recipients: Sequence[str], sender: str,
                   org_name: str, receiver: str, report_id: str, begin: int,
                   end: int) -> bytes:
    """The mail carrying one report (RFC 7489 7.2.1.1): a gzip attachment named
    ``receiver!policy-domain!begin!end.xml.gz``."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = f"Report Domain: {domain} Submitter: {org_name} Report-ID: <{report_id}>"
    msg["Date"] = email.utils.formatdate(end, usegmt=True)
    msg["Message-ID"] = f"<{report_id}@{receiver}>"
    msg.set_content(f"DMARC aggregate report from {org_name} for {domain}, "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(begin))} to "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(end))} UTC.\n")
    msg.add_attachment(gzip.compress(xml, mtime=0), maintype="application", subtype="gzip",
                       filename=f"{receiver}!{domain}!{int(begin)}!{int(end)}.xml.gz")
    return msg.as_bytes()


async def _external_allowed(resolver: Any, policy_domain: str, address: str) -> bool:
    """RFC 7489 7.1: may ``address`` (outside the policy domain's organisation) get
    reports about ``policy_domain``?"""
    from .dmarc import is_dmarc_record, organizational_domain

    rua_domain = address.rpartition("@")[2].lower().rstrip(".")
    if organizational_domain(rua_domain) == organizational_domain(policy_domain):
        return True
    if resolver is None:
        return False
    try:
        answer = await resolver.txt(f"{policy_domain}._report._dmarc.{rua_domain}")
    except Exception:                                # DnsError of any kind: no consent
        return False
    return any(is_dmarc_record(r) for r in answer.records)


async def send_aggregate_reports(store: Any, *, hostname: str, org_name: str, sender: str,
                                 resolver: Any = None, now: float | None = None,
                                 limit: int = 100_000,
                                 sign: Callable[[bytes], bytes] | None = None) -> dict:
    """Queue one report per policy domain for the rows of finished UTC days.

    ``store`` offers ``dmarc_pending(until, limit)``, ``dmarc_delete(ids)``,
    ``blobs.put_async`` and ``queue_put``. ``sign`` returns the report with its DKIM
    signatures (``run_report_job``: the keys of the sender's domain, ``auth.dkim.sign.*``);
    a signing error queues the report unsigned. Returns counts for the scheduler's log."""
    from stalwart.queue.model import QueuedMessage, QueuedRecipient

    now = time.time() if now is None else now
    until = int(now // DAY * DAY)                     # the start of today, UTC
    pending = await store.dmarc_pending(until, limit)
    if not pending:
        return {"reports": 0, "rows": 0}
    by_domain: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for ident, row in pending:
        domain = row.get("domain") if isinstance(row, dict) else None
        by_domain[str(domain or "").lower()].append((ident, row))
    sent = 0
    done: list[int] = []
    for domain, items in sorted(by_domain.items()):
        ids = [i for i, _ in items]
        rows = [r for _, r in items]
        if not domain:
            done += ids
            continue
        addresses = []
        for address in rua_addresses(rows[-1].get("rua") or []):
            if await _external_allowed(resolver, domain, address):
                addresses.append(address)
        if not addresses:
            log.info("dmarc report for %s: no permitted rua address, %d rows dropped",
                     domain, len(rows))
            done += ids
            continue
        times = [int(r.get("time", until)) for r in rows]
        begin, end = min(times) // DAY * DAY, until
        report_id = f"{domain}-{begin}-{uuid.uuid4().hex[:12]}"
        xml = aggregate_xml(domain, rows, org_name=org_name, email_addr=sender,
                            report_id=report_id, begin=begin, end=end)
        message = report_message(domain, xml, recipients=addresses, sender=sender,
                                 org_name=org_name, receiver=hostname, report_id=report_id,
                                 begin=begin, end=end)
        if sign is not None:
            try:
                message = sign(message)
            except Exception as exc:                  # a broken key must not stop reports
                log.warning("dmarc report for %s: DKIM signing failed, sending unsigned: %s",
                            domain, exc)
        blob = await store.blobs.put_async(message)
        record = QueuedMessage(return_path="", recipients=[QueuedRecipient(address=a)
                                                           for a in addresses],
                               blob=blob, size=len(message), created=now, due=now,
                               expires=0.0).to_record()
        qid = await store.queue_put(record)
        log.info("dmarc report for %s (%d rows) queued as %s to %s", domain, len(rows), qid,
                 ", ".join(addresses))
        sent += 1
        done += ids
    if done:
        await store.dmarc_delete(done)
    return {"reports": sent, "rows": len(done)}


# ---------------------------------------------------------------------- receiving
def _bounded_gunzip(data: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data, MAX_REPORT_SIZE + 1)
    if len(out) > MAX_REPORT_SIZE or d.unconsumed_tail:
        raise ValueError("report too large once decompressed")
    return out


def _bounded_unzip(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if info.file_size > MAX_REPORT_SIZE:
                raise ValueError("report too large once decompressed")
            with zf.open(info) as fh:
                out = fh.read(MAX_REPORT_SIZE + 1)
            if len(out) > MAX_REPORT_SIZE:
                raise ValueError("report too large once decompressed")
            return out
    raise ValueError("empty zip archive")


def _text(el: ET.Element | None, path: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(path)
    return (found.text or "").strip() if found is not None and found.text else default


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def parse_dmarc_xml(data: bytes) -> dict:
    """A DMARC aggregate report (RFC 7489 Appendix C) as a plain summary dict;
    ValueError if it is not one."""
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data[:65536]:
        raise ValueError("DTDs and entities are not accepted in reports")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if root.tag.split("}")[-1] != "feedback":
        raise ValueError(f"not a DMARC report (root element {root.tag!r})")
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""

    def q(path: str) -> str:
        return "/".join(ns + p for p in path.split("/"))

    meta = root.find(q("report_metadata"))
    pub = root.find(q("policy_published"))
    records = []
    for rec in root.findall(q("record"))[:10_000]:
        row = rec.find(q("row"))
        auth = rec.find(q("auth_results"))
        records.append({
            "source_ip": _text(row, q("source_ip")),
            "count": _int(_text(row, q("count")), 0),
            "disposition": _text(row, q("policy_evaluated/disposition")),
            "dkim": _text(row, q("policy_evaluated/dkim")),
            "spf": _text(row, q("policy_evaluated/spf")),
            "header_from": _text(rec, q("identifiers/header_from")),
            "envelope_from": _text(rec, q("identifiers/envelope_from")),
            "dkim_results": [{"domain": _text(d, q("domain")),
                              "selector": _text(d, q("selector")),
                              "result": _text(d, q("result"))}
                             for d in (auth.findall(q("dkim")) if auth is not None else [])],
            "spf_results": [{"domain": _text(s, q("domain")), "scope": _text(s, q("scope")),
                             "result": _text(s, q("result"))}
                            for s in (auth.findall(q("spf")) if auth is not None else [])],
        })
    return {
        "kind": "dmarc",
        "org_name": _text(meta, q("org_name")),
        "email": _text(meta, q("email")),
        "report_id": _text(meta, q("report_id")),
        "begin": _int(_text(meta, q("date_range/begin"))),
        "end": _int(_text(meta, q("date_range/end"))),
        "domain": _text(pub, q("domain")).lower(),
        "policy": {"p": _text(pub, q("p")), "sp": _text(pub, q("sp")),
                   "adkim": _text(pub, q("adkim")), "aspf": _text(pub, q("aspf")),
                   "pct": _int(_text(pub, q("pct")), 100)},
        "records": records,
        "messages": sum(r["count"] for r in records),
    }


def parse_tlsrpt(data: bytes) -> dict:
    """A TLS report (RFC 8460 4) as a summary dict; ValueError if it is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("policies"), list):
        raise ValueError("not a TLS report (no policies)")
    rng = doc.get("date-range") if isinstance(doc.get("date-range"), dict) else {}
    policies = []
    for p in doc["policies"][:1000]:
        if not isinstance(p, dict):
            continue
        pol = p.get("policy") if isinstance(p.get("policy"), dict) else {}
        summary = p.get("summary") if isinstance(p.get("summary"), dict) else {}
        failures = p.get("failure-details") if isinstance(p.get("failure-details"), list) \
            else []
        policies.append({
            "type": str(pol.get("policy-type", "")),
            "domain": str(pol.get("policy-domain", "")).lower(),
            "successful": _int(summary.get("total-successful-session-count"), 0),
            "failed": _int(summary.get("total-failure-session-count"), 0),
            "failures": [{"result": str(f.get("result-type", "")),
                          "mx": str(f.get("receiving-mx-hostname", "")),
                          "count": _int(f.get("failed-session-count"), 0)}
                         for f in failures[:100] if isinstance(f, dict)],
        })
    return {
        "kind": "tlsrpt",
        "org_name": str(doc.get("organization-name", "")),
        "email": str(doc.get("contact-info", "")),
        "report_id": str(doc.get("report-id", "")),
        "begin": str(rng.get("start-datetime", "")),
        "end": str(rng.get("end-datetime", "")),
        "policies": policies,
    }


def _payloads(message: bytes) -> Iterable[tuple[str, str, bytes]]:
    msg = email.message_from_bytes(message, policy=email.policy.compat32)
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type().lower()
        name = (part.get_filename() or "").lower()
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            continue
        if isinstance(payload, bytes) and payload:
            yield ctype, name, payload


def extract_reports(message: bytes) -> list[dict]:
    """Every DMARC aggregate or TLS report found in a message (possibly none)."""
    found = []
    for ctype, name, payload in _payloads(message):
        try:
            tls = "tlsrpt" in ctype or name.endswith(".json.gz") or name.endswith(".json")
            if ctype.endswith("gzip") or name.endswith(".gz") or payload[:2] == b"\x1f\x8b":
                data = _bounded_gunzip(payload)
            elif ctype.endswith("zip") or name.endswith(".zip") or payload[:2] == b"PK":
                data = _bounded_unzip(payload)
            elif "xml" in ctype or "json" in ctype or name.endswith((".xml", ".json")):
                data = payload
            else:
                continue
            if tls or data.lstrip()[:1] == b"{":
                found.append(parse_tlsrpt(data))
            else:
                found.append(parse_dmarc_xml(data))
        except (ValueError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            log.info("skipped a report part (%s, %s): %s", ctype, name or "-", exc)
    return found


# ---------------------------------------------------------------------- the daily job
REPORT_CHECK_PERIOD = 3600.0
REPORT_FIRST_DELAY = 60.0


def report_identity(config: Any) -> tuple[str, str, str]:
    """(hostname, org name, sender address) of our reports."""
    hostname = config.get("server.hostname")
    org = config.get("auth.dmarc.report.org-name") or hostname
    sender = config.get("auth.dmarc.report.from") or f"noreply-dmarc@{hostname}"
    return hostname, org, sender


async def run_report_job(config: Any, stop: Any, *, period: float = REPORT_CHECK_PERIOD,
                         first_delay: float = REPORT_FIRST_DELAY, store: Any = None,
                         resolver: Any = None) -> None:
    """The scheduler's DMARC report task: every ``period`` it queues the reports of the
    finished UTC days (so each day's rows leave within ``period`` after midnight UTC).
    A failure is logged and retried next period; rows stay until their report is queued."""
    if not config.get("auth.dmarc.report.aggregate"):
        return
    hostname, org, sender = report_identity(config)
    own_store = store is None
    if resolver is None:
        from stalwart.dns import Resolver

        resolver = Resolver.from_settings(config.get("resolver.nameservers") or (),
                                          timeout=config.get("resolver.timeout"),
                                          lifetime=config.get("resolver.lifetime"))
    from stalwart.periodic import every

    from .signopts import SignOptions
    options = SignOptions.from_config(config)                   # auth.dkim.sign.*

    def sign(message: bytes) -> bytes:
        # Imported when a report goes out: ``keys`` brings ``cryptography``.
        from .keys import sign_outbound

        return sign_outbound(store, message, options=options)

    async def once() -> None:
        nonlocal store
        if store is None:
            from stalwart.store.api import Store

            store = await Store.open(config, subscribe=False)
        result = await send_aggregate_reports(store, hostname=hostname, org_name=org,
                                              sender=sender, resolver=resolver, sign=sign)
        if result["rows"]:
            log.info("scheduler: dmarc reports: %s", result)
    try:
        await every(period, once, stop, first=first_delay, name="scheduler: dmarc reports")
    finally:
        if own_store and store is not None:
            await store.close()
