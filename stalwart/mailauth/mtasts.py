"""MTA-STS (RFC 8461): the policies of the domains we send to, and our own policy.

Sending side (the queue process)::

    sts = MtaSts(resolver)                       # one per process; the cache lives here
    found = await sts.lookup("example.org")      # StsLookup: .policy (or None), .error
    found.policy.matches("mx1.example.org")      # RFC 8461 4.1 MX pattern matching

1. ``_mta-sts.<domain>`` TXT (RFC 8461 3.1), through ``stalwart.dns.Resolver``. Records
   not starting ``v=STSv1`` are dropped; unless exactly one is left, and it parses, the
   domain has no policy.
2. A cached policy whose TXT ``id`` is unchanged and whose ``max_age`` has not run out is
   used as is. Otherwise the policy is fetched: ``https://mta-sts.<domain>/.well-known/
   mta-sts.txt`` (RFC 8461 3.3) with the certificate verified against the system CAs and
   the host name, no redirects followed (any status but 200 is a failure), a
   ``text/plain`` body of at most 64 KiB, all within ``timeout`` seconds. The host's
   addresses come from the same resolver. Tests inject the port and the CA
   (``port=``, ``ssl_context=``); production uses 443 and the system store.
3. A fetch that fails keeps a cached policy that has not expired (RFC 8461 5.1: an
   attacker who blocks the fetch must not strip the policy) and is not retried for
   ``retry_after`` seconds. With no TXT record (or DNS trouble) an unexpired cached
   policy still applies (RFC 8461 5.1).

The cache is in memory, in the queue process (not in the store): it is rebuilt from DNS
and HTTPS after a restart, which costs one fetch per destination domain.

Applying a policy (``stalwart.queue.delivery``): ``enforce`` -> only MX hosts matching the
policy are used and TLS must be verified against the MX host name (failure: temporary,
retried later); ``testing`` -> delivery as without a policy, failures only reported
(TLS-RPT, ``stalwart.mailauth.tlsrpt``); ``none`` -> nothing. A message carrying
``TLS-Required: No`` (RFC 8689 5) is sent without applying MTA-STS.

Receiving side: ``policy_text(mode, mx, max_age)`` builds the policy the HTTP pool serves
at ``/.well-known/mta-sts.txt`` (``stalwart.http.wellknown``), and ``txt_record(id)`` the
TXT record to publish at ``_mta-sts.<domain>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import h11

from stalwart.dns import DnsError, Resolver

__all__ = ["Policy", "PolicyError", "StsRecord", "StsLookup", "MtaSts", "parse_txt_record",
           "parse_policy", "pattern_matches", "fetch_policy", "policy_text", "txt_record",
           "policy_id", "tls_required_no", "check_leaf_certificate", "MAX_POLICY_SIZE",
           "MAX_AGE_LIMIT", "MODES", "DeliveryPolicy", "delivery_policy"]

log = logging.getLogger("stalwart.mailauth.mtasts")

MAX_POLICY_SIZE = 64 * 1024          # RFC 8461 3.3: senders may limit the body to 64 KiB
MAX_AGE_LIMIT = 31_557_600           # RFC 8461 3.2: max_age is at most about a year
MODES = ("enforce", "testing", "none")
WELL_KNOWN = "/.well-known/mta-sts.txt"


class PolicyError(ValueError):
    """A record or policy that cannot be used. ``kind`` is the TLS-RPT result type
    (RFC 8460 4.3.2): ``sts-policy-fetch-error``, ``sts-policy-invalid`` or
    ``sts-webpki-invalid``."""

    def __init__(self, message: str, kind: str = "sts-policy-invalid") -> None:
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------- the TXT record
@dataclass(frozen=True, slots=True)
class StsRecord:
    id: str
    extensions: tuple[tuple[str, str], ...] = ()


_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")


def parse_txt_record(text: str) -> StsRecord:
    """``v=STSv1; id=20160831085700Z;`` (RFC 8461 3.1) or ``PolicyError``.

    ``v=STSv1`` must come first; ``id`` (1-32 letters and digits) is required; other
    fields must be well-formed extensions and are kept but not interpreted."""
    if not isinstance(text, str) or not text.startswith("v=STSv1"):
        raise PolicyError("the record does not start with v=STSv1")
    fields = [f.strip(" \t") for f in text.split(";")]
    if fields and fields[-1] == "":
        fields.pop()                      # a trailing delimiter is allowed
    if not fields or fields[0] != "v=STSv1":
        raise PolicyError("the record does not start with v=STSv1")
    ident: str | None = None
    extensions: list[tuple[str, str]] = []
    for f in fields[1:]:
        name, eq, value = f.partition("=")
        if not eq:
            raise PolicyError(f"malformed field {f!r}")
        if name == "id":
            if ident is not None:
                raise PolicyError("id appears twice")
            if not _ID.fullmatch(value):
                raise PolicyError(f"bad id {value!r} (1 to 32 letters and digits)")
            ident = value
        elif name == "v":
            raise PolicyError("v appears twice")
        elif _EXT_NAME.fullmatch(name) and _EXT_VALUE.fullmatch(value):
            extensions.append((name, value))
        else:
            raise PolicyError(f"malformed field {f!r}")
    if ident is None:
        raise PolicyError("the record has no id")
    return StsRecord(ident, tuple(extensions))


def select_record(records: Iterable[str]) -> StsRecord:
    """RFC 8461 3.1: drop the records not starting ``v=STSv1;``; exactly one must be left."""
    candidates = [r for r in records if isinstance(r, str) and r.startswith("v=STSv1")]
    if len(candidates) != 1:
        raise PolicyError(f"{len(candidates)} STSv1 records (exactly one is needed)")
    return parse_txt_record(candidates[0])


# ---------------------------------------------------------------------- the policy
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_PATTERN = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def pattern_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: ``mail.example.com`` matches itself; ``*.example.com`` matches one
    more label on the left (``mx1.example.com``), never ``example.com`` itself nor
    ``a.b.example.com``. Case-insensitive; a trailing dot on the host is ignored."""
    pattern, host = _host(pattern), _host(host)
    if not host or not pattern:
        return False
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first and dot and rest == pattern[2:])
    return host == pattern


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str                              # enforce | testing | none
    mx: tuple[str, ...]
    max_age: int
    version: str = "STSv1"
    text: str = ""                         # the policy as fetched, for TLS-RPT

    def matches(self, host: str) -> bool:
        return any(pattern_matches(p, host) for p in self.mx)

    @property
    def lines(self) -> list[str]:
        """The policy's lines (TLS-RPT ``policy-string``, RFC 8460 4.4)."""
        return [line.rstrip("\r") for line in self.text.split("\n") if line.strip()]


