"""BIMI (draft-brand-indicators-for-message-identification): the assertion record of a
message's author domain, for mail that passed DMARC at an enforcing policy.

    result = await lookup(dmarc_result, resolver)
    result.result            # pass | none | fail | temperror | declined | skipped
    result.location_header() # "BIMI-Location: v=BIMI1; l=https://..." (pass only)

Steps (draft section 7):
- 7.1 requirements: exactly one From domain (the caller's DMARC evaluation already
  refused several), DMARC ``pass``, the policy that applied is ``quarantine`` or
  ``reject``, no ``sp=none``, and ``pct=100`` with ``quarantine``. Otherwise ``skipped``.
- 7.2 discovery: ``default._bimi.<author domain>``, then
  ``default._bimi.<organisational domain>``; only records starting ``v=BIMI1`` count; none
  or several left is ``none``/``fail``. (The ``BIMI-Selector`` header is not honoured: the
  draft wants it covered by an aligned DKIM signature, and ``lps=`` is not implemented;
  the ``default`` selector is always used.)
- 7.3/7.5 the record: ``l=`` must be one ``https:`` URI (or empty); ``l=`` and ``a=``
  both empty is a declination (``declined``).

- 7.5/7.6 the indicator, when a fetcher is given (``auth.bimi.indicator``): fetched
  over HTTPS (``IndicatorFetcher``: certificate checked, public addresses only, 32 KB,
  5 s, no redirects, cached per URL) and checked against the SVG Tiny PS profile
  (``check_svg``); a pass then carries it for ``BIMI-Indicator`` (base64, folded) and
  ``policy.indicator-hash``; a failure is ``fail`` and adds no BIMI field.

Not done: evidence documents (``a=``, mark certificates) are not verified, so
``policy.authority`` is always ``none``; the Tiny PS check is the structural subset
listed in ``check_svg``, not a full RelaxNG validation. Sender-supplied
``BIMI-Location``/``BIMI-Indicator``/``BIMI-Logo-Preference`` fields are removed by the
inbound pipeline whatever the result (draft 7.8).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from stalwart.dns import DnsError, InvalidName, NoData, NxDomain

from .dmarc import organizational_domain

__all__ = ["BimiResult", "BimiRecord", "lookup", "parse_record", "BimiError"]

SELECTOR = "default"
_URI = re.compile(r"https://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?(?:/[!-~]*)?\Z")


class BimiError(ValueError):
    pass


@dataclass(frozen=True)
class BimiRecord:
    location: str            # l=, "" when declining
    authority: str = ""      # a=


@dataclass(frozen=True)
class BimiResult:
    result: str              # pass | none | fail | temperror | declined | skipped
    domain: str = ""         # where the record was found (author or org domain)
    selector: str = SELECTOR
    record: BimiRecord | None = None
    reason: str = ""
    indicator: bytes | None = None    # the fetched, checked SVG (uncompressed)

    def location_header(self) -> str | None:
        if self.result != "pass" or self.record is None or not self.record.location:
            return None
        return f"BIMI-Location: v=BIMI1;\r\n\tl={self.record.location}"

    def indicator_header(self) -> str | None:
        """BIMI-Indicator (draft 5.3, 7.10): the SVG in base64, folded."""
        if self.result != "pass" or not self.indicator:
            return None
        text = base64.b64encode(self.indicator).decode("ascii")
        lines = [text[:60]] + [text[i:i + 76] for i in range(60, len(text), 76)]
        return "BIMI-Indicator: " + "\r\n\t".join(lines)    # lines of at most 77

    @property
    def indicator_hash(self) -> str:
        """policy.indicator-hash (draft 7.7): the end of the SVG's SHA-256, 8 characters."""
        return hashlib.sha256(self.indicator).hexdigest()[-8:] if self.indicator else ""


def is_bimi_record(text: str) -> bool:
    head = text.split(";", 1)[0]
    name, eq, value = head.partition("=")
    return bool(eq) and name.strip() == "v" and value.strip() == "BIMI1"


def parse_record(text: str) -> BimiRecord:
    """The assertion record (draft 4.3); BimiError when a tag is malformed."""
    if not text.isascii():
        raise BimiError("the record contains non-ASCII characters")
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name:
            raise BimiError(f"malformed tag {part!r}")
        if i == 0 and (name != "v" or value != "BIMI1"):
            raise BimiError("the record does not start with v=BIMI1")
        if name in tags:
            raise BimiError(f"tag {name}= repeated")
        tags[name] = value
    if "l" not in tags:
        raise BimiError("the record has no l= tag")
    location, authority = tags["l"], tags.get("a", "")
    for what, uri in (("l", location), ("a", authority)):
        if uri and ("," in uri or not _URI.match(uri)):
            raise BimiError(f"{what}= is not a single https URI: {uri!r}")
    return BimiRecord(location, authority)


