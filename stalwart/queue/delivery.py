"""One delivery attempt for the recipients of one message in one domain.

``Deliverer.deliver(message, data, domain, rcpts)`` returns an outcome per recipient (an
SMTP reply, the server's or one we made up) and the attempts it made. It never raises
for anything the network or DNS does.

Order of work (RFC 5321 5.1; Postfix's smtp(8) and mox's queue behave alike):

1. The route (``Deliverer.route_for``): MX, a smarthost, or local delivery (the
   server's own domains, unless a route names them).
2. MX: the hosts in preference order (``Resolver.mx_hosts``). NXDOMAIN -> 550 5.1.2;
   null MX -> 556 5.1.10 (RFC 7505 4.2); DNS trouble -> 451 4.4.3. An address literal
   domain (``[192.0.2.1]``) is its own host. A host that is ourselves is skipped (5.4.6).
3. For each host, its addresses (IPv6 and IPv4 alternating, the preferred family first),
   at most ``max_connect_attempts`` connections per attempt. A reused session is taken
   first when the pool has one.
4. Session set-up: greeting, EHLO, STARTTLS when offered (opportunistic, certificate not
   checked: RFC 7435) or required (relay ``starttls``/``implicit``; REQUIRETLS messages
   always, with the certificate checked against the MX host name), EHLO again, AUTH for a
   smarthost (never in clear text unless the route allows it). A failed opportunistic
   handshake is retried once without TLS on a fresh connection, like Postfix.
   MTA-STS (RFC 8461, ``stalwart.mailauth.mtasts``, when ``Deliverer.mtasts`` is set): an
   ``enforce`` policy (or any policy for a REQUIRETLS message) keeps only the MX hosts it
   names (others: 451 4.7.5) and requires TLS verified against the MX host name;
   ``TLS-Required: No`` turns it off (RFC 8689 5). Sessions are counted for TLS-RPT
   (``Deliverer.tlsrpt``, RFC 8460).
   DANE (RFC 7672, ``stalwart.mailauth.dane``, when ``Deliverer.dane`` is set): for an MX
   route whose MX and address answers were DNSSEC-validated, validated TLSA records of a
   host make STARTTLS mandatory and, when usable, its certificate must match them (else
   451 4.7.5 for that host, never a clear-text retry); a failed TLSA lookup (bogus) is
   451 4.7.5 for that host. A host with usable TLSA records is exempt from MTA-STS
   (RFC 8461 2); ``TLS-Required: No`` turns DANE off too.
5. Checks before MAIL: SIZE (552 5.3.4 when the server's limit is smaller), 8-bit content
   without 8BITMIME (554 5.6.3: we do not downgrade), SMTPUTF8 needed but not offered
   (553 5.6.7, RFC 6531 3.4), REQUIRETLS not offered (550 5.7.30, RFC 8689 4.2.1).
6. The transaction with DSN parameters passed on when the server has DSN (RFC 3461 4);
   otherwise the recipients are marked ``relayed`` so a success DSN can say so.

REQUIRETLS (RFC 8689 4.2.1, ``message.requiretls``) on an MX route: the MX answer must be
DNSSEC-validated or the domain must have an MTA-STS policy in ``enforce`` mode (whose MX
patterns then filter the hosts), else nothing is sent and every recipient fails with
550 5.7.10 (``requiretls_mx_refusal``; 451 4.7.10 while an announced policy cannot be
fetched); an address literal domain is refused the same way. Each host must then give
STARTTLS authenticated by PKIX against the MX host name or by DANE, and offer
REQUIRETLS. When no host does, the message is not sent in clear or unchecked TLS but
bounced: 550 5.7.30 when the last host lacked REQUIRETLS, else 550 5.7.10 (the RFC asks
for a non-delivery notification, so this is permanent); failures that have nothing to
do with TLS (connection refused) keep it a temporary failure. ``TLS-Required: No``
(RFC 8689 5) turns MTA-STS and DANE off and allows the clear-text retry of a failed
opportunistic handshake; it is ignored for REQUIRETLS messages and never relaxes a
relay route's configured TLS.

A failure before the transaction (connect, greeting, EHLO, TLS, AUTH, 421) moves on to the
next address or host; once a transaction ran, its replies are the outcome. If every host
failed, the outcome is the last error: permanent only when every host answered with a
permanent refusal, else temporary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from stalwart.dns import (Addresses, DnsError, InvalidName, MxHost, NxDomain, Resolver,
                          TempFail)
from stalwart.mailauth.mtasts import delivery_policy, tls_required_no

from .client import ServerReply, SmtpClient, SmtpError
from .model import Attempt, QueuedMessage, QueuedRecipient, Reply
from .pool import ConnectionPool
from .settings import QueueSettings, Route

__all__ = ["Deliverer", "Outcome", "DomainResult", "LocalDeliver", "order_addresses",
           "xtext", "orcpt_param", "opportunistic_context", "verified_context",
           "requiretls_mx_refusal"]

log = logging.getLogger("stalwart.queue")

#: ``async local(message, data, recipients) -> [Reply per recipient]``
LocalDeliver = Callable[[QueuedMessage, bytes, list[QueuedRecipient]], Awaitable[list[Reply]]]


@dataclass(slots=True)
class Outcome:
    rcpt: QueuedRecipient
    reply: Reply
    host: str = ""
    relayed: bool = False         # accepted by a host that does not offer DSN


@dataclass(slots=True)
class DomainResult:
    outcomes: list[Outcome]
    attempts: list[Attempt] = field(default_factory=list)


class _HostFailure(Exception):
    """A host could not take the message; try the next one."""

    def __init__(self, reply: Reply, *, requiretls: bool = False) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.requiretls = requiretls


_LOCAL_ROUTE = Route(kind="local")


def opportunistic_context() -> ssl.SSLContext:
    """TLS without certificate checks (RFC 7435): better than clear text, and it never
    makes delivery fail where clear text would have worked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def verified_context(cafile: str | None = None) -> ssl.SSLContext:
    """TLS 1.2+ with the certificate checked against the system CAs (or ``cafile``) and
    the host name (RFC 6125)."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def xtext(value: str) -> str:
    """RFC 3461 4: characters outside ``!``..``~``, and ``+`` and ``=``, as ``+HH``."""
    return "".join(ch if 33 <= ord(ch) <= 126 and ch not in "+=" else f"+{ord(ch):02X}"
                   for ch in value)


def orcpt_param(addr_type: str, address: str) -> str:
    """ORCPT value: ``rfc822;xtext`` for ASCII, RFC 6533 ``utf-8;`` with ``\\x{HEX}``
    escapes otherwise (pure ASCII on the wire, so any DSN server takes it)."""
    if address.isascii():
        return f"{addr_type};{xtext(address)}"
    escaped = "".join(f"\\x{{{ord(ch):X}}}" if not 33 <= ord(ch) <= 126 or ch in "+=\\"
                      else ch for ch in address)
    return f"utf-8;{escaped}"


def order_addresses(addrs: Addresses, *, prefer_ipv6: bool, ipv4: bool = True,
                    ipv6: bool = True) -> list[str]:
    """The addresses of a host in the order to try: the families alternate, starting with
    the preferred one (so one broken family costs one timeout, not all of them)."""
    v6 = list(addrs.ipv6) if ipv6 else []
    v4 = list(addrs.ipv4) if ipv4 else []
    first, second = (v6, v4) if prefer_ipv6 else (v4, v6)
    out: list[str] = []
    for i in range(max(len(first), len(second))):
        if i < len(first):
            out.append(first[i])
        if i < len(second):
            out.append(second[i])
    return out


def _literal(domain: str) -> str | None:
    """``[192.0.2.1]`` / ``[IPv6:2001:db8::1]`` -> the address (RFC 5321 4.1.3)."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None


