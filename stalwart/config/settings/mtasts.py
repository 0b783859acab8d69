"""Settings of outbound transport security: MTA-STS (RFC 8461) applied by the queue, the
MTA-STS policy we publish, and TLS reports (RFC 8460). Read by
``stalwart.queue.server.serve`` (``queue.mta-sts.*``, ``queue.tls-report.*``) and
``stalwart.http.wellknown`` (``auth.mta-sts.*``).
"""

from __future__ import annotations

import re

from ..registry import REGISTRY, declare, section
from ..types import Bool, Duration, Enum, Int, List, String

_HOST = re.compile(r"(\*\.)?((?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.?")


class MxPattern(String):
    """A host name, or ``*.`` and a domain (RFC 8461 3.2 ``mx`` pattern)."""

    name = "mx pattern"

    def parse(self, raw):
        value = super().parse(raw).strip()
        if not _HOST.fullmatch(value):
            raise ValueError(f"{value!r} is not a host name or *.domain pattern")
        return value.lower().rstrip(".")


class MaxAge(Duration):
    """RFC 8461 3.2: ``max_age`` is at most 31557600 seconds."""

    def parse(self, raw):
        value = super().parse(raw)
        if value > 31_557_600:
            raise ValueError("must be at most 31557600s (about one year, RFC 8461 3.2)")
        return value


if "auth" not in REGISTRY.sections:
    section("auth", """
Message authentication: checks of inbound mail (SPF, DKIM, DMARC) and DKIM signing of
outbound mail.
""")

if "queue" not in REGISTRY.sections:
    section("queue", """
Outbound delivery.
""")

declare("queue.mta-sts.enable", Bool(), """
    Apply the MTA-STS policies (RFC 8461) of the domains mail is sent to: a domain that
    publishes `_mta-sts.<domain>` gets its policy fetched from
    `https://mta-sts.<domain>/.well-known/mta-sts.txt` and cached for its `max_age`.
    Under an `enforce` policy only the MX hosts it names are used and their TLS
    certificate must be valid for the MX host name, or the attempt fails temporarily;
    a `testing` policy only feeds the TLS reports. A message with the header
    `TLS-Required: No` (RFC 8689) is sent without MTA-STS.""",
    section="queue", default=True)

declare("queue.mta-sts.timeout", Duration(min=1.0), """
    Time allowed for fetching one MTA-STS policy over HTTPS (connection, TLS and
    body). A policy that cannot be fetched is retried after 5 minutes; meanwhile the
    cached one (if any) applies.""",
    section="queue", default="10s")

declare("queue.mta-sts.port", Int(min=1, max=65535), """
    TCP port of the HTTPS servers MTA-STS policies are fetched from. RFC 8461 says 443;
    change it only for tests or a private network. The certificate is checked against
    the system CAs (OpenSSL's default paths, which `SSL_CERT_FILE` overrides).""",
    section="queue", default=443)

declare("queue.tls-report.enable", Bool(), """
    Count the outcome of every outbound TLS session per recipient domain and send a
    daily TLS report (RFC 8460) to the `rua=` addresses (`mailto:` through the queue,
    `https:` by POST) of the domains that publish `_smtp._tls.<domain>`. The counts are kept in the queue process's memory;
    a restart loses the current day's.""",
    section="queue", default=True)

declare("queue.tls-report.from", String(), """
    Sender address of our TLS reports. Unset: `noreply-tls@<server.hostname>`.""",
    section="queue")

declare("queue.tls-report.org-name", String(), """
    Organisation name written into our TLS reports. Unset: the server's host name.""",
    section="queue")

declare("auth.mta-sts.mode", Enum(("enforce", "testing", "none")), """
    Mode of the MTA-STS policy this server publishes at
    `https://mta-sts.<domain>/.well-known/mta-sts.txt` for each of its domains (the
    http listener answers for the host `mta-sts.<domain>`). Publish the TXT record
    `_mta-sts.<domain>` (`v=STSv1; id=...`) and a certificate for `mta-sts.<domain>`
    yourself. `testing` asks senders to report problems only; `enforce` asks them to
    refuse MX hosts and certificates that do not match.""",
    section="auth", default="testing")

declare("auth.mta-sts.mx", List(MxPattern()), """
    MX host names (or `*.domain` patterns) listed in our MTA-STS policy. Empty: the
    server's host name (`server.hostname`).""",
    section="auth", default=[])

declare("auth.mta-sts.max-age", MaxAge(min=0.0), """
    How long senders may cache our MTA-STS policy (`max_age`, at most one year).""",
    section="auth", default="7d")
