"""Settings of DKIM signing: which keys ``stalwart-cli dkim create`` (``POST /api/dkim``)
makes for a domain. Read by ``stalwart.http.api.dkim``. What is signed follows from the
store: outbound and submitted mail whose From domain has keys is signed with the newest
key of each algorithm (``stalwart.mailauth.keys.sign_outbound``).
"""

from __future__ import annotations

from ..registry import REGISTRY, declare, section
from ..types import Enum, Int, List

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")

if "auth" not in REGISTRY.sections:      # shared with the inbound checks (settings/auth.py)
    section("auth", """
Message authentication: checks of inbound mail (SPF, DKIM, DMARC) and DKIM signing of
outbound mail.
""")

declare("auth.dkim.sign.algorithms", List(Enum(ALGORITHMS), min_items=1), """
    The DKIM keys `stalwart-cli dkim create DOMAIN` generates when no `--algorithm` is
    given: one key per algorithm, `rsa-sha256` (RFC 6376) and `ed25519-sha256` (RFC 8463).
    Mail sent from a domain (submission and relayed mail whose From address is in it) is
    signed with the newest key of each algorithm the domain has, relaxed/relaxed, with
    From signed twice so that no second From can be added. Receivers that do not know
    Ed25519 ignore that signature and check the RSA one.""",
    section="auth", default=list(ALGORITHMS))

declare("auth.dkim.sign.rsa-bits", Int(min=1024, max=4096), """
    Size of the RSA keys `stalwart-cli dkim create` generates. 2048 fits in one DNS TXT
    record of several strings and is what large receivers expect; 1024 is the minimum
    verifiers accept (RFC 8301).""",
    section="auth", default=2048)
