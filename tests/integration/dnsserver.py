"""A real authoritative DNS server on loopback (NSD), serving zones the test gives as data.

Typical use (import the fixture into the test module)::

    from .dnsserver import dns_server  # noqa: F401  (fixture)

    def test_something(dns_server, daemon):
        dns_server.zone("peer.test", [
            ("@",  "MX",  "10 mx"),                  # relative to the zone: mx.peer.test.
            ("mx", "A",   "127.0.0.1"),
            ("@",  "TXT", "v=spf1 ip4:127.0.0.1 -all"),
        ])
        dns_server.publish()                         # written, loaded, serial checked
        daemon.configure(..., extra=f'''
    [resolver]
    nameservers = ["{dns_server.address}"]           # "127.0.0.1:PORT"
    ''')
        ...
        dns_server.zone("peer.test").add("_dmarc", "TXT", "v=DMARC1; p=reject")
        dns_server.publish()                         # NSD reloads; the new serial is live

Records are ``(owner, type, value)`` or ``(owner, type, value, ttl)``:

- ``owner``: ``"@"`` is the apex; a relative name (``"mx"``, ``"sel._domainkey"``) is
  under the zone; ``"x.peer.test."`` (final dot), or a name ending in the zone's own name
  (``"x.peer.test"``), is taken as absolute.
- ``value``: the record data in zone-file syntax (``"10 mx"``, ``"10 mx.other.test."``,
  ``"3 1 1 ab12..."``), checked by dnspython when added, so a typo fails at once with the
  record named. TXT is the exception: a ``str`` is the text itself (quoted and split into
  255-octet character-strings for you, as DKIM keys need); a tuple of ``str`` gives the
  character-strings one by one.
- Each zone gets an SOA (serial growing with each ``publish``, negative TTL 5 s) and, unless
  given, ``@ NS ns`` with ``ns A 127.0.0.1``. The default TTL is the zone's ``ttl`` (60 s).

``zone(name, records, signed=True)`` signs the zone (DNSSEC, ECDSA P-256, one combined
key with the SEP flag, NSEC) with dnspython each time it is published;
``zone.trust_anchor()`` is its DNSKEY as a zone-file line, ``zone.ds()`` its DS;
``zone.signature_window`` set in the past publishes expired signatures (a bogus zone).
``validating_resolver()`` starts Unbound on loopback, recursing into these zones only
(stub zones pointing at NSD) and validating the signed ones against their trust anchors:
answers from signed zones come back with the AD bit, answers from unsigned ones without
it, and a bogus zone gets SERVFAIL.

Ports: NSD and Unbound listen on 127.0.0.1, UDP and TCP, on ports picked by ``free_port``
from ``STALWART_TEST_PORTS`` (see ``ports.py``). Files live in the directory
given to ``DnsServer`` (the fixture uses a pytest temporary directory); both servers run
in the foreground as children of the test and are stopped at teardown.

Needs the Debian packages ``nsd`` and ``unbound`` (``tests/install-peers.sh``).
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable, Sequence

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from dns.rdtypes.dnskeybase import Flag

from .ports import free_port

__all__ = ["Zone", "DnsServer", "ValidatingResolver", "free_port", "dns_server", "NSD",
           "UNBOUND"]

NSD = "/usr/sbin/nsd"
UNBOUND = "/usr/sbin/unbound"

def _txt_rdata(value: str | bytes | Sequence[str | bytes]) -> str:
    """TXT presentation text: one value split into 255-octet strings, or given strings."""
    if isinstance(value, (str, bytes)):
        raw = value.encode() if isinstance(value, str) else value
        parts = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    else:
        parts = [p.encode() if isinstance(p, str) else bytes(p) for p in value]
    out = []
    for part in parts:
        if len(part) > 255:
            raise ValueError(f"a TXT character-string is at most 255 octets ({len(part)})")
        escaped = "".join(chr(b) if 0x20 <= b < 0x7f and b not in (0x22, 0x5c)
                          else f"\\{b:03d}" for b in part)
        out.append(f'"{escaped}"')
    return " ".join(out)


class Zone:
    """The records of one zone (see the module docstring for the record syntax)."""

    def __init__(self, name: str, *, ttl: int = 60, signed: bool = False) -> None:
        self.name = name.rstrip(".").lower()
        self.origin = dns.name.from_text(self.name)
        self.ttl = ttl
        self.signed = signed
        self.records: list[tuple[dns.name.Name, int, dns.rdata.Rdata]] = []
        #: RRSIG inception and expiration, relative to the time of ``publish``; a window in
        #: the past publishes expired signatures (a bogus zone for a validator).
        self.signature_window = (datetime.timedelta(hours=-2), datetime.timedelta(days=7))
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._dnskey: dns.rdata.Rdata | None = None

    # -- records ---------------------------------------------------------------------

    def owner(self, owner: str) -> dns.name.Name:
        owner = owner.strip()
        if owner in ("@", ""):
            return self.origin
        lowered = owner.lower()
        if lowered.endswith("."):
            name = dns.name.from_text(owner)
        elif lowered == self.name or lowered.endswith("." + self.name):
            name = dns.name.from_text(owner + ".")
        else:
            name = dns.name.from_text(owner, origin=self.origin)
        if not name.is_subdomain(self.origin):
            raise ValueError(f"{owner!r} is outside the zone {self.name}")
        return name

    def add(self, owner: str, rtype: str, value, ttl: int | None = None) -> "Zone":
        """Add one record; returns the zone, so calls chain."""
        rtype = rtype.upper()
        text = _txt_rdata(value) if rtype in ("TXT", "SPF") else str(value)
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rtype, text, origin=self.origin,
                                        relativize=False)
        except Exception as exc:
            raise ValueError(f"zone {self.name}: bad {rtype} record for {owner!r}: "
                             f"{text!r}: {exc}") from None
        self.records.append((self.owner(owner), self.ttl if ttl is None else int(ttl), rdata))
        return self

    def extend(self, records: Iterable[Sequence]) -> "Zone":
        for record in records:
            if not 3 <= len(record) <= 4:
                raise ValueError(f"a record is (owner, type, value[, ttl]), not {record!r}")
            self.add(*record)
        return self

    def remove(self, owner: str, rtype: str | None = None) -> int:
        """Drop the records of ``owner`` (of one type, or all); how many went."""
        name = self.owner(owner)
        kind = dns.rdatatype.from_text(rtype) if rtype else None
        before = len(self.records)
        self.records = [r for r in self.records
                        if not (r[0] == name and (kind is None or r[2].rdtype == kind))]
        return before - len(self.records)

    def replace(self, owner: str, rtype: str, value, ttl: int | None = None) -> "Zone":
        self.remove(owner, rtype)
        return self.add(owner, rtype, value, ttl)

    # -- DNSSEC ------------------------------------------------------------------------

    def _ensure_key(self) -> None:
        if self._key is None:
            self._key = ec.generate_private_key(ec.SECP256R1())
            self._dnskey = dns.dnssec.make_dnskey(
                self._key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256,
                flags=Flag.ZONE | Flag.SEP)

    def trust_anchor(self) -> str:
        """``"<zone>. DNSKEY 257 3 13 ..."``: the key a validator must trust."""
        if not self.signed:
            raise ValueError(f"zone {self.name} is not signed")
        self._ensure_key()
        return f"{self.origin.to_text()} DNSKEY {self._dnskey.to_text()}"

    def ds(self) -> str:
        """The DS record (SHA-256) a parent zone would publish for this one."""
        self._ensure_key()
        ds = dns.dnssec.make_ds(self.origin, self._dnskey, "SHA256")
        return f"{self.origin.to_text()} DS {ds.to_text()}"

    # -- zone file ---------------------------------------------------------------------

    def build(self, serial: int) -> dns.zone.Zone:
        zone = dns.zone.Zone(self.origin, relativize=False)
        has_ns = any(r[0] == self.origin and r[2].rdtype == dns.rdatatype.NS
                     for r in self.records)
        ns = dns.name.from_text("ns", origin=self.origin)
        soa = dns.rdata.from_text(
            dns.rdataclass.IN, "SOA",
            f"{ns} hostmaster.{self.origin} {serial} 3600 600 86400 5")
        with zone.writer() as txn:
            txn.add(self.origin, self.ttl, soa)
            if not has_ns:
                txn.add(self.origin, self.ttl, dns.rdata.from_text(
                    dns.rdataclass.IN, "NS", ns.to_text()))
                if not any(r[0] == ns for r in self.records):
                    txn.add(ns, self.ttl, dns.rdata.from_text(
                        dns.rdataclass.IN, "A", "127.0.0.1"))
            for name, ttl, rdata in self.records:
                txn.add(name, ttl, rdata)
        if self.signed:
            self._ensure_key()
            now = datetime.datetime.now(datetime.timezone.utc)
            dns.dnssec.sign_zone(zone, keys=[(self._key, self._dnskey)],
                                 dnskey_ttl=self.ttl,
                                 inception=now + self.signature_window[0],
                                 expiration=now + self.signature_window[1])
        return zone

    def text(self, serial: int) -> str:
        return self.build(serial).to_text(relativize=False)


def _query(server: tuple[str, int], name: str, rtype: str, *, want_dnssec: bool = False,
           timeout: float = 2.0) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=want_dnssec)
    if want_dnssec:
        q.flags |= dns.flags.AD
    r = dns.query.udp(q, server[0], port=server[1], timeout=timeout)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, server[0], port=server[1], timeout=timeout)
    return r


def _wait(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:          # not up yet: connection refused, timeout
            last = exc
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})\n{tail}")


class DnsServer:
    """NSD serving ``zones``, authoritative only (no recursion), on 127.0.0.1:``port``."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.zones: dict[str, Zone] = {}
        self.serial = int(time.time())
        self.proc: subprocess.Popen | None = None
        self._loaded: tuple[str, ...] = ()
        self._mtime = 0.0
        self.resolvers: list["ValidatingResolver"] = []

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, as ``resolver.nameservers`` takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "nsd.log"

    def zone(self, name: str, records: Iterable[Sequence] = (), *, signed: bool | None = None,
             ttl: int | None = None) -> Zone:
        """The zone ``name``, created on first use (then ``signed``/``ttl`` apply), with
        ``records`` added. Call ``publish()`` to serve the changes."""
        key = name.rstrip(".").lower()
        zone = self.zones.get(key)
        if zone is None:
            zone = self.zones[key] = Zone(key, ttl=60 if ttl is None else ttl,
                                          signed=bool(signed))
        elif signed is not None and signed != zone.signed:
            raise ValueError(f"zone {key} already exists {'' if zone.signed else 'un'}signed")
        zone.extend(records)
        return zone

    # -- files -----------------------------------------------------------------------

    def _zone_path(self, zone: Zone) -> Path:
        return self.directory / f"{zone.name}.zone"

    def _write_config(self) -> Path:
        d = self.directory
        lines = [
            "server:",
            f"  ip-address: 127.0.0.1@{self.port}",
            f"  port: {self.port}",
            "  do-ip6: no",
            '  username: ""',
            '  chroot: ""',
            f'  zonesdir: "{d}"',
            f'  pidfile: "{d}/nsd.pid"',
            f'  logfile: "{d}/nsd.log"',
            f'  xfrdfile: "{d}/xfrd.state"',
            f'  xfrdir: "{d}"',
            f'  zonelistfile: "{d}/zone.list"',
            '  database: ""',
            "  server-count: 1",
            "  verbosity: 2",
            "  hide-version: yes",
            "  refuse-any: no",
            "",
            "remote-control:",
            "  control-enable: no",
            "",
        ]
        for zone in self.zones.values():
            lines += ["zone:", f"  name: {zone.name}", f'  zonefile: "{self._zone_path(zone)}"',
                      ""]
        path = d / "nsd.conf"
        path.write_text("\n".join(lines))
        return path

    def _write_zones(self) -> None:
        self.serial += 1
        # NSD reloads a zone file on SIGHUP only when its mtime changed: make sure it does,
        # even for two publishes within one clock tick.
        self._mtime = max(time.time(), self._mtime + 1.0)
        for zone in self.zones.values():
            path = self._zone_path(zone)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(zone.text(self.serial))
            os.utime(tmp, (self._mtime, self._mtime))
            tmp.replace(path)

    # -- process -----------------------------------------------------------------------

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def publish(self, timeout: float = 15.0) -> None:
        """Write every zone with a new serial and make NSD serve it: started (or restarted
        when the set of zones changed), else reloaded with SIGHUP. Returns once every zone
        answers with the new serial."""
        if shutil.which(NSD) is None and not Path(NSD).exists():
            pytest.fail(f"{NSD} is missing (tests/install-peers.sh installs nsd)")
        self._write_zones()
        names = tuple(sorted(self.zones))
        if not self.running() or names != self._loaded:
            self._stop_process()
            config = self._write_config()
            check = subprocess.run(["/usr/sbin/nsd-checkconf", str(config)],
                                   capture_output=True, text=True)
            if check.returncode != 0:
                raise AssertionError(f"nsd-checkconf: {check.stdout}{check.stderr}")
            log = open(self.directory / "nsd.out", "ab")
            try:
                self.proc = subprocess.Popen([NSD, "-d", "-c", str(config)], stdout=log,
                                             stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            finally:
                log.close()
            self._loaded = names
        else:
            self.proc.send_signal(signal.SIGHUP)
        for name in names:
            _wait(lambda: self._serial(name) == self.serial, timeout,
                  f"NSD to serve {name} with serial {self.serial}", self.log_path)
        for resolver in self.resolvers:
            resolver.flush()

    def _serial(self, name: str) -> int | None:
        if not self.running():
            out = self.directory / "nsd.out"
            raise AssertionError(f"nsd exited ({self.proc.returncode}):\n"
                                 f"{out.read_text(errors='replace') if out.exists() else ''}")
        r = _query(("127.0.0.1", self.port), name, "SOA", timeout=0.5)
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return rrset[0].serial
        return None

    def query(self, name: str, rtype: str, *, want_dnssec: bool = False) -> dns.message.Message:
        """Ask NSD directly (for a test's own checks)."""
        return _query(("127.0.0.1", self.port), name, rtype, want_dnssec=want_dnssec)

    def validating_resolver(self, directory: Path | None = None) -> "ValidatingResolver":
        """Unbound on loopback over these zones; see ``ValidatingResolver``."""
        resolver = ValidatingResolver(self, directory or self.directory / "unbound")
        resolver.start()
        self.resolvers.append(resolver)
        return resolver

    def _stop_process(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        for resolver in self.resolvers:
            resolver.stop()
        self.resolvers.clear()
        self._stop_process()


class ValidatingResolver:
    """Unbound on 127.0.0.1:``port``: a recursive, validating resolver whose whole world
    is the ``DnsServer``'s zones (each a stub zone pointing at NSD). Signed zones have
    their DNSKEY as trust anchor, so their answers carry the AD bit; unsigned zones are
    answered without it; a signed zone whose signatures do not verify is SERVFAIL.
    Restarted when the set of zones (or their keys) changes; its cache is flushed at each
    ``publish`` (by a restart too: Unbound's remote control is not set up)."""

    def __init__(self, server: DnsServer, directory: Path, port: int | None = None) -> None:
        self.server = server
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "unbound.log"

    def _write_config(self) -> Path:
        d = self.directory
        lines = [
            "server:",
            f"  interface: 127.0.0.1@{self.port}",
            f"  port: {self.port}",
            "  do-ip6: no",
            "  do-daemonize: no",
            '  username: ""',
            '  chroot: ""',
            f'  directory: "{d}"',
            f'  pidfile: "{d}/unbound.pid"',
            f'  logfile: "{self.log_path}"',
            "  use-syslog: no",
            "  verbosity: 1",
            "  val-log-level: 2",
            "  num-threads: 1",
            "  access-control: 127.0.0.0/8 allow",
            "  do-not-query-localhost: no",
            '  module-config: "validator iterator"',
            "  qname-minimisation: no",
            "  cache-max-negative-ttl: 1",
            "  val-permissive-mode: no",
            "  harden-dnssec-stripped: yes",
            # RFC 6761 names (test., invalid.) are local zones by default: serve ours.
        ]
        tlds = sorted({z.name.rsplit(".", 1)[-1] for z in self.server.zones.values()})
        for tld in tlds:
            lines.append(f'  local-zone: "{tld}." nodefault')
            lines.append(f'  domain-insecure: "{tld}."')
        for zone in self.server.zones.values():
            if zone.signed:
                lines.append(f'  trust-anchor: "{zone.trust_anchor()}"')
        lines.append("")
        for zone in self.server.zones.values():
            lines += ["stub-zone:", f'  name: "{zone.name}."',
                      f"  stub-addr: 127.0.0.1@{self.server.port}", ""]
        path = d / "unbound.conf"
        path.write_text("\n".join(lines))
        return path

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        if not Path(UNBOUND).exists():
            pytest.fail(f"{UNBOUND} is missing (tests/install-peers.sh installs unbound)")
        self.stop()
        config = self._write_config()
        check = subprocess.run(["/usr/sbin/unbound-checkconf", str(config)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise AssertionError(f"unbound-checkconf: {check.stdout}{check.stderr}")
        out = open(self.directory / "unbound.out", "ab")
        try:
            self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(config)], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()

        def answers() -> bool:
            if not self.running():
                raise AssertionError("unbound exited:\n" + (self.directory / "unbound.out")
                                     .read_text(errors="replace"))
            zone = next(iter(self.server.zones), None)
            r = _query(("127.0.0.1", self.port), zone or ".", "SOA", timeout=0.5)
            return r.rcode() == 0 or zone is None
        _wait(answers, timeout, f"unbound on port {self.port}", self.log_path)

    def flush(self) -> None:
        """Forget cached answers (and pick up new zones and keys): a restart."""
        if self.proc is not None:
            self.start()

    def query(self, name: str, rtype: str) -> dns.message.Message:
        """Ask Unbound, with the AD bit requested (RFC 6840 5.7)."""
        return _query(("127.0.0.1", self.port), name, rtype, want_dnssec=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def dns_server(tmp_path_factory):
    """A ``DnsServer`` (not yet serving: add zones, then ``publish()``); stopped at
    teardown with any ``validating_resolver()`` it started."""
    server = DnsServer(tmp_path_factory.mktemp("dns"))
    yield server
    server.stop()
