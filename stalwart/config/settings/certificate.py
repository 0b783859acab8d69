"""Settings of TLS certificates (PEM text, usually read with ``%{file:...}%``)."""

from __future__ import annotations

from ..registry import declare, section
from ..types import Bool, String

section("certificate", """
TLS certificates, one table per certificate: `[certificate.<id>]`. Listeners choose the
certificate by SNI among the names of all certificates, falling back to the default one.
Values are PEM text, normally read from files with `%{file:/path/cert.pem}%`. Loading
checks that the certificate and key parse and that the key belongs to the certificate.
""")

declare("certificate.<id>.cert", String(), """
    The certificate in PEM, leaf first, followed by any intermediate certificates.""",
    section="certificate", required=True)

declare("certificate.<id>.private-key", String(), """
    The private key of the leaf certificate in PEM (PKCS#8, PKCS#1 or SEC1), not
    encrypted.""",
    section="certificate", required=True, secret=True)

declare("certificate.<id>.default", Bool(), """
    Serve this certificate when the client sends no SNI name or one that no certificate
    covers. With a single certificate, it is the default; with several, at most one may
    say `default = true` (none: the first one in the file).""",
    section="certificate", default=False)