def requiretls_mx_refusal(domain: str, mx_secure: bool, sts: Any) -> Reply | None:
    """RFC 8689 4.2.1 step 2 for a REQUIRETLS message: the MX answer must be protected,
    by DNSSEC (``mx_secure``: the AD bit of the MX answer, or of the validated denial
    behind an implicit MX) or by an MTA-STS policy in ``enforce`` mode (whose MX patterns
    then filter the hosts). None when it is; else the reply for every recipient: a
    permanent 5.7.10 (the RFC asks for a non-delivery notification, not a retry), or a
    temporary 4.7.10 when the domain announces an MTA-STS policy we could not fetch (it
    may protect the MX next time)."""
    if mx_secure:
        return None
    policy = getattr(sts, "policy", None)
    if policy is not None and policy.mode == "enforce":
        return None
    found = getattr(sts, "found", None)
    if found is not None and found.error is not None:
        return _local(451, "4.7.10", f"REQUIRETLS: the MX records of {domain} are not "
                      f"DNSSEC-validated and its MTA-STS policy is not available "
                      f"({found.error[1][:200]})")
    why = "no MTA-STS policy" if policy is None else f"an MTA-STS policy in {policy.mode} mode"
    return _local(550, "5.7.10", f"REQUIRETLS: the MX records of {domain} are not "
                  f"DNSSEC-validated and it has {why}, so the MX hosts cannot be trusted "
                  "(RFC 8689 4.2.1)")


