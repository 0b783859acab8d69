"""Settings of the SMTP server: session limits, per-client limits shared by every worker
(connection and message rates, concurrent connections), failed-login penalties and bans,
and duplicate suppression of local deliveries.

Read by ``stalwart.protocols.smtp.server`` (``SmtpSettings.from_config``). The shared
counters themselves are ``stalwart.limits``.
"""

from __future__ import annotations

from typing import Any

from ..registry import declare, section
from ..types import Duration, Int, List, Size, ValueType


class RateValue(ValueType):
    """``"COUNT/PERIOD"`` (``"60/1m"``, ``"500/1h"``) or ``"unlimited"``."""

    name = "rate"

    def parse(self, raw: Any):
        from stalwart.limits import Rate

        return Rate.parse(raw)


class Network(ValueType):
    """An IP address or a CIDR network (``"192.0.2.0/24"``, ``"::1"``)."""

    name = "IP network"

    def parse(self, raw: Any):
        from stalwart.limits import parse_networks

        if not isinstance(raw, str):
            raise ValueError(f"expected an address or network such as \"10.0.0.0/8\", "
                             f"got {type(raw).__name__} {raw!r}")
        return parse_networks([raw])[0]


section("smtp", """
The SMTP server (MX, submission and LMTP listeners). Session limits end or refuse what a
single connection may do; per-client limits count each client address across every smtp
worker process at once (the counters live in a table shared by the workers,
`run/limits-<slots>.table`), so a client that opens connections to several workers gets no
more than the limit. Answers follow Postfix: over a connection limit or while banned a
client gets `421 4.7.0` when it connects, over a message rate `451 4.7.1` to MAIL FROM,
both temporary so legitimate senders retry later. Loopback is exempt from the per-client
limits by default (`smtp.limits.exempt`), as Postfix exempts `$mynetworks`: local
submission tools and webmails must not trip them. LMTP listeners have no per-client
limits (their clients are local MTAs).
""")

# ---------------------------------------------------------------------- session limits
declare("smtp.session.max-recipients", Int(min=1, max=100_000), """
    Recipients accepted in one message; further RCPT commands get `452 4.5.3` and the
    client sends them in another transaction (RFC 5321 4.5.3.1.10 requires at least
    100).""",
    section="smtp", default=100)

declare("smtp.session.max-messages", Int(min=1, max=1_000_000), """
    Messages one connection may send; the next MAIL FROM gets `421 4.7.0` and the
    connection is closed (the client reconnects for the rest).""",
    section="smtp", default=100)

declare("smtp.session.max-message-size", Size(), """
    Largest message accepted, announced in the EHLO `SIZE` keyword; larger ones get
    `552 5.3.4`.""",
    section="smtp", default="50mb")

declare("smtp.session.max-errors", Int(min=1, max=10_000), """
    Negative replies to client errors (syntax, sequence, unknown users) before the
    connection is closed with `421 4.7.0`.""",
    section="smtp", default=10)

declare("smtp.session.max-auth-failures", Int(min=1, max=1_000), """
    Failed AUTH attempts in one connection before it is closed with `421 4.7.0` (the
    per-client counters of `smtp.auth-penalty` count across connections).""",
    section="smtp", default=3)

declare("smtp.session.max-pipeline", Int(min=1, max=100_000), """
    Commands a client may pipeline in one flight before the connection is closed with
    `421 4.7.0`.""",
    section="smtp", default=500)

declare("smtp.session.max-line-length", Int(min=512, max=65_536), """
    Longest command line, in octets with its CRLF (RFC 5321 4.5.3.1.4: at least 512).
    MAIL and RCPT get the allowances of the extensions announced on top (SIZE, DSN,
    AUTH=, ...); AUTH lines and SASL responses may always be 12288 octets (RFC 4954 4).
    Longer lines get `500 5.5.2` and are not executed.""",
    section="smtp", default=512)

declare("smtp.session.idle-timeout", Duration(min=1.0), """
    A connection that sends nothing for this long is closed with `421 4.4.2` (RFC 5321
    4.5.3.2 suggests at least 5 minutes).""",
    section="smtp", default="5m")

declare("smtp.session.max-duration", Duration(min=1.0), """
    Longest a connection may last, however busy; it is then closed with `421 4.4.2` at
    its next read.""",
    section="smtp", default="1h")

