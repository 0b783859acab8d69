"""Settings of DANE (RFC 7672) in the queue: TLSA checks of the MX hosts mail is sent to.
Read by ``stalwart.mailauth.dane.install`` (through ``stalwart.mailauth.tlsrpt.install``)
in the queue process.
"""

from __future__ import annotations

from ..registry import REGISTRY, declare, section
from ..types import Bool

if "queue" not in REGISTRY.sections:
    section("queue", """
Outbound delivery.
""")

declare("queue.dane.enable", Bool(), """
    Apply DANE (RFC 7672) to MX delivery. It takes effect only where the resolver
    (`resolver.nameservers`) validates DNSSEC and says so with the AD bit: when a
    domain's MX records and the MX host's addresses are validated, the TLSA records at
    `_25._tcp.<mx host>` (the port is `queue.mx-port`) are looked up. Validated TLSA
    records with a usable DANE-EE(3) or DANE-TA(2) record make STARTTLS mandatory and the
    server certificate must match them (DANE-EE: no name or date checks; DANE-TA: the
    chain to the matched anchor and the MX host name are checked), else the host is
    skipped and the message retried later, never sent in clear text. Validated records
    that are all unusable (PKIX-TA/PKIX-EE usages, unknown parameters) make STARTTLS
    mandatory without checking the certificate. A TLSA lookup that fails (a bogus
    answer: SERVFAIL from the validating resolver) skips the host temporarily. Answers
    without the AD bit mean no DANE: opportunistic TLS as before. DANE takes precedence
    over MTA-STS for a host with usable TLSA records (RFC 8461 2). A message with the
    header `TLS-Required: No` (RFC 8689) is sent without DANE. Only trust the AD bit of a
    resolver you run yourself on a trusted path (loopback).""",
    section="queue", default=True)
