"""Settings of inbound message authentication: which checks run on mail from
unauthenticated SMTP clients (SPF, DKIM, DMARC) and how strictly, DMARC aggregate
reports, and the addresses whose mail is read as incoming DMARC/TLS reports.

Read by ``stalwart.mailauth.inbound.InboundSettings.from_config`` (SMTP workers) and
``stalwart.mailauth.reports`` (the scheduler's daily report job).
"""

from __future__ import annotations

from ..registry import REGISTRY, declare, section
from ..types import Bool, Enum, List, String

MODES = ("relaxed", "strict", "disabled")

if "auth" not in REGISTRY.sections:      # shared with the DKIM signing settings
    section("auth", """
Message authentication. Mail from clients that did not log in (port 25) is checked
before delivery: SPF for the HELO name and the MAIL FROM domain (RFC 7208), every DKIM
signature (RFC 6376) and DMARC (RFC 7489); the results are prepended to the message as
`Authentication-Results` (RFC 8601, with `server.hostname` as the authserv-id) and
`Received-SPF` fields, and forged `Authentication-Results` claiming our host name are
removed. Mail submitted by authenticated users is not checked. Each check has a mode:
`relaxed` (check and record the result), `strict` (also act on a failure, as each
setting says) or `disabled` (skip the check). The `auth.dkim.sign.*` settings choose the
keys that sign outbound mail.
""")

declare("auth.spf.verify.helo", Enum(MODES), """
    SPF check of the HELO/EHLO name. `strict` rejects the message (550 5.7.23) when the
    HELO domain's policy fails the client.""",
    section="auth", default="relaxed")

declare("auth.spf.verify.mail-from", Enum(MODES), """
    SPF check of the MAIL FROM domain (of `postmaster@<HELO>` for a null sender).
    `strict` rejects the message (550 5.7.23) on `fail` and defers it (451 4.7.24) on
    `temperror`. DMARC uses this result whatever the mode, unless `disabled`.""",
    section="auth", default="relaxed")

declare("auth.dkim.verify", Enum(MODES), """
    Verification of every DKIM signature. `strict` rejects (550 5.7.20) a signed
    message none of whose signatures verifies, and defers it (451 4.7.5) when the
    only trouble was a temporary DNS failure.""",
    section="auth", default="relaxed")

declare("auth.arc.verify", Enum(("relaxed", "disabled")), """
    Verification of the ARC chain (RFC 8617) of inbound mail; the result is reported as
    `arc=` in Authentication-Results. It does not change what happens to the
    message.""",
    section="auth", default="relaxed")

declare("auth.dmarc.verify", Enum(MODES), """
    DMARC evaluation. `strict` applies the sender domain's policy to a message that
    fails: `p=reject` is refused with 550 5.7.1 for every recipient, `p=quarantine`
    files it into each recipient's Junk mailbox (both subject to `pct=`). `relaxed`
    evaluates and records the result but delivers to the inbox.""",
    section="auth", default="strict")

declare("auth.dmarc.report.aggregate", Bool(), """
    Record the DMARC result of every checked message and send daily aggregate reports
    (RFC 7489 7.2) to the `rua=` addresses of the domains that ask for them.""",
    section="auth", default=True)

declare("auth.dmarc.report.from", String(), """
    Sender address of the aggregate reports we send. Unset:
    `noreply-dmarc@<server.hostname>`.""",
    section="auth")

declare("auth.dmarc.report.org-name", String(), """
    Organisation name written into our aggregate reports (`org_name`). Unset: the
    server's host name.""",
    section="auth")

declare("auth.report.addresses", List(String()), """
    Local addresses whose incoming mail is also read as reports: DMARC aggregate
    reports (RFC 7489, XML, zipped or gzipped) and TLS reports (RFC 8460, JSON,
    gzipped) are parsed and their summaries stored (no API lists them yet). The mail
    is delivered to the mailbox as usual.""",
    section="auth", default=[])

declare("auth.bimi.enable", Bool(), """
    For mail that passes DMARC at an enforcing policy (`p=quarantine` with `pct=100`,
    or `p=reject`), look up the sender's BIMI record (`default._bimi.<domain>`) and add
    a `BIMI-Location` field with its logo URI and a `bimi=` result. Sender-supplied
    `BIMI-Location` and `BIMI-Indicator` fields are removed in any case.""",
    section="auth", default=True)

declare("auth.bimi.indicator", Bool(), """
    Also fetch the logo (HTTPS, certificate checked against the system roots, public
    addresses only, at most 32 KB within 5 s, cached for an hour per URL) and check it
    against the SVG Tiny PS profile: a good logo is added as `BIMI-Indicator`, a bad or
    unreachable one makes the result `bimi=fail` and no BIMI field is added. Off: the
    `BIMI-Location` is added without fetching the logo.""",
    section="auth", default=True)