_FIELD = re.compile(r"([A-Za-z0-9_-]{1,32})[ \t]*:[ \t]*(.*?)[ \t]*")


def parse_policy(text: str | bytes) -> Policy:
    """The policy body (RFC 8461 3.2): ``key: value`` lines ended by CRLF or LF.

    Required: ``version: STSv1``, ``mode`` (enforce, testing, none), ``max_age`` (0 to
    31557600 seconds) and, unless the mode is ``none``, at least one ``mx`` pattern. Unknown
    fields are ignored; of repeated fields (other than ``mx``) the first counts."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("the policy is not UTF-8") from None
    if len(text.encode("utf-8")) > MAX_POLICY_SIZE:
        raise PolicyError("the policy is larger than 64 KiB")
    values: dict[str, str] = {}
    mx: list[str] = []
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        m = _FIELD.fullmatch(line)
        if m is None:
            raise PolicyError(f"malformed policy line {line[:80]!r}")
        key, value = m.group(1), m.group(2)
        if key == "mx":
            pattern = _host(value)
            if not _PATTERN.fullmatch(pattern):
                raise PolicyError(f"bad mx pattern {value[:80]!r}")
            mx.append(pattern)
        else:
            values.setdefault(key, value)
    if values.get("version") != "STSv1":
        raise PolicyError(f"unsupported policy version {values.get('version')!r}")
    mode = values.get("mode")
    if mode not in MODES:
        raise PolicyError(f"bad mode {mode!r}")
    age = values.get("max_age", "")
    if not re.fullmatch(r"[0-9]{1,10}", age) or int(age) > MAX_AGE_LIMIT:
        raise PolicyError(f"bad max_age {age!r}")
    if mode != "none" and not mx:
        raise PolicyError(f"a {mode} policy needs at least one mx pattern")
    return Policy(mode, tuple(mx), int(age), "STSv1", text)


# ---------------------------------------------------------------------- fetching
class _Unreachable(PolicyError):
    """One address could not be connected to; the next one is tried."""


def default_context() -> ssl.SSLContext:
    """System CAs, host name checked, TLS 1.2 or newer (RFC 8461 3.3: HTTPS with a
    certificate valid for ``mta-sts.<domain>``)."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def fetch_policy(domain: str, resolver: Resolver, *, port: int = 443,
                       ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0,
                       max_size: int = MAX_POLICY_SIZE) -> Policy:
    """Fetch and parse the policy of ``domain``; ``PolicyError`` on any failure."""
    host = f"mta-sts.{_host(domain)}"
    try:
        addrs = await resolver.addresses(host)
    except DnsError as exc:
        raise PolicyError(f"{host}: {exc.describe}", "sts-policy-fetch-error") from None
    ips = list(addrs.ipv4) + list(addrs.ipv6)
    if not ips:
        raise PolicyError(f"{host} has no address", "sts-policy-fetch-error")
    context = ssl_context or default_context()
    last: PolicyError | None = None
    try:
        async with asyncio.timeout(timeout):
            for ip in ips:
                try:
                    body = await _get(ip, port, host, context, max_size)
                except _Unreachable as exc:
                    last = exc                  # this address is unreachable: next one
                    continue
                return parse_policy(body)
    except TimeoutError:
        raise PolicyError(f"https://{host}{WELL_KNOWN}: timed out after {timeout:g}s",
                          "sts-policy-fetch-error") from None
    raise last or PolicyError(f"{host}: no address could be reached",
                              "sts-policy-fetch-error")


