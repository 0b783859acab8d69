"""Queue settings, the retry schedule and the routes per domain.

Defaults follow the issue and common MTA practice: retries after 2m, 5m, 10m, 15m, 30m,
1h, 2h, then every 2h (the last interval repeats); pending recipients expire 5 days after
the message was queued (Postfix ``maximal_queue_lifetime``); a delay DSN once a message
has waited 4 hours (Postfix ``delay_warning_time``); SMTP timeouts per RFC 5321 4.5.3.2
(shortened for connect and greeting, as every modern MTA does).

Routes (``Route``) decide how a recipient domain is reached:

- ``mx``: look up MX (or the implicit MX), connect to port 25 (``mx_port``) of each host
  in preference order, STARTTLS when offered (opportunistic, RFC 7435; mandatory and
  certificate-checked for REQUIRETLS messages).
- ``relay``: a smarthost ``host:port`` with ``tls`` = ``implicit`` (RFC 8314), ``starttls``
  (required), ``opportunistic`` or ``none``, and optional AUTH (PLAIN, LOGIN) credentials.
  Its certificate is verified unless ``allow_invalid_certs``.
- ``local``: handed to the local delivery function the queue was given.

A domain without its own route uses the ``"*"`` route, ``mx`` by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Route", "Timeouts", "QueueSettings", "DEFAULT_RETRY", "next_retry"]

DEFAULT_RETRY = (120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)

TLS_MODES = ("implicit", "starttls", "opportunistic", "none")


@dataclass(frozen=True, slots=True)
class Route:
    kind: str = "mx"                          # "mx" | "relay" | "local"
    host: str = ""                            # relay only
    port: int = 25
    tls: str = "opportunistic"                # one of TLS_MODES (relay; mx is opportunistic)
    username: str = ""
    password: str = ""
    allow_invalid_certs: bool = False
    allow_plaintext_auth: bool = False        # AUTH without TLS (never for the internet)

    def __post_init__(self) -> None:
        if self.kind not in ("mx", "relay", "local"):
            raise ValueError(f"unknown route type {self.kind!r}")
        if self.tls not in TLS_MODES:
            raise ValueError(f"unknown TLS mode {self.tls!r}")
        if self.kind == "relay" and not self.host:
            raise ValueError("a relay route needs a host")
        if not 0 < self.port < 65536:
            raise ValueError(f"bad port {self.port}")

    @property
    def name(self) -> str:
        return f"relay:{self.host}:{self.port}" if self.kind == "relay" else self.kind


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait at each step (RFC 5321 4.5.3.2 gives the upper bounds)."""

    connect: float = 30.0
    greeting: float = 120.0
    command: float = 300.0                    # EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET
    data_init: float = 120.0                  # the 354 to DATA
    data_block: float = 180.0                 # writing the message
    data_end: float = 600.0                   # the reply to the final dot
    tls: float = 60.0                         # TLS handshake


@dataclass(frozen=True)
class QueueSettings:
    hostname: str = "localhost"               # EHLO name and Reporting-MTA (server.hostname)
    retry: tuple[float, ...] = DEFAULT_RETRY  # queue.retry
    expire: float = 5 * 86400.0               # queue.expire
    notify_delay: float | None = 4 * 3600.0   # queue.notify-delay (None: no delay DSN)
    concurrency: int = 32                     # queue.concurrency: messages in flight
    max_connections_per_host: int = 8         # queue.connections-per-host
    max_mx_hosts: int = 5                     # MX hosts tried per domain and attempt
    max_connect_attempts: int = 6             # addresses tried per domain and attempt
    prefer_ipv6: bool = True                  # queue.prefer-ipv6: v6 first, then alternate
    ipv4: bool = True                         # queue.ipv4 / queue.ipv6: families to use
    ipv6: bool = True
    mx_port: int = 25                         # queue.mx-port (tests point it elsewhere)
    reuse_idle: float = 10.0                  # keep an idle connection this long
    reuse_max_messages: int = 100             # then close it (Postfix's reuse limit)
    poll_interval: float = 1.0                # queue.poll-interval: look for new mail
    dsn_max_body: int = 256 * 1024            # RET=FULL returns at most this much
    timeouts: Timeouts = field(default_factory=Timeouts)
    routes: Mapping[str, Route] = field(default_factory=lambda: {"*": Route()})

    def route_for(self, domain: str) -> Route:
        domain = domain.lower()
        route = self.routes.get(domain)
        if route is None:
            # Parent domains match too: a route for "example.org" covers "a.example.org"
            # only when written as ".example.org" (Postfix transport_maps style).
            labels = domain.split(".")
            for i in range(1, len(labels)):
                route = self.routes.get("." + ".".join(labels[i:]))
                if route is not None:
                    break
        return route or self.routes.get("*") or Route()

    @classmethod
    def from_config(cls, config: Any) -> "QueueSettings":
        """Read the ``queue.*`` settings (declared in stalwart.config) and the routes."""
        from stalwart.config import ConfigError

        routes: dict[str, Route] = {"*": Route()}
        configured: dict[str, str] = {}           # domain -> route id
        for rid in config.ids("queue.route"):
            prefix = f"queue.route.{rid}"
            try:
                route = Route(
                    kind=config.get(f"{prefix}.type"), host=config.get(f"{prefix}.host") or "",
                    port=config.get(f"{prefix}.port"), tls=config.get(f"{prefix}.tls"),
                    username=config.get(f"{prefix}.auth.username") or "",
                    password=config.get(f"{prefix}.auth.secret") or "",
                    allow_invalid_certs=config.get(f"{prefix}.allow-invalid-certs"),
                    allow_plaintext_auth=config.get(f"{prefix}.allow-plaintext-auth"))
            except ValueError as exc:
                raise ConfigError(str(exc), file=getattr(config, "source", None),
                                  key=prefix) from None
            for domain in config.get(f"{prefix}.domains"):
                domain = domain.strip().lower().rstrip(".") or "*"
                if domain in configured:
                    raise ConfigError(f"domain {domain!r} is already routed by "
                                      f"queue.route.{configured[domain]}",
                                      file=getattr(config, "source", None),
                                      key=f"{prefix}.domains")
                configured[domain] = rid
                routes[domain] = route
        return cls(
            hostname=config.get("server.hostname"),
            retry=tuple(config.get("queue.retry")),
            expire=config.get("queue.expire"),
            notify_delay=config.get("queue.notify-delay") or None,
            concurrency=config.get("queue.concurrency"),
            max_connections_per_host=config.get("queue.connections-per-host"),
            prefer_ipv6=config.get("queue.prefer-ipv6"),
            ipv4=config.get("queue.ipv4"), ipv6=config.get("queue.ipv6"),
            mx_port=config.get("queue.mx-port"),
            poll_interval=config.get("queue.poll-interval"),
            routes=routes)


def next_retry(settings: QueueSettings, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th attempt failed (1-based): the schedule's
    entry, or its last one repeated."""
    schedule = settings.retry or DEFAULT_RETRY
    return schedule[min(max(attempts, 1), len(schedule)) - 1]
