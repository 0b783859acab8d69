"""Message authentication: DKIM (``dkim``), ARC (``arc``), their shared canonicalization
(``canon``) and key management (``keys``); SPF, DMARC, BIMI and the inbound checks live
beside them. Every DNS question goes through ``stalwart.dns.Resolver`` (injectable; tests
use ``FakeBackend``). Modules are imported by name (``from stalwart.mailauth import
dkim``): importing the package loads none of them.
"""