async def _get(ip: str, port: int, host: str, context: ssl.SSLContext,
               max_size: int) -> bytes:
    url = f"https://{host}{WELL_KNOWN}"
    try:
        reader, writer = await asyncio.open_connection(ip, port, ssl=context,
                                                       server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raise PolicyError(f"{url}: certificate not valid: {exc.verify_message}",
                          "sts-webpki-invalid") from None
    except ssl.SSLError as exc:
        raise PolicyError(f"{url}: TLS failed: {exc}", "sts-policy-fetch-error") from None
    except OSError as exc:
        raise _Unreachable(f"{url}: connect to [{ip}]:{port} failed: {exc}",
                           "sts-policy-fetch-error") from None
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=16 * 1024)
    try:
        writer.write(conn.send(h11.Request(method="GET", target=WELL_KNOWN, headers=[
            ("Host", host), ("User-Agent", "stalwart-mta-sts"), ("Accept", "text/plain"),
            ("Connection", "close")])))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        body = bytearray()
        response: h11.Response | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(16384)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                response = event
                if event.status_code != 200:
                    raise PolicyError(f"{url}: HTTP status {event.status_code} (only 200 is "
                                      "accepted; redirects are not followed)",
                                      "sts-policy-fetch-error")
                ctype = dict(event.headers).get(b"content-type", b"")
                media = ctype.split(b";", 1)[0].strip().lower()
                if media != b"text/plain":
                    raise PolicyError(f"{url}: content type {ctype.decode('latin-1')!r} "
                                      "(text/plain is required)", "sts-policy-invalid")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > max_size:
                    raise PolicyError(f"{url}: the policy is larger than {max_size} bytes",
                                      "sts-policy-invalid")
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if response is None or isinstance(event, h11.ConnectionClosed):
                    raise PolicyError(f"{url}: the connection closed early",
                                      "sts-policy-fetch-error")
                return bytes(body)
    except h11.RemoteProtocolError as exc:
        raise PolicyError(f"{url}: bad HTTP response: {exc}", "sts-policy-fetch-error") from None
    except (OSError, ssl.SSLError) as exc:
        raise PolicyError(f"{url}: {exc}", "sts-policy-fetch-error") from None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