async def _records(resolver: Any, domain: str) -> list[str]:
    try:
        answer = await resolver.txt(f"{SELECTOR}._bimi.{domain}")
    except (NxDomain, NoData, InvalidName):
        return []
    return [r for r in answer.records if is_bimi_record(r)]


def requirements_met(dmarc: Any) -> str:
    """"" when a DMARC result allows BIMI (draft 7.1), else why not."""
    if dmarc is None or getattr(dmarc, "result", "") != "pass":
        return "message failed DMARC"
    record = getattr(dmarc, "record", None)
    if record is None:
        return "no DMARC record"
    if dmarc.policy not in ("quarantine", "reject"):
        return "DMARC policy is not enforcing"
    if record.sp == "none" or record.p == "none":
        return "DMARC policy is not enforcing"
    if dmarc.policy == "quarantine" and record.pct != 100:
        return "DMARC quarantine policy with pct below 100"
    return ""


async def lookup(dmarc: Any, resolver: Any, *, fetcher: Any = None) -> BimiResult:
    """The BIMI result for a message whose DMARC evaluation is ``dmarc``. With a
    ``fetcher`` (``IndicatorFetcher``) the indicator is fetched and checked: a failure
    makes the result ``fail`` (no BIMI-Location then, draft 7.9), a success carries the
    SVG for BIMI-Indicator."""
    why_not = requirements_met(dmarc)
    if why_not:
        return BimiResult("skipped", reason=why_not)
    author = dmarc.header_from
    try:
        domain, records = author, await _records(resolver, author)
        if not records:
            org = organizational_domain(author)
            if org != author:
                domain, records = org, await _records(resolver, org)
    except DnsError as exc:
        return BimiResult("temperror", author, reason=str(exc))
    if not records:
        return BimiResult("none", author, reason="no BIMI record")
    if len(records) > 1:
        return BimiResult("fail", domain, reason="more than one BIMI record")
    try:
        record = parse_record(records[0])
    except BimiError as exc:
        return BimiResult("fail", domain, reason=str(exc))
    if not record.location and not record.authority:
        return BimiResult("declined", domain, record=record)
    if not record.location:
        return BimiResult("fail", domain, record=record,
                          reason="only an evidence document, which is not verified here")
    if fetcher is None:
        return BimiResult("pass", domain, record=record)
    data, problem = await fetcher(record.location)
    if data is not None:
        svg = _uncompressed(data)
        problem = check_svg(svg) if svg is not None else "bad SVGZ"
    if problem:
        return BimiResult("fail", domain, record=record, reason=problem)
    return BimiResult("pass", domain, record=record, indicator=svg)


def _uncompressed(data: bytes) -> bytes | None:
    """SVGZ (gzip) inflated, at most MAX_SVG + 1 bytes; SVG as is; None if broken."""
    import zlib

    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, MAX_SVG + 1)
    except zlib.error:
        return None


# ---------------------------------------------------------------------- the indicator
MAX_SVG = 32 * 1024                      # BIMI SVG guidance: at most 32 KB
FETCH_TIMEOUT = 5.0
_SVG_NS = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
#: Elements SVG Tiny Portable/Secure leaves out: scripts, animation, interactivity,
#: multimedia, raster images and foreign content.
_FORBIDDEN = {"script", "image", "foreignObject", "animate", "animateColor", "animateMotion",
              "animateTransform", "set", "a", "video", "audio", "iframe", "handler",
              "listener", "discard", "switch"}


