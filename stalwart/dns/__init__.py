"""The DNS layer: typed, cached lookups on dnspython's asyncio resolver.

Every part of the server that asks DNS (the queue for MX/A/AAAA/TLSA, SPF/DKIM/DMARC for
TXT, the SMTP server for PTR) goes through one ``Resolver`` per process, so they share
one cache and one in-flight table. Tests build a ``Resolver(FakeBackend({...}))`` over a
dict of records, or point a ``DnspythonBackend`` at a DNS server on loopback.

Results are ``Answer`` objects with typed ``records`` and a ``secure`` flag (the AD bit);
failures are ``NxDomain`` (permanent: no such name), ``NoData`` (permanent: no such type),
``TempFail`` (retry later) and ``InvalidName``. See ``records`` for the record types,
``resolver`` for the MX rules (implicit and null MX) and ``cache`` for TTL handling.
"""

from .backend import NXDOMAIN, TEMPFAIL, Backend, DnspythonBackend, FakeBackend, parse_nameserver
from .cache import DnsCache
from .records import (MX, TLSA, Addresses, Answer, DnsError, InvalidName, MxHost, MxResult,
                      NoData, NxDomain, TempFail, join_txt)
from .resolver import (Resolver, canonical_name, default_resolver, reverse_name,
                       set_default_resolver)

__all__ = [
    "Resolver", "DnsCache", "Backend", "DnspythonBackend", "FakeBackend", "NXDOMAIN",
    "TEMPFAIL", "Answer", "MX", "TLSA", "MxHost", "MxResult", "Addresses", "DnsError",
    "NxDomain", "NoData", "TempFail", "InvalidName", "join_txt", "canonical_name",
    "reverse_name", "default_resolver", "set_default_resolver", "parse_nameserver",
]