# ---------------------------------------------------------------------- the cache
@dataclass(slots=True)
class _Cached:
    record_id: str
    policy: Policy
    expires: float                          # fetched + max_age


@dataclass(frozen=True, slots=True)
class StsLookup:
    """What applies to a domain now. ``policy`` None: no usable policy (``error`` says
    why when the domain announced one: a TLS-RPT result type and a message)."""

    domain: str
    policy: Policy | None = None
    policy_id: str | None = None
    error: tuple[str, str] | None = None
    cached: bool = False

    @property
    def enforced(self) -> bool:
        return self.policy is not None and self.policy.mode == "enforce"


class MtaSts:
    """The policy cache of one process (see the module contract)."""

    def __init__(self, resolver: Resolver, *, port: int = 443,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0,
                 retry_after: float = 300.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.time,
                 fetch: Callable[..., Any] | None = None) -> None:
        self.resolver = resolver
        self.port = port
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.retry_after = retry_after
        self.max_entries = max_entries
        self.clock = clock
        self._fetch = fetch or fetch_policy
        self._cache: dict[str, _Cached] = {}
        self._failed: dict[tuple[str, str], tuple[float, PolicyError]] = {}
        self._inflight: dict[str, asyncio.Future[StsLookup]] = {}
        self.fetches = 0

    def cached(self, domain: str) -> Policy | None:
        entry = self._cache.get(_host(domain))
        return entry.policy if entry is not None and entry.expires > self.clock() else None

    async def lookup(self, domain: str) -> StsLookup:
        """The policy for ``domain`` now; never raises for DNS, network or policy errors."""
        domain = _host(domain)
        while (pending := self._inflight.get(domain)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise                        # this caller was cancelled
                # The caller doing the lookup was cancelled: do it here instead (never
                # "no policy" for a domain that may have one).
        future: asyncio.Future[StsLookup] = asyncio.get_running_loop().create_future()
        self._inflight[domain] = future
        try:
            result = await self._lookup(domain)
            future.set_result(result)
            return result
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            self._inflight.pop(domain, None)

    async def _lookup(self, domain: str) -> StsLookup:
        now = self.clock()
        entry = self._cache.get(domain)
        if entry is not None and entry.expires <= now:
            del self._cache[domain]
            entry = None
        try:
            answer = await self.resolver.txt(f"_mta-sts.{domain}")
            record = select_record(answer.records)
        except DnsError:
            # No record, or DNS trouble: a cached policy still holds (RFC 8461 5.1).
            if entry is not None:
                return StsLookup(domain, entry.policy, entry.record_id, cached=True)
            return StsLookup(domain)
        except PolicyError as exc:
            if entry is not None:
                return StsLookup(domain, entry.policy, entry.record_id, cached=True)
            return StsLookup(domain, error=(exc.kind, f"_mta-sts.{domain}: {exc}"))
        if entry is not None and entry.record_id == record.id:
            return StsLookup(domain, entry.policy, entry.record_id, cached=True)
        failed = self._failed.get((domain, record.id))
        if failed is not None and failed[0] > now:
            error = failed[1]
        else:
            self.fetches += 1
            try:
                policy = await self._fetch(domain, self.resolver, port=self.port,
                                           ssl_context=self.ssl_context, timeout=self.timeout)
            except Exception as exc:                  # PolicyError, or a bug: never fatal
                if not isinstance(exc, PolicyError):
                    log.warning("mta-sts fetch for %s failed unexpectedly: %r", domain, exc)
                    exc = PolicyError(f"fetch failed: {exc!r}", "sts-policy-fetch-error")
                error = exc
                self._failed[(domain, record.id)] = (now + self.retry_after, exc)
                log.info("mta-sts policy of %s (id %s) not usable: %s", domain, record.id, exc)
            else:
                self._failed.pop((domain, record.id), None)
                if len(self._cache) >= self.max_entries:
                    self._evict(now)
                self._cache[domain] = _Cached(record.id, policy, now + policy.max_age)
                log.info("mta-sts policy of %s (id %s): mode %s, mx %s, max_age %d", domain,
                         record.id, policy.mode, ",".join(policy.mx), policy.max_age)
                return StsLookup(domain, policy, record.id)
        if entry is not None:
            # The new policy could not be fetched: the old one stays until it expires.
            return StsLookup(domain, entry.policy, entry.record_id, error=(error.kind, str(error)),
                             cached=True)
        return StsLookup(domain, error=(error.kind, str(error)))

    def _evict(self, now: float) -> None:
        for d in [d for d, e in self._cache.items() if e.expires <= now]:
            del self._cache[d]
        while len(self._cache) >= self.max_entries:
            del self._cache[min(self._cache, key=lambda d: self._cache[d].expires)]
        self._failed = {k: v for k, v in self._failed.items() if v[0] > now}


# ---------------------------------------------------------------------- while delivering
_TLS_REQUIRED_NO = re.compile(rb"(?im)^TLS-Required[ \t]*:[ \t]*No[ \t]*\r?$")


def tls_required_no(message: bytes) -> bool:
    """Does the header of ``message`` hold ``TLS-Required: No`` (RFC 8689 5)? Only the
    header block is looked at (up to the first empty line); folding is not expected."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    header = message if end < 0 else message[:end + 2]
    return _TLS_REQUIRED_NO.search(header) is not None


def check_leaf_certificate(der: bytes | None, host: str, now: float | None = None
                           ) -> tuple[str, str] | None:
    """For ``testing`` policies, where delivery runs over opportunistic TLS: is the
    server's own certificate valid for ``host`` and in its validity period? None if so,
    else ``(TLS-RPT result type, detail)``. The chain to a trusted CA is not checked here
    (``enforce`` checks everything through a verifying TLS context)."""
    if not der:
        return ("validation-failure", "the server sent no certificate")
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return ("validation-failure", f"unreadable certificate: {exc}")
    now = time.time() if now is None else now
    if not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
        return ("certificate-expired", "the certificate is outside its validity period")
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = [a.value.lower() for a in cert.subject.get_attributes_for_oid(
            x509.oid.NameOID.COMMON_NAME) if isinstance(a.value, str)]
    if not any(pattern_matches(n, host) for n in names):
        return ("certificate-host-mismatch", f"the certificate does not name {host}")
    return None


class DeliveryPolicy:
    """The transport policy of one delivery attempt to one domain, as the queue's
    deliverer applies it (``stalwart.queue.delivery``), and where its sessions are
    recorded for TLS-RPT.

    ``enforce``: only MX hosts the policy allows, TLS verified against the MX host name.
    It holds for an ``enforce`` policy, and for any MTA-STS policy (``testing`` too) when
    the message is REQUIRETLS (RFC 8689 4.2.1: use the MTA-STS policy when there is one).
    Only an ``enforce`` policy (``policy.mode``) vouches for an MX answer that DNSSEC did
    not validate (``stalwart.queue.delivery.requiretls_mx_refusal``); a ``testing`` one
    only filters hosts. ``TLS-Required: No`` without REQUIRETLS (RFC 8689 5) turns MTA-STS
    off."""

    def __init__(self, domain: str, found: StsLookup | None, *, requiretls: bool = False,
                 recorder: Any = None) -> None:
        from .tlsrpt import PolicyKey

        self.domain = domain
        self.found = found
        self.policy = found.policy if found is not None else None
        mode = self.policy.mode if self.policy is not None else "none"
        self.enforce = mode == "enforce" or (requiretls and mode == "testing")
        self.testing = mode == "testing" and not self.enforce
        self.recorder = recorder
        if self.policy is not None and mode != "none":
            self.key = PolicyKey.sts(self.policy)
        elif found is not None and found.error is not None:
            self.key = PolicyKey.sts(None)
        else:
            self.key = PolicyKey()
        if recorder is not None and found is not None and found.error is not None \
                and self.policy is None:
            recorder.failure(domain, self.key, found.error[0], info=found.error[1])

    def allows(self, host: str) -> bool:
        """May ``host`` be used? Always in ``testing`` (a mismatch is only reported)."""
        if self.policy is None or self.policy.mode == "none" or self.policy.matches(host):
            return True
        if self.recorder is not None:
            self.recorder.failure(self.domain, self.key, "validation-failure", mx_host=host,
                                  info="MX host not allowed by the MTA-STS policy")
        return not self.enforce

    def session(self, host: str, ip: str, client: Any) -> None:
        """Record a session that reached EHLO (after STARTTLS when there was one)."""
        if self.recorder is None:
            return
        if not getattr(client, "tls", False):
            self.recorder.failure(self.domain, self.key, "starttls-not-supported",
                                  mx_host=host, receiving_ip=ip)
            return
        if self.testing:
            # Opportunistic TLS: check the server's certificate ourselves, for the report.
            writer = getattr(client, "_writer", None)
            obj = writer.get_extra_info("ssl_object") if writer is not None else None
            der = obj.getpeercert(binary_form=True) if obj is not None else None
            problem = check_leaf_certificate(der, host)     # real time, not the queue's clock
            if problem is not None:
                self.recorder.failure(self.domain, self.key, problem[0], mx_host=host,
                                      receiving_ip=ip, info=problem[1])
                return
        self.recorder.success(self.domain, self.key)

    def tls_failed(self, host: str, ip: str, message: str) -> None:
        """Record a TLS handshake that failed (``message``: the ssl error text)."""
        if self.recorder is not None:
            from .tlsrpt import classify_tls_error

            self.recorder.failure(self.domain, self.key, classify_tls_error(message),
                                  mx_host=host, receiving_ip=ip, info=message[:200])


async def delivery_policy(mtasts: "MtaSts | None", recorder: Any, domain: str, *,
                          requiretls: bool, message: bytes) -> DeliveryPolicy:
    """The ``DeliveryPolicy`` for one attempt to ``domain`` (an MX route)."""
    found = None
    if mtasts is not None and (requiretls or not tls_required_no(message)):
        found = await mtasts.lookup(domain)
    return DeliveryPolicy(domain, found, requiretls=requiretls, recorder=recorder)


# ---------------------------------------------------------------------- our own policy
def policy_text(mode: str, mx: Sequence[str], max_age: int) -> str:
    """The policy we serve (RFC 8461 3.2), lines ended by CRLF."""
    if mode not in MODES:
        raise ValueError(f"bad MTA-STS mode {mode!r}")
    if not 0 <= int(max_age) <= MAX_AGE_LIMIT:
        raise ValueError(f"max_age {max_age} outside 0..{MAX_AGE_LIMIT}")
    patterns = []
    for host in mx:
        pattern = _host(host)
        if not _PATTERN.fullmatch(pattern):
            raise ValueError(f"bad MX pattern {host!r}")
        patterns.append(pattern)
    if mode != "none" and not patterns:
        raise ValueError("a policy in enforce or testing mode needs an MX host")
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {p}" for p in patterns),
             f"max_age: {int(max_age)}"]
    return "".join(line + "\r\n" for line in lines)


def policy_id(text: str) -> str:
    """A TXT ``id`` that changes whenever the policy text changes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def txt_record(ident: str) -> str:
    """The ``_mta-sts.<domain>`` TXT value announcing a policy (RFC 8461 3.1)."""
    if not _ID.fullmatch(ident):
        raise ValueError(f"bad policy id {ident!r}")
    return f"v=STSv1; id={ident}"


def policy_from_config(config: Any) -> str:
    """Our policy from ``auth.mta-sts.*``: the MX list defaults to ``server.hostname``."""
    mx = list(config.get("auth.mta-sts.mx") or []) or [config.get("server.hostname")]
    return policy_text(config.get("auth.mta-sts.mode"), mx,
                       int(config.get("auth.mta-sts.max-age")))


__all__ += ["policy_from_config", "select_record", "default_context", "WELL_KNOWN"]
