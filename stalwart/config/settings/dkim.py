"""Settings of DKIM signing: which keys ``stalwart-cli dkim create`` (``POST /api/dkim``)
makes for a domain (read by ``stalwart.http.api.dkim``), and how outbound and submitted
mail is signed (``stalwart.mailauth.signopts.SignOptions.from_config``, used by the SMTP
server's relay path and the queue's TLS reports). What is signed follows from the store:
mail whose From domain has keys is signed with the newest key of each algorithm, among
the algorithms configured here.
"""

from __future__ import annotations

from ..registry import REGISTRY, declare, section
from ..types import Duration, Enum, Int, List, String

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")

if "auth" not in REGISTRY.sections:      # shared with the inbound checks (settings/auth.py)
    section("auth", """
Message authentication: checks of inbound mail (SPF, DKIM, DMARC) and DKIM signing of
outbound mail.
""")

declare("auth.dkim.sign.algorithms", List(Enum(ALGORITHMS), min_items=1), """
    The DKIM keys `stalwart-cli dkim create DOMAIN` generates when no `--algorithm` is
    given: one key per algorithm, `rsa-sha256` (RFC 6376) and `ed25519-sha256` (RFC 8463).
    The same list restricts signing: mail sent from a domain (submission and relayed
    mail whose From address is in it) is signed with the newest key of each of these
    algorithms the domain has (a key of an algorithm not listed is not used), with From
    signed twice so that no second From can be added. Receivers that do not know
    Ed25519 ignore that signature and check the RSA one.""",
    section="auth", default=list(ALGORITHMS))

declare("auth.dkim.sign.rsa-bits", Int(min=1024, max=4096), """
    Size of the RSA keys `stalwart-cli dkim create` generates. 2048 fits in one DNS TXT
    record of several strings and is what large receivers expect; 1024 is the minimum
    verifiers accept (RFC 8301).""",
    section="auth", default=2048)

CANONICALIZATIONS = ("relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple")

declare("auth.dkim.sign.canonicalization", Enum(CANONICALIZATIONS), """
    The `c=` of our signatures: header/body canonicalization (RFC 6376 3.4). `relaxed`
    survives the whitespace and header-case changes of relays and mailing lists;
    `simple` breaks on any change.""",
    section="auth", default="relaxed/relaxed")

#: Kept equal to ``stalwart.mailauth.dkim.DEFAULT_HEADERS`` (a test checks it); not
#: imported, as that module loads ``cryptography``, which the config must not need.
DEFAULT_SIGNED_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "resent-date", "resent-from", "resent-sender", "resent-to",
    "resent-cc", "resent-message-id", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive",
)


def _signed_headers(value: tuple, _params: dict) -> None:
    names = [h.strip().lower() for h in value]
    for name in names:
        if not name or not all(0x21 <= ord(c) < 0x7F and c != ":" for c in name):
            raise ValueError(f"{name!r} is not a header field name")
    if "from" not in names:
        raise ValueError("must include \"from\" (RFC 6376 5.4: From is always signed)")


declare("auth.dkim.sign.headers", List(String(), min_items=1), """
    The header fields our signatures cover (`h=`), each once per instance present in
    the message; From is also signed once more than it appears (oversigned), so that a
    From added later breaks the signature. Must include `from`.""",
    section="auth", default=list(DEFAULT_SIGNED_HEADERS),
    default_doc="from, sender, reply-to, subject, date, message-id, to, cc, mime-version, "
                "the content-* fields, the resent-* fields, in-reply-to, references, "
                "the list-* fields",
    validator=_signed_headers)

declare("auth.dkim.sign.expire", Duration(min=60.0), """
    Validity of our signatures: sets `x=` to the signing time plus this (RFC 6376
    3.5); verifiers treat an expired signature as failing. Unset: no `x=`, signatures
    never expire.""",
    section="auth", default=None, default_doc="none (no `x=`)")