# ---------------------------------------------------------------------- per-client limits
declare("smtp.limits.exempt", List(Network()), """
    Client addresses or networks exempt from the per-client connection and message limits
    and from failed-login bans (a failed login from them is still delayed by
    `smtp.auth-penalty.delay` times the failures of its connection). Per-account message
    rates still apply to them. Set `[]` to limit every client, loopback included.""",
    section="smtp", default=["127.0.0.0/8", "::1"])

declare("smtp.limits.concurrency", Int(min=0, max=1_000_000), """
    Connections one client address (IPv6: one /64) may have open at the same time, over
    all smtp workers; more get `421 4.7.0` at once. `0`: no limit.""",
    section="smtp", default=50)

declare("smtp.limits.connection-rate", RateValue(), """
    New connections per client address and period, as `COUNT/PERIOD` (`"60/1m"`); a burst
    of COUNT is allowed, then one more every PERIOD/COUNT. Over it: `421 4.7.0` at connect.
    `"unlimited"`: no limit.""",
    section="smtp", default="60/1m")

declare("smtp.limits.message-rate", RateValue(), """
    Messages (MAIL FROM commands) per client address and period; over it MAIL FROM gets
    `451 4.7.1`. `"unlimited"`: no limit.""",
    section="smtp", default="300/1m")

declare("smtp.limits.account-message-rate", RateValue(), """
    Messages per authenticated account and period, wherever the account connects from
    (a stolen password used from a botnet); over it MAIL FROM gets `451 4.7.1`.
    `"unlimited"`: no limit.""",
    section="smtp", default="500/1h")

declare("smtp.limits.table-slots", Int(min=1024, max=16_777_216), """
    Entries of the shared table of counters (48 bytes each). When it is full the oldest
    rate entries are forgotten first; changing it starts an empty table.""",
    section="smtp", default=65536)

# ---------------------------------------------------------------------- failed logins
declare("smtp.auth-penalty.delay-after", Int(min=1, max=1_000), """
    From this many failed logins by one client address (within
    `smtp.auth-penalty.window`), each further failure is answered only after a delay:
    `smtp.auth-penalty.delay`, doubling with each failure up to
    `smtp.auth-penalty.max-delay`.""",
    section="smtp", default=3)

declare("smtp.auth-penalty.delay", Duration(), """
    The first delay of a failed login (see `smtp.auth-penalty.delay-after`); `0`: no
    delay.""",
    section="smtp", default="1s")

declare("smtp.auth-penalty.max-delay", Duration(), """
    The longest delay of a failed login.""",
    section="smtp", default="15s")

declare("smtp.auth-penalty.ban-after", Int(min=0, max=100_000), """
    Failed logins by one client address within `smtp.auth-penalty.window` that ban it for
    `smtp.auth-penalty.ban-time`: its connections are then answered `421 4.7.0` and
    closed. `0`: never ban. Each failure is also logged on the line fail2ban matches.
    The `smtp.auth-penalty.*` settings and `smtp.limits.exempt` apply to IMAP and POP3
    logins too, over the same counters: failures add up across protocols and one ban
    covers them all (IMAP greets a banned client with `* BYE [UNAVAILABLE]`, POP3 with
    `-ERR [SYS/TEMP]`).""",
    section="smtp", default=10)

declare("smtp.auth-penalty.window", Duration(min=1.0), """
    How long failed logins are remembered, from the first failure of a series.""",
    section="smtp", default="10m")

declare("smtp.auth-penalty.ban-time", Duration(), """
    How long a ban lasts. Bans survive a restart of the server (until they expire).""",
    section="smtp", default="30m")

# ---------------------------------------------------------------------- duplicates
declare("smtp.deduplicate.window", Duration(), """
    A message delivered locally is not delivered again to the same account when the very
    same message (same Message-ID and same content) arrives again within this time: a
    client that resends after a lost or temporary reply does not make a second copy.
    Messages without a Message-ID are never deduplicated. `0` turns this off. The default
    matches how long senders usually retry (5 days).""",
    section="smtp", default="5d")

# ---------------------------------------------------------------------- loops
declare("smtp.hop-limit", Int(min=0, max=10_000), """
    Most `Received` fields a message may carry: one with more is refused for every
    recipient with `554 5.4.6`, before anything is stored or queued (RFC 5321 6.3 loop
    detection; it ends a forwarding loop between servers). `0` turns the check off.""",
    section="smtp", default=100)