def _reply(r: ServerReply) -> Reply:
    return Reply(r.code, r.status, r.text[:500], remote=True)


def _local(code: int, status: str, text: str) -> Reply:
    return Reply(code, status, text, remote=False)


class Deliverer:
    #: MTA-STS policy cache (``stalwart.mailauth.mtasts.MtaSts``) and TLS-RPT recorder
    #: (``stalwart.mailauth.tlsrpt.TlsRptRecorder``); None: not used.
    mtasts: Any = None
    tlsrpt: Any = None
    #: DANE TLSA lookups (``stalwart.mailauth.dane.Dane``); None: not used.
    dane: Any = None

    def __init__(self, settings: QueueSettings, resolver: Resolver, pool: ConnectionPool, *,
                 local: LocalDeliver | None = None,
                 is_local_domain: Callable[[str], bool] | None = None,
                 tls_verified: ssl.SSLContext | None = None,
                 tls_opportunistic: ssl.SSLContext | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.resolver = resolver
        self.pool = pool
        self.local = local
        self.is_local_domain = is_local_domain
        # Built on first use: the system CA store costs the queue process about 2 MiB,
        # which an instance that never relays should not pay.
        self._tls_verified = tls_verified
        self._tls_opportunistic = tls_opportunistic
        self.clock = clock

    @property
    def tls_verified(self) -> ssl.SSLContext:
        if self._tls_verified is None:
            self._tls_verified = verified_context()
        return self._tls_verified

    @property
    def tls_opportunistic(self) -> ssl.SSLContext:
        if self._tls_opportunistic is None:
            self._tls_opportunistic = opportunistic_context()
        return self._tls_opportunistic

    # ------------------------------------------------------------------ entry point
    async def deliver(self, message: QueuedMessage, data: bytes, domain: str,
                      rcpts: list[QueuedRecipient]) -> DomainResult:
        route = self.route_for(domain)
        if route.kind == "local":
            return await self._deliver_local(message, data, domain, rcpts)
        result = DomainResult([])
        security: dict[str, Any] = {}
        try:
            targets = await self._targets(route, domain, security)
        except _HostFailure as exc:
            result.attempts.append(Attempt(self.clock(), domain, "", "", exc.reply))
            result.outcomes = [Outcome(r, exc.reply) for r in rcpts]
            return result
        port = route.port if route.kind == "relay" else self.settings.mx_port
        sts = None
        dane: dict[str, Any] = {}
        if route.kind == "mx" and message.requiretls and _literal(domain) is not None:
            return self._refused(result, domain, rcpts, _local(
                550, "5.7.10", f"REQUIRETLS: {domain} is an address literal, whose server "
                "cannot be authenticated (RFC 8689 4.2.1)"))
        if route.kind == "mx" and _literal(domain) is None:
            if self.dane is not None and (message.requiretls or not tls_required_no(data)):
                dane = await self._dane_hosts(domain, targets, security, port, message)
            sts = await delivery_policy(self.mtasts, self.tlsrpt, domain,
                                        requiretls=message.requiretls, message=data)
            if message.requiretls:
                refusal = requiretls_mx_refusal(domain, security.get("", False), sts)
                if refusal is not None:
                    log.info("queue %s: %s: %s", message.id, domain, refusal)
                    return self._refused(result, domain, rcpts, refusal)
            targets = [(h, a) if isinstance(a, _HostFailure) or (
                           h in dane and dane[h].authenticated) or sts.allows(h) else
                       (h, _HostFailure(_local(451, "4.7.5", f"MX host {h} is not allowed by "
                                               f"the MTA-STS policy of {domain}"),
                                        requiretls=message.requiretls))
                       for h, a in targets]
        failures: list[_HostFailure] = []
        connects = 0
        for host, addresses in targets:
            if isinstance(addresses, _HostFailure):
                failures.append(addresses)
                result.attempts.append(Attempt(self.clock(), domain, host, "", addresses.reply))
                continue
            for ip in addresses:
                if connects >= self.settings.max_connect_attempts:
                    break
                connects += 1
                try:
                    outcomes = await self._deliver_to(route, host, ip, port, message, data,
                                                      rcpts, sts, dane.get(host))
                except _HostFailure as exc:
                    failures.append(exc)
                    result.attempts.append(Attempt(self.clock(), domain, host, ip, exc.reply))
                    log.info("queue %s: %s [%s]: %s", message.id, host, ip, exc.reply)
                    continue
                result.outcomes = outcomes
                summary = outcomes[0].reply if len({str(o.reply) for o in outcomes}) == 1 \
                    else _local(250 if any(o.reply.code < 300 for o in outcomes) else 451,
                                "", "mixed recipient results")
                result.attempts.append(Attempt(self.clock(), domain, host, ip, summary))
                return result
        result.outcomes = [Outcome(r, self._final_failure(failures, message)) for r in rcpts]
        return result

    def route_for(self, domain: str) -> Route:
        """A route configured for exactly ``domain`` first; then a domain of this server
        (``is_local_domain``, asked at each attempt, so domains created after the queue
        started count) is delivered locally; then parent-domain and ``*`` routes."""
        exact = self.settings.routes.get(domain.lower())
        if exact is not None:
            return exact
        if self.is_local_domain is not None and self.is_local_domain(domain):
            return _LOCAL_ROUTE
        return self.settings.route_for(domain)

    def _refused(self, result: DomainResult, domain: str, rcpts: list[QueuedRecipient],
                 reply: Reply) -> DomainResult:
        """Every recipient of ``domain`` gets ``reply`` without a connection."""
        result.attempts.append(Attempt(self.clock(), domain, "", "", reply))
        result.outcomes = [Outcome(r, reply) for r in rcpts]
        return result

    def _final_failure(self, failures: list[_HostFailure], message: QueuedMessage) -> Reply:
        if not failures:
            return _local(451, "4.4.1", "no mail exchanger could be tried")
        last = failures[-1].reply
        if message.requiretls and all(f.requiretls for f in failures):
            # RFC 8689 4.2.1: no MX host gave a path meeting REQUIRETLS; the message is
            # not sent anywhere and a non-delivery notification goes back, with 5.7.30
            # when a server lacked REQUIRETLS, else 5.7.10 (TLS could not be established
            # or authenticated).
            if last.status.endswith(".7.30"):
                return _local(550, "5.7.30", f"REQUIRETLS support required: {last.text}")
            return _local(550, "5.7.10", f"REQUIRETLS: encryption needed: {last.text}")
        if all(f.reply.permanent for f in failures):
            return last
        temp = [f.reply for f in failures if not f.reply.permanent]
        return temp[-1]

    async def _dane_hosts(self, domain: str, targets: list, security: dict[str, Any],
                          port: int, message: QueuedMessage) -> dict[str, Any]:
        """The DANE state of each resolved host (TLSA lookups run together); a host
        whose TLSA lookup failed becomes a host failure in ``targets`` (RFC 7672 2.1.1)."""
        hosts = [h for h, a in targets if not isinstance(a, _HostFailure)]
        found = await asyncio.gather(*(
            self.dane.host(domain, h, port, mx_secure=security.get("", False),
                           addr_secure=security.get(h, False),
                           expanded=security.get(f"cname:{h}", ""), recorder=self.tlsrpt)
            for h in hosts))
        states = dict(zip(hosts, found))
        for i, (host, _addresses) in enumerate(targets):
            state = states.get(host)
            if state is not None and state.state == "error":
                targets[i] = (host, _HostFailure(_local(451, "4.7.5", state.reason),
                                                 requiretls=message.requiretls))
            elif state is not None and state.state != "none":
                log.info("queue %s: %s: DANE %s (%s)", message.id, host, state.state,
                         state.reason)
        return states

    # ------------------------------------------------------------------ where to connect
    async def _targets(self, route: Route, domain: str, security: dict[str, Any] | None = None
                       ) -> list[tuple[str, list[str] | _HostFailure]]:
        """``[(host, addresses or the failure to resolve it)]`` in the order to try.
        ``security`` receives the DNSSEC status of the answers (``""``: the MX lookup,
        else per host: its addresses), which DANE and REQUIRETLS need, and under
        ``"cname:<host>"`` the CNAME-expanded name of a host that is an alias."""
        security = {} if security is None else security
        if route.kind == "relay":
            hosts = [MxHost(0, route.host)]
        else:
            literal = _literal(domain)
            if literal is not None:
                return [(domain, [literal])]
            try:
                mx = await self.resolver.mx_hosts(domain)
            except (NxDomain, InvalidName):
                raise _HostFailure(_local(550, "5.1.2", f"domain {domain} does not exist"))
            except DnsError as exc:
                raise _HostFailure(_local(451, "4.4.3", f"MX lookup for {domain} failed: "
                                          f"{exc.detail or exc.describe}"))
            if mx.null:
                raise _HostFailure(_local(556, "5.1.10",
                                          f"domain {domain} accepts no mail (null MX)"))
            security[""] = mx.secure
            hosts = list(mx.hosts[:self.settings.max_mx_hosts])
        targets: list[tuple[str, list[str] | _HostFailure]] = []
        own = self.settings.hostname.lower().rstrip(".")
        for mxhost in hosts:
            host = mxhost.host
            if route.kind == "mx" and host == own:
                targets.append((host, _HostFailure(_local(
                    554, "5.4.6", f"mail for {domain} loops back to myself ({host})"))))
                continue
            literal = _literal(f"[{host}]")
            if literal is not None:
                targets.append((host, [literal]))
                continue
            try:
                addrs = await self.resolver.addresses(host)
            except (NxDomain, InvalidName) as exc:
                targets.append((host, _HostFailure(_local(
                    550, "5.4.4", f"host {host} not found ({exc.describe})"))))
                continue
            except TempFail as exc:
                targets.append((host, _HostFailure(_local(
                    451, "4.4.3", f"address lookup for {host} failed: {exc.detail}"))))
                continue
            except DnsError as exc:
                targets.append((host, _HostFailure(_local(
                    550, "5.4.4", f"host {host} has no address ({exc.describe})"))))
                continue
            security[host] = addrs.secure
            if addrs.canonical:
                security[f"cname:{host}"] = addrs.canonical
            ordered = order_addresses(addrs, prefer_ipv6=self.settings.prefer_ipv6,
                                      ipv4=self.settings.ipv4, ipv6=self.settings.ipv6)
            if not ordered:
                targets.append((host, _HostFailure(_local(
                    451, "4.4.4", f"host {host} has no address of an enabled family"))))
                continue
            targets.append((host, ordered))
        return targets

    # ------------------------------------------------------------------ one host
    async def _deliver_to(self, route: Route, host: str, ip: str, port: int,
                          message: QueuedMessage, data: bytes,
                          rcpts: list[QueuedRecipient], sts: Any = None,
                          dane: Any = None) -> list[Outcome]:
        # DANE authentication replaces the PKIX check (RFC 7672; RFC 8689 4.2.1 for
        # REQUIRETLS; RFC 8461 2 for MTA-STS).
        dane_auth = dane is not None and dane.authenticated
        verify = not dane_auth and (
            message.requiretls or (route.kind == "relay" and not route.allow_invalid_certs
                                   and route.tls != "none") or (sts is not None and sts.enforce))
        key = (ip, port, host, route.name, verify, dane.tag if dane is not None else None)
        async with self.pool.limit(ip):
            client = await self.pool.take(key)
            if client is None:
                client = await self._open(route, host, ip, port, message, verify, sts, dane)
                self.pool.opened += 1
            try:
                outcomes = await self._transaction(client, host, message, data, rcpts)
            except _HostFailure:
                await client.quit()
                raise
            except SmtpError as exc:
                client.close()
                raise _HostFailure(_reply(exc.reply) if exc.reply else
                                   _local(451, "4.4.2", f"{host} [{ip}]: {exc}")) from None
            if client.usable:
                await self.pool.give(key, client)
            return outcomes

    async def _open(self, route: Route, host: str, ip: str, port: int,
                    message: QueuedMessage, verify: bool, sts: Any = None,
                    dane: Any = None) -> SmtpClient:
        dane_auth = dane is not None and dane.authenticated
        dane_tls = dane is not None and dane.mandatory   # DANE: TLS or nothing (RFC 7672 2.2)
        # MTA-STS: verified TLS or nothing, unless DANE governs the host (RFC 8461 2).
        enforce = sts is not None and sts.enforce and not dane_auth
        need_tls = (message.requiretls or route.tls in ("starttls", "implicit") or enforce
                    or dane_tls)
        context = self.tls_verified if verify else self.tls_opportunistic
        use_starttls = route.tls != "none" or message.requiretls or enforce or dane_tls
        report = dane if dane_tls else sts               # TLS-RPT: the policy that applies
        for plain_retry in (False, True):
            client = None
            try:
                client = await SmtpClient.connect(
                    ip, port, timeouts=self.settings.timeouts, server_hostname=host,
                    tls_context=context if route.tls == "implicit" else None)
                await client.ehlo(self.settings.hostname)
                if (not client.tls and use_starttls and not plain_retry
                        and client.supports("STARTTLS")):
                    # SNI: the TLSA base domain when DANE authenticates (RFC 7672 8.1),
                    # else the MX host (the name a verifying context checks).
                    await client.starttls(context, dane.base if dane_auth and dane.base
                                          else host)
                    if dane_auth:
                        await self._dane_check(client, dane, host, ip, message)
                    await client.ehlo(self.settings.hostname)
                if report is not None and not plain_retry:
                    report.session(host, ip, client)        # TLS-RPT counts
                if need_tls and not client.tls:
                    await client.quit()
                    raise _HostFailure(_local(451, "4.7.10", f"{host} [{ip}] does not offer "
                                              "STARTTLS and TLS is required"),
                                       requiretls=message.requiretls)
                if message.requiretls and not client.supports("REQUIRETLS"):
                    await client.quit()
                    raise _HostFailure(_local(451, "4.7.30", f"{host} [{ip}] does not offer "
                                              "REQUIRETLS"), requiretls=True)
                if route.username and not client.authenticated:
                    if not client.tls and not route.allow_plaintext_auth:
                        await client.quit()
                        raise _HostFailure(_local(451, "4.7.10", f"{host} [{ip}]: refusing "
                                                  "to send credentials without TLS"))
                    await client.authenticate(route.username, route.password)
                return client
            except SmtpError as exc:
                if client is not None:
                    await client.quit()
                if exc.stage == "tls" and report is not None:
                    report.tls_failed(host, ip, exc.message)
                if exc.stage == "tls" and not need_tls and not plain_retry \
                        and route.tls != "implicit":
                    log.info("TLS with %s [%s] failed (%s); retrying in clear text", host, ip,
                             exc.message)
                    continue
                if exc.stage == "auth":
                    # A refused login is a configuration problem: keep the mail and retry
                    # (Postfix's smtp_sasl_auth_soft_bounce).
                    raise _HostFailure(_local(451, "4.7.0", f"{host} [{ip}]: {exc.message}"
                                              + (f": {exc.reply}" if exc.reply else "")))
                if exc.reply is not None:
                    raise _HostFailure(_reply(exc.reply),
                                       requiretls=message.requiretls and exc.stage == "tls")
                code, status = (451, "4.4.1") if exc.stage == "connect" else (451, "4.4.2")
                raise _HostFailure(_local(code, status, f"{host} [{ip}]: {exc.message}"),
                                   requiretls=message.requiretls and exc.stage == "tls")
        raise AssertionError("unreachable")

    async def _dane_check(self, client: SmtpClient, dane: Any, host: str, ip: str,
                          message: QueuedMessage) -> None:
        """Match the server's certificates against the TLSA records before anything else
        goes over the session; a mismatch ends it (RFC 7672 2.2: next host or later)."""
        from stalwart.mailauth.dane import DaneError

        try:
            matched = dane.check(client._writer.get_extra_info("ssl_object"))
        except DaneError as exc:
            dane.failed(host, ip, exc)
            await client.quit()
            raise _HostFailure(_local(451, "4.7.5", f"{host} [{ip}]: DANE: {exc}"),
                               requiretls=message.requiretls) from None
        log.info("queue %s: %s [%s]: DANE authenticated: %s", message.id, host, ip, matched)

    async def _transaction(self, client: SmtpClient, host: str, message: QueuedMessage,
                           data: bytes, rcpts: list[QueuedRecipient]) -> list[Outcome]:
        def every(reply: Reply) -> list[Outcome]:
            return [Outcome(r, reply, host) for r in rcpts]

        limit = client.max_size
        if limit is not None and len(data) > limit:
            return every(_local(552, "5.3.4", f"message size {len(data)} exceeds the limit "
                                f"of {host} ({limit})"))
        params: list[str] = []
        if client.supports("SIZE"):
            params.append(f"SIZE={len(data)}")
        if message.body == "8BITMIME" or not data.isascii():
            if client.supports("8BITMIME"):
                params.append("BODY=8BITMIME")
            elif not data.isascii():
                return every(_local(554, "5.6.3", f"{host} does not accept 8-bit content "
                                    "(no 8BITMIME) and the message is not converted"))
        addresses = [message.return_path, *(r.address for r in rcpts)]
        if message.smtputf8 or not all(a.isascii() for a in addresses):
            if not client.supports("SMTPUTF8"):
                return every(_local(553, "5.6.7", f"{host} does not support SMTPUTF8 and "
                                    "an address is not ASCII"))
            params.append("SMTPUTF8")
        dsn = client.supports("DSN")
        if dsn:
            if message.ret:
                params.append(f"RET={message.ret}")
            if message.env_id:
                params.append(f"ENVID={xtext(message.env_id)}")
        if message.requiretls:
            params.append("REQUIRETLS")
        rcpt_lines: list[tuple[str, list[str]]] = []
        for r in rcpts:
            rp: list[str] = []
            if dsn:
                if r.notify:
                    rp.append("NOTIFY=" + ",".join(r.notify))
                if r.orcpt:
                    rp.append("ORCPT=" + orcpt_param(*r.orcpt))
            rcpt_lines.append((f"<{r.address}>", rp))
        result = await client.transaction(f"<{message.return_path}>", params, rcpt_lines, data)
        if result.mail.code == 421 or (result.data is not None and result.data.code == 421):
            client.close()
            raise _HostFailure(_reply(result.data if result.data is not None
                                      and result.data.code == 421 else result.mail))
        if not result.accepted and client.usable and result.data is None:
            await client.rset()
        return [Outcome(r, _reply(reply), host, relayed=not dsn and reply.code < 300)
                for r, reply in zip(rcpts, result.rcpt)]

    # ------------------------------------------------------------------ local route
    async def _deliver_local(self, message: QueuedMessage, data: bytes, domain: str,
                             rcpts: list[QueuedRecipient]) -> DomainResult:
        if self.local is None:
            reply = _local(451, "4.3.0", "local delivery is not available to the queue")
            return DomainResult([Outcome(r, reply) for r in rcpts],
                                [Attempt(self.clock(), domain, "local", "", reply)])
        try:
            replies: Sequence[Reply] = await self.local(message, data, rcpts)
        except Exception as exc:      # the store being away must not lose the message
            log.warning("queue %s: local delivery failed: %r", message.id, exc)
            replies = [_local(451, "4.3.0", "local delivery failed temporarily")] * len(rcpts)
        outcomes = [Outcome(r, reply, "local") for r, reply in zip(rcpts, replies)]
        return DomainResult(outcomes, [Attempt(self.clock(), domain, "local", "",
                                               outcomes[0].reply if outcomes else
                                               _local(250, "2.0.0", "nothing to deliver"))])
