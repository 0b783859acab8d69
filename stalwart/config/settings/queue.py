"""Settings of outbound delivery: the queue's schedule and limits, its routes per
destination domain, and the DNS resolver the queue uses to find mail exchangers.

Read by ``stalwart.queue.settings.QueueSettings.from_config`` and
``stalwart.queue.server.resolver_from_config`` in the queue process. The defaults are
the issue's schedule (retries after 2m 5m 10m 15m 30m 1h 2h, then every 2h; expiry after
5 days) and Postfix's habits (a delay notice after 4 hours).
"""

from __future__ import annotations

import ipaddress
import re

from ..registry import declare, section
from ..types import Bool, Duration, Enum, Int, List, String

section("queue", """
Outbound delivery. Mail for remote recipients, accepted from authenticated clients
(submission), waits in the queue until the queue process has delivered it, bounced it, or
given up on it. Each attempt delivers every pending recipient of a message, grouped by
domain; a temporary failure (4xx, no answer, DNS trouble) schedules the next attempt
after the next interval of `queue.retry`, a permanent one (5xx) fails that recipient at
once. The sender receives delivery status notifications (RFC 3464): on failure, once
when a message has waited `queue.notify-delay`, and on success when asked for (DSN
`NOTIFY=SUCCESS`). Mail for the server's own domains that the queue carries (its own
notifications) is delivered locally. Inspect and act on the queue with
`stalwart-cli queue list|show|retry|cancel` or the `/api/queue` endpoints.
""")

section("resolver", """
The DNS resolver of the queue: MX, A and AAAA lookups for outbound delivery. Answers are
cached for their TTL (negative answers for the SOA's minimum, RFC 2308). Without
`resolver.nameservers` the servers of `/etc/resolv.conf` are used.
""")

declare("queue.retry", List(Duration(min=1.0), min_items=1), """
    Waits between delivery attempts: after the first failed attempt the first interval,
    after the second the second, and so on; the last interval repeats until the message
    expires.""",
    section="queue", default=["2m", "5m", "10m", "15m", "30m", "1h", "2h"])

declare("queue.expire", Duration(min=60.0), """
    How long a message may wait for delivery, from the time it was accepted. At the
    deadline the queue makes one last attempt; recipients still pending then fail with
    status 4.4.7 and the sender gets a failure notification.""",
    section="queue", default="5d")

declare("queue.notify-delay", Duration(), """
    After this long without delivery the sender gets one delay notification (DSN
    `Action: delayed`, unless the recipient's `NOTIFY` excludes `DELAY`). `0` sends no
    delay notifications.""",
    section="queue", default="4h")

declare("queue.concurrency", Int(min=1, max=10_000), """
    Messages delivered at the same time by the queue process. Each message may use one
    connection per destination domain.""",
    section="queue", default=32)

declare("queue.connections-per-host", Int(min=1, max=1_000), """
    Connections open at the same time to one destination IP address, busy or idle (idle
    connections are kept a few seconds for the next message to the same host).""",
    section="queue", default=8)

declare("queue.prefer-ipv6", Bool(), """
    Try a host's IPv6 addresses first. Either way the address families alternate, so a
    broken family costs one connection timeout, not one per address.""",
    section="queue", default=True)

declare("queue.ipv4", Bool(), """
    Deliver over IPv4. Turn off on hosts without IPv4 connectivity.""",
    section="queue", default=True)

declare("queue.ipv6", Bool(), """
    Deliver over IPv6. Turn off on hosts without IPv6 connectivity.""",
    section="queue", default=True)

declare("queue.mx-port", Int(min=1, max=65535), """
    TCP port of mail exchangers found through MX records. Always 25 on the internet;
    other values are for test setups.""",
    section="queue", default=25)

declare("queue.poll-interval", Duration(min=0.01), """
    How often the queue process looks for newly queued mail when nothing is due sooner.
    New mail waits at most this long before its first attempt.""",
    section="queue", default="1s")

ROUTE_TYPES = ("mx", "relay", "local")
TLS_MODES = ("implicit", "starttls", "opportunistic", "none")

