"""SMTP TLS Reporting (RFC 8460): the reports we send about our outbound TLS sessions.

Recording. The queue's deliverer calls ``TlsRptRecorder.success`` / ``failure`` once per
SMTP session (or failed attempt at one) to a policy domain (the recipient domain), with
the policy that applied: ``sts`` (an MTA-STS policy, its lines and MX patterns) or
``no-policy-found``. Counts are kept per UTC day, policy domain and policy; failures also
per (result type, sending IP, MX host, receiving IP), as RFC 8460 4.4 lays out. The
counts live in memory in the queue process (a restart loses the current day's counts);
at most ``max_domains`` domains per day are tracked.

Sending. ``send_reports`` (run hourly by ``run_report_job`` in the queue process) takes
every finished UTC day, looks up ``_smtp._tls.<domain>`` for each domain (RFC 8460 3,
parsed strictly by ``parse_record``), builds the JSON report (RFC 8460 4.4), gzips it and
queues one message (RFC 8460 5.3: ``multipart/report; report-type="tlsrpt"`` with an
``application/tlsrpt+gzip`` part, ``TLS-Report-Domain`` and ``TLS-Report-Submitter``
fields; DKIM-signed when the sender's domain has keys) to the record's ``mailto:``
addresses, and POSTs it to its ``https:`` URIs (RFC 8460 5.2, ``post_report``; a failed
POST is logged, not retried). A domain without a valid record gets no report; its counts are
dropped once the day is done.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import gzip
import json
import logging
import re
import ssl
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Awaitable, Callable, Iterable, Sequence

from stalwart.dns import DnsError

__all__ = ["TlsRptRecord", "RecordError", "parse_record", "select_record", "TlsRptRecorder",
           "PolicyKey", "build_report", "report_message", "send_reports", "run_report_job",
           "classify_tls_error", "RESULT_TYPES", "install", "signed_enqueue", "post_report",
           "ReportPostError"]

log = logging.getLogger("stalwart.mailauth.tlsrpt")

DAY = 86400

#: RFC 8460 4.3 result types.
RESULT_TYPES = frozenset({
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"})


class RecordError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TlsRptRecord:
    rua: tuple[str, ...]                     # the URIs, as written
    extensions: tuple[tuple[str, str], ...] = ()

    @property
    def mailto(self) -> list[str]:
        """The addresses of the ``mailto:`` URIs (query parts dropped)."""
        out = []
        for uri in self.rua:
            if uri[:7].lower() == "mailto:":
                addr = urllib.parse.unquote(uri[7:].split("?", 1)[0])
                if addr not in out:
                    out.append(addr)
        return out


_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_MAILTO = re.compile(r"mailto:([^@\s,;!?]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,63}|\[[0-9a-fA-F:.]+\])"
                     r"(\?[\x21-\x7e]*)?", re.I)
_HTTPS = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[\x21-\x2b\x2d-\x7e]*)?", re.I)


def parse_record(text: str) -> TlsRptRecord:
    """``v=TLSRPTv1; rua=mailto:reports@example.com`` (RFC 8460 3), strictly.

    ``v=TLSRPTv1`` first; exactly one ``rua`` with one or more comma-separated
    ``mailto:`` or ``https:`` URIs; other fields must be well-formed extensions (kept,
    not interpreted); fields separated by ``;`` with optional spaces, a trailing ``;``
    allowed. Anything else raises ``RecordError``."""
    if not isinstance(text, str):
        raise RecordError("not a text record")
    fields = [f.strip(" \t") for f in text.split(";")]
    if fields and fields[-1] == "" and len(fields) > 1:
        fields.pop()
    if not fields or fields[0] != "v=TLSRPTv1":
        raise RecordError("the record does not start with v=TLSRPTv1")
    rua: tuple[str, ...] | None = None
    extensions: list[tuple[str, str]] = []
    for f in fields[1:]:
        name, eq, value = f.partition("=")
        if not eq or not name:
            raise RecordError(f"malformed field {f!r}")
        if name == "rua":
            if rua is not None:
                raise RecordError("rua appears twice")
            uris = [u.strip(" \t") for u in value.split(",")]
            for uri in uris:
                if not (_MAILTO.fullmatch(uri) or _HTTPS.fullmatch(uri)):
                    raise RecordError(f"bad report URI {uri!r} (mailto: or https: only)")
            rua = tuple(uris)
        elif name == "v":
            raise RecordError("v appears twice")
        elif _EXT_NAME.fullmatch(name) and _EXT_VALUE.fullmatch(value):
            extensions.append((name, value))
        else:
            raise RecordError(f"malformed field {f!r}")
    if rua is None:
        raise RecordError("the record has no rua")
    return TlsRptRecord(rua, tuple(extensions))


def select_record(records: Iterable[str]) -> TlsRptRecord:
    """RFC 8460 3: records not starting ``v=TLSRPTv1`` are dropped; exactly one must be
    left (several -> the domain does not do TLSRPT)."""
    candidates = [r for r in records if isinstance(r, str) and r.startswith("v=TLSRPTv1")]
    if len(candidates) != 1:
        raise RecordError(f"{len(candidates)} TLSRPTv1 records (exactly one is needed)")
    return parse_record(candidates[0])


# ---------------------------------------------------------------------- recording
@dataclass(frozen=True, slots=True)
class PolicyKey:
    """The ``policy`` object of a report (RFC 8460 4.4)."""

    type: str = "no-policy-found"            # sts | no-policy-found | tlsa
    string: tuple[str, ...] = ()
    mx_host: tuple[str, ...] = ()

    @classmethod
    def sts(cls, policy: Any) -> "PolicyKey":
        if policy is None:
            return cls("sts")
        return cls("sts", tuple(policy.lines), tuple(policy.mx))


@dataclass(slots=True)
class _Counts:
    success: int = 0
    failures: Counter = field(default_factory=Counter)  # (type, ip, mx, rip, info) -> n


def classify_tls_error(message: str) -> str:
    """A result type (RFC 8460 4.3) for a TLS handshake error text from ``ssl``."""
    text = message.lower()
    if "hostname mismatch" in text or "doesn't match" in text or "not valid for" in text:
        return "certificate-host-mismatch"
    if "expired" in text or "not yet valid" in text:
        return "certificate-expired"
    if ("self-signed" in text or "self signed" in text or "unable to get local issuer" in text
            or "unknown ca" in text or "certificate verify failed" in text):
        return "certificate-not-trusted"
    return "validation-failure"


class TlsRptRecorder:
    """Per UTC day, policy domain and policy: session successes and failure details."""

    def __init__(self, *, max_domains: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_domains = max_domains
        self.clock = clock
        self.days: dict[int, dict[str, dict[PolicyKey, _Counts]]] = {}

    def _counts(self, domain: str, policy: PolicyKey) -> _Counts | None:
        day = int(self.clock() // DAY * DAY)
        domains = self.days.setdefault(day, {})
        domain = domain.lower().rstrip(".")
        if domain not in domains and len(domains) >= self.max_domains:
            return None
        return domains.setdefault(domain, {}).setdefault(policy, _Counts())

    def success(self, domain: str, policy: PolicyKey) -> None:
        counts = self._counts(domain, policy)
        if counts is not None:
            counts.success += 1

    def failure(self, domain: str, policy: PolicyKey, result_type: str, *,
                mx_host: str = "", receiving_ip: str = "", sending_ip: str = "",
                info: str = "") -> None:
        if result_type not in RESULT_TYPES:
            raise ValueError(f"unknown TLS-RPT result type {result_type!r}")
        counts = self._counts(domain, policy)
        if counts is not None:
            counts.failures[(result_type, sending_ip, mx_host, receiving_ip, info[:200])] += 1

    def finished_days(self, now: float | None = None) -> list[int]:
        today = int((self.clock() if now is None else now) // DAY * DAY)
        return sorted(d for d in self.days if d < today)

    def summary(self, day: int, domain: str) -> dict:
        """``{"success": n, "failure": n}`` of one domain on one day (tests, logs)."""
        entries = self.days.get(day, {}).get(domain, {})
        return {"success": sum(c.success for c in entries.values()),
                "failure": sum(sum(c.failures.values()) for c in entries.values())}


# ---------------------------------------------------------------------- the report
def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def build_report(domain: str, entries: dict[PolicyKey, _Counts], *, org_name: str,
                 contact: str, report_id: str, begin: int, end: int) -> dict:
    """The JSON object of RFC 8460 4.4 for one policy domain and one day."""
    policies = []
    for key, counts in entries.items():
        policy: dict[str, Any] = {"policy-type": key.type, "policy-domain": domain}
        if key.string:
            policy["policy-string"] = list(key.string)
        if key.mx_host:
            policy["mx-host"] = list(key.mx_host)
        details = []
        for (rtype, sip, mx, rip, info), n in sorted(counts.failures.items()):
            d: dict[str, Any] = {"result-type": rtype, "failed-session-count": n}
            if sip:
                d["sending-mta-ip"] = sip
            if mx:
                d["receiving-mx-hostname"] = mx
            if rip:
                d["receiving-ip"] = rip
            if info:
                d["additional-information"] = info
            details.append(d)
        entry: dict[str, Any] = {
            "policy": policy,
            "summary": {"total-successful-session-count": counts.success,
                        "total-failure-session-count": sum(counts.failures.values())}}
        if details:
            entry["failure-details"] = details
        policies.append(entry)
    return {"organization-name": org_name,
            "date-range": {"start-datetime": _iso(begin), "end-datetime": _iso(end)},
            "contact-info": contact, "report-id": report_id, "policies": policies}


def report_message(domain: str, report: dict, *, recipients: Sequence[str], sender: str,
                   submitter: str, begin: int, end: int) -> bytes:
    """The mail carrying one report (RFC 8460 5.3)."""
    unique = report["report-id"].rsplit("-", 1)[-1]
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = (f"Report Domain: {domain} Submitter: {submitter} "
                      f"Report-ID: <{report['report-id']}>")
    msg["Date"] = email.utils.formatdate(end, usegmt=True)
    msg["Message-ID"] = f"<{report['report-id']}@{submitter}>"
    msg["TLS-Report-Domain"] = domain
    msg["TLS-Report-Submitter"] = submitter
    msg.set_content(f"TLS report from {submitter} for {domain}, "
                    f"{_iso(begin)} to {_iso(end)}.\n")
    body = gzip.compress(json.dumps(report, separators=(",", ":")).encode(), mtime=0)
    msg.add_attachment(body, maintype="application", subtype="tlsrpt+gzip",
                       filename=f"{submitter}!{domain}!{begin}!{end}!{unique}.json.gz")
    msg.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"')
    # replace_header drops the boundary parameter: put it back.
    msg.set_boundary(f"tlsrpt-{uuid.uuid4().hex}")
    return msg.as_bytes()


#: ``async enqueue(message, recipients) -> queue id``
Enqueue = Callable[[bytes, list[str]], Awaitable[Any]]


#: ``async post(url, gzipped JSON)``; raises ``ReportPostError``.
Post = Callable[[str, bytes], Awaitable[None]]


class ReportPostError(Exception):
    pass


async def post_report(url: str, body: bytes, resolver: Any, *,
                      ssl_context: ssl.SSLContext | None = None, timeout: float = 30.0,
                      port: int | None = None) -> None:
    """POST a gzipped report to an ``https:`` URI (RFC 8460 5.2): ``Content-Type:
    application/tlsrpt+gzip``, certificate verified (system CAs unless ``ssl_context``),
    any 2xx is success, anything else (redirects included) ``ReportPostError``."""
    import h11

    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https" or not host:
        raise ReportPostError(f"not an https URI: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if port is None:
        port = parts.port or 443
    context = ssl_context or ssl.create_default_context()
    try:
        addrs = await resolver.addresses(host)
    except DnsError as exc:
        raise ReportPostError(f"{host}: {exc.describe}") from None
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=16 * 1024)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                (list(addrs.ipv4) + list(addrs.ipv6))[0], port, ssl=context,
                server_hostname=host)
            try:
                writer.write(conn.send(h11.Request(method="POST", target=target, headers=[
                    ("Host", host), ("Content-Type", "application/tlsrpt+gzip"),
                    ("Content-Length", str(len(body))), ("Connection", "close"),
                    ("User-Agent", "stalwart-tlsrpt")])))
                writer.write(conn.send(h11.Data(data=body)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await reader.read(16384))
                    elif isinstance(event, h11.Response):
                        if not 200 <= event.status_code < 300:
                            raise ReportPostError(f"{url}: HTTP status {event.status_code}")
                        return
                    elif isinstance(event, h11.ConnectionClosed):
                        raise ReportPostError(f"{url}: the connection closed early")
            finally:
                writer.close()
    except TimeoutError:
        raise ReportPostError(f"{url}: timed out after {timeout:g}s") from None
    except (OSError, ssl.SSLError, h11.ProtocolError) as exc:
        raise ReportPostError(f"{url}: {exc}") from None


async def send_reports(recorder: TlsRptRecorder, resolver: Any, enqueue: Enqueue, *,
                       org_name: str, submitter: str, sender: str,
                       now: float | None = None, post: Post | None = None) -> dict:
    """Queue the reports of every finished UTC day; returns counts for the log. A day's
    counts are dropped once each of its domains was reported or had no valid record; a
    domain whose record lookup failed temporarily stays for the next run."""
    sent = 0
    skipped = 0
    for day in recorder.finished_days(now):
        domains = recorder.days[day]
        for domain in sorted(domains):
            try:
                answer = await resolver.txt(f"_smtp._tls.{domain}")
                record = select_record(answer.records)
            except DnsError as exc:
                if not exc.permanent:
                    continue                       # try again next run
                skipped += 1
                del domains[domain]
                continue
            except RecordError as exc:
                log.info("tls report for %s: no usable record: %s", domain, exc)
                skipped += 1
                del domains[domain]
                continue
            addresses = record.mailto
            urls = [u for u in record.rua if u[:8].lower() == "https://"]
            if not addresses and not (urls and post is not None):
                skipped += 1
                del domains[domain]
                continue
            begin, end = day, day + DAY
            report_id = f"{_iso(begin)[:10]}-{domain}-{uuid.uuid4().hex[:12]}"
            report = build_report(domain, domains[domain], org_name=org_name, contact=sender,
                                  report_id=report_id, begin=begin, end=end)
            if addresses:
                message = report_message(domain, report, recipients=addresses, sender=sender,
                                         submitter=submitter, begin=begin, end=end)
                qid = await enqueue(message, addresses)
                log.info("tls report for %s queued as %s to %s", domain, qid,
                         ", ".join(addresses))
            for url in urls if post is not None else ():
                body = gzip.compress(json.dumps(report, separators=(",", ":")).encode(),
                                     mtime=0)
                try:
                    await post(url, body)
                    log.info("tls report for %s posted to %s", domain, url)
                except ReportPostError as exc:        # not retried (RFC 8460 5.2: MAY)
                    log.info("tls report for %s: POST to %s failed: %s", domain, url, exc)
            sent += 1
            del domains[domain]
        if not domains:
            del recorder.days[day]
    return {"reports": sent, "skipped": skipped}


REPORT_PERIOD = 3600.0


async def run_report_job(recorder: TlsRptRecorder, resolver: Any, enqueue: Enqueue,
                         stop: asyncio.Event, *, org_name: str, submitter: str, sender: str,
                         period: float = REPORT_PERIOD, first_delay: float = 60.0,
                         post: Post | None = None) -> None:
    """Every ``period`` seconds, ``send_reports``; a failure is logged and retried."""
    from stalwart.periodic import every

    async def once() -> None:
        result = await send_reports(recorder, resolver, enqueue, org_name=org_name,
                                    submitter=submitter, sender=sender, post=post)
        if result["reports"] or result["skipped"]:
            log.info("tls reports: %s", result)
    await every(period, once, stop, first=first_delay, name="tls reports")


def install(queue: Any, resolver: Any, config: Any, stop: asyncio.Event
            ) -> Awaitable[None] | None:
    """Set up the queue process's transport security from the config: the MTA-STS cache
    (``queue.mta-sts.*``) and the TLS-RPT recorder (``queue.tls-report.*``) on
    ``queue.deliverer``; returns the daily report job to run (None when reports are off)."""
    from .mtasts import MtaSts

    deliverer = queue.deliverer
    if config.get("queue.mta-sts.enable"):
        deliverer.mtasts = MtaSts(resolver, timeout=config.get("queue.mta-sts.timeout"),
                                  port=config.get("queue.mta-sts.port"))
    from .dane import install as install_dane

    install_dane(deliverer, resolver, config)          # DANE (RFC 7672), queue.dane.*
    if not config.get("queue.tls-report.enable"):
        return None
    recorder = TlsRptRecorder()
    deliverer.tlsrpt = recorder
    hostname = config.get("server.hostname")
    sender = config.get("queue.tls-report.from") or f"noreply-tls@{hostname}"
    org = config.get("queue.tls-report.org-name") or hostname

    async def post(url: str, body: bytes) -> None:
        await post_report(url, body, resolver)

    from .signopts import SignOptions

    enqueue = signed_enqueue(queue, SignOptions.from_config(config))   # auth.dkim.sign.*
    return run_report_job(recorder, resolver, enqueue, stop, org_name=org,
                          submitter=hostname, sender=sender, post=post)


def signed_enqueue(queue: Any, options: Any = None) -> Enqueue:
    """``Enqueue`` into ``queue`` from the null sender, the report DKIM-signed first with
    the keys of its From domain when the store has some (RFC 8460 5.3 asks reports to be
    signed; ``stalwart.mailauth.keys.sign_outbound``, as ``options``, a
    ``signopts.SignOptions``, says). A signing error queues it unsigned."""
    async def enqueue(message: bytes, recipients: list[str]) -> Any:
        # Imported when a report goes out: ``keys`` brings ``cryptography`` (about 8 MiB),
        # which the queue process otherwise never needs.
        from .keys import sign_outbound

        try:
            message = sign_outbound(queue.store, message, options=options)
        except Exception as exc:                      # a broken key must not stop reports
            log.warning("tls report: DKIM signing failed, sending unsigned: %s", exc)
        return await queue.enqueue(message, return_path="", recipients=recipients)
    return enqueue