def check_svg(data: bytes) -> str:
    """"" when ``data`` is an SVG (or gzipped SVGZ) that fits the SVG Tiny PS profile as
    BIMI requires; else what is wrong. Checks: size, XML without DTD or entities, an
    ``svg`` root with ``version="1.2"`` and ``baseProfile="tiny-ps"``, no ``x``/``y`` on
    the root, a non-empty ``title`` child, none of the excluded elements, no event
    attributes, and no reference outside the document (only ``#fragment`` links)."""
    from xml.etree import ElementTree as ET

    inflated = _uncompressed(data)
    if inflated is None:
        return "bad SVGZ"
    data = inflated
    if len(data) > MAX_SVG:
        return f"larger than {MAX_SVG} bytes"
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return "DTDs and entities are not allowed"
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return f"not XML: {exc}"
    if root.tag != _SVG_NS + "svg":
        return "the root element is not an SVG svg element"
    if root.get("version") != "1.2" or root.get("baseProfile") != "tiny-ps":
        return 'the root must say version="1.2" baseProfile="tiny-ps"'
    if root.get("x") is not None or root.get("y") is not None:
        return "x= and y= are not allowed on the root element"
    title = root.find(_SVG_NS + "title")
    if title is None or not (title.text or "").strip():
        return "the svg element has no title"
    for el in root.iter():
        name = el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""
        if name in _FORBIDDEN:
            return f"element {name!r} is not allowed in SVG Tiny PS"
        for attr, value in el.attrib.items():
            local = attr.rpartition("}")[2]
            if local.lower().startswith("on"):
                return f"event attribute {local!r} is not allowed"
            if (attr == _XLINK_HREF or local == "href") and not value.startswith("#"):
                return "external references are not allowed"
            if "url(" in value and "url(#" not in value.replace(" ", ""):
                return "external references are not allowed"
    return ""


class IndicatorFetcher:
    """Fetches BIMI indicators over HTTPS (draft 7.5): the host resolved through our
    resolver, private and loopback addresses refused (the URL comes from a stranger's
    DNS), the certificate checked against ``ssl_context`` (the system roots by default),
    a 200 answer only (no redirects), at most ``MAX_SVG`` bytes within
    ``FETCH_TIMEOUT``. Results, good or bad, are cached per URL for ``ttl`` seconds."""

    def __init__(self, resolver: Any, *, ssl_context: Any = None, timeout: float = FETCH_TIMEOUT,
                 ttl: float = 3600.0, max_entries: int = 1000, allow_private: bool = False,
                 clock: Any = None) -> None:
        import ssl
        import time

        self.resolver = resolver
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout = timeout
        self.ttl = ttl
        self.max_entries = max_entries
        self.allow_private = allow_private
        self.clock = clock or time.monotonic
        self._cache: dict[str, tuple[float, bytes | None, str]] = {}
        self.fetches = 0

    async def __call__(self, url: str) -> tuple[bytes | None, str]:
        """(SVG bytes, "") or (None, what went wrong)."""
        now = self.clock()
        hit = self._cache.get(url)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        try:
            data, problem = await asyncio.wait_for(self._fetch(url), self.timeout), ""
        except asyncio.TimeoutError:
            data, problem = None, f"fetching the indicator took over {self.timeout:g}s"
        except (OSError, ValueError, DnsError) as exc:
            data, problem = None, f"could not fetch the indicator: {exc}"
        if len(self._cache) >= self.max_entries:
            self._cache.pop(next(iter(self._cache)))
        self._cache[url] = (now + self.ttl, data, problem)
        return data, problem

    async def _fetch(self, url: str) -> bytes:
        import ipaddress
        import urllib.parse

        import h11

        self.fetches += 1
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the indicator URL is not https")
        host, port = parts.hostname, parts.port or 443
        addresses = await self.resolver.addresses(host)
        ips = list(addresses.ipv4) + list(addresses.ipv6)
        if not self.allow_private:
            ips = [ip for ip in ips if ipaddress.ip_address(ip).is_global]
        if not ips:
            raise ValueError(f"{host} has no public address")
        reader, writer = await asyncio.open_connection(ips[0], port, ssl=self.ssl_context,
                                                       server_hostname=host)
        try:
            conn = h11.Connection(our_role=h11.CLIENT)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            writer.write(conn.send(h11.Request(method="GET", target=target, headers=[
                ("Host", host if port == 443 else f"{host}:{port}"),
                ("User-Agent", "stalwart-bimi"), ("Accept", "image/svg+xml"),
                ("Connection", "close")])))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(16384))
                    continue
                if isinstance(event, h11.Response):
                    if event.status_code != 200:
                        raise ValueError(f"the indicator URL answered {event.status_code}")
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_SVG:
                        raise ValueError(f"the indicator is larger than {MAX_SVG} bytes")
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return bytes(body)
        except h11.RemoteProtocolError as exc:
            raise ValueError(f"bad HTTP answer: {exc}") from None
        finally:
            writer.close()