declare("queue.route.<id>.type", Enum(ROUTE_TYPES), """
    How mail for the route's domains travels: `mx` (look up the domain's MX records and
    deliver to them, the default for every domain without a route), `relay` (hand it to
    the smarthost `host`:`port`) or `local` (deliver into local mailboxes).""",
    section="queue", required=True)

declare("queue.route.<id>.domains", List(String(), min_items=1), """
    Recipient domains this route serves. `"*"` is every domain without a route of its
    own (a smarthost for all outbound mail); `".example.org"` covers the subdomains of
    example.org (`a.example.org`, `b.a.example.org`), not example.org itself.""",
    section="queue", required=True)

declare("queue.route.<id>.host", String(), """
    Host name or IP address of the smarthost (required for type `relay`). Its
    certificate is checked against this name.""",
    section="queue")

declare("queue.route.<id>.port", Int(min=1, max=65535), """
    TCP port of the smarthost: usually 587 (`tls = "starttls"`) or 465
    (`tls = "implicit"`), 25 between MTAs.""",
    section="queue", default=25)

declare("queue.route.<id>.tls", Enum(TLS_MODES), """
    TLS towards the smarthost: `implicit` (TLS from the first byte, RFC 8314),
    `starttls` (STARTTLS required; the attempt fails without it), `opportunistic`
    (STARTTLS when offered) or `none`. With `implicit` and `starttls` the certificate
    must be valid for `host` unless `allow-invalid-certs` is set.""",
    section="queue", default="opportunistic")

declare("queue.route.<id>.auth.username", String(), """
    Login for SMTP AUTH (PLAIN or LOGIN) at the smarthost. Unset: no AUTH. A refused
    login defers the mail instead of bouncing it, so a wrong password loses nothing.""",
    section="queue")

declare("queue.route.<id>.auth.secret", String(), """
    Password for `auth.username`. Credentials are sent only over TLS unless
    `allow-plaintext-auth` is set.""",
    section="queue", secret=True)

declare("queue.route.<id>.allow-invalid-certs", Bool(), """
    Accept any certificate from the smarthost (self-signed, expired, another name).
    The connection is still encrypted, but not protected from an active attacker.""",
    section="queue", default=False)

declare("queue.route.<id>.allow-plaintext-auth", Bool(), """
    Send the AUTH credentials without TLS. Only for a smarthost on the same host or a
    trusted network.""",
    section="queue", default=False)

_NAMESERVER = re.compile(r"\[(?P<v6>[^\]]+)\]:(?P<p6>\d+)|(?P<v4>[^:\[\]]+):(?P<p4>\d+)")


def _nameserver(value: tuple[str, ...], _params: dict[str, str]) -> None:
    for text in value:
        text = text.strip()
        m = _NAMESERVER.fullmatch(text)
        host, port = (m.group("v6") or m.group("v4"), int(m.group("p6") or m.group("p4"))) \
            if m else (text, 53)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address, \"IP:PORT\" or "
                             f"\"[IPv6]:PORT\"") from None
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} in {text!r} is out of range 1-65535")


declare("resolver.nameservers", List(String()), """
    DNS servers to ask, each `"IP"`, `"IP:PORT"` or `"[IPv6]:PORT"` (port 53 by
    default), tried in order. Use a validating resolver (its AD bit is trusted for
    DANE). Empty: the servers of `/etc/resolv.conf`.""",
    section="resolver", default=[], default_doc="[] (`/etc/resolv.conf`)",
    validator=_nameserver)

declare("resolver.timeout", Duration(min=0.05), """
    How long to wait for one server's answer before asking the next.""",
    section="resolver", default="5s")

declare("resolver.lifetime", Duration(min=0.05), """
    How long one lookup may take in all, over every server and retry; then the lookup
    fails temporarily and the delivery attempt is retried later.""",
    section="resolver", default="15s")

declare("resolver.cache-size", Int(min=1, max=10_000_000), """
    Answers kept in the cache, each until its TTL ends; the least recently used go
    first when it is full.""",
    section="resolver", default=10_000)
