"""TLS certificates chosen by SNI, and replaced on SIGHUP without dropping connections.

The daemon has three certificates from PEM files: ``default`` (mx.test.invalid, the
default), ``other`` (imap.other.test) and ``wild`` (*.wild.test), an SMTP listener
(STARTTLS) and an IMAP listener with implicit TLS, and a long ``server.shutdown-timeout``
so a reload lets old connections finish. Each TLS handshake is checked by the SHA-256 of the certificate the
server presented.

Shown here:
- SNI picks the certificate by name on both listeners (STARTTLS on SMTP, implicit TLS on
  IMAP), case-insensitively, a wildcard for one label only (RFC 6125 6.4.3); no SNI, or a
  name no certificate has, gets the default one.
- The PEM files are replaced and the master gets SIGHUP: new connections see the new
  certificates (by SNI too), while an SMTP session opened before stays up on the old
  certificate and keeps working (a whole message goes through it and lands in the
  INBOX). An IMAP session opened before gets a clean BYE from its draining worker (the
  IMAP server's drain rule) and the reconnecting client sees the new certificate.
- A reload with a key that does not belong to its certificate is refused: the daemon
  keeps serving the certificates it had.
"""

from __future__ import annotations

import hashlib
import imaplib
import signal
import socket
import ssl
from pathlib import Path

import pytest

from .configs import memory_directory
from .dnsserver import free_port
from .postfixpeer import self_signed

pytestmark = pytest.mark.integration


def _client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _fingerprint(sock: ssl.SSLSocket) -> str:
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


class SmtpTls:
    """A plain-socket SMTP session that does STARTTLS with a chosen SNI name."""

    def __init__(self, port: int, server_name: str | None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""
        assert self.reply().startswith("220")
        self.cmd("EHLO client.test", "250")
        self.cmd("STARTTLS", "220")
        self.sock = _client_context().wrap_socket(self.sock, server_hostname=server_name)
        self.buf = b""
        self.fingerprint = _fingerprint(self.sock)
        self.cmd("EHLO client.test", "250")

    def reply(self) -> str:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"connection closed after {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line: str, expect: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        reply = self.reply()
        assert reply.startswith(expect), (line, reply)
        return reply

    def close(self) -> None:
        try:
            self.cmd("QUIT", "221")
        finally:
            self.sock.close()


def _smtp_fingerprint(port: int, server_name: str | None) -> str:
    session = SmtpTls(port, server_name)
    session.close()
    return session.fingerprint


def _imaps(port: int, server_name: str | None) -> imaplib.IMAP4_SSL:
    ctx = _client_context()
    # imaplib sends the host as SNI: connect to 127.0.0.1 by a socket we wrap ourselves.

    class Client(imaplib.IMAP4):
        def _create_socket(self, timeout):
            raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            return ctx.wrap_socket(raw, server_hostname=server_name)

    return Client("127.0.0.1", port, timeout=15)


def _imap_fingerprint(port: int, server_name: str | None) -> str:
    client = _imaps(port, server_name)
    try:
        return _fingerprint(client.sock)
    finally:
        client.logout()


def _der_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


class Certs:
    """The two certificate files of the daemon, re-issued on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fp: dict[str, str] = {}
        self.issue()

    def path(self, ident: str, kind: str) -> Path:
        return self.root / f"{ident}-{kind}.pem"

    def issue(self) -> None:
        for ident, name in (("default", "mx.test.invalid"), ("other", "imap.other.test"),
                            ("wild", "*.wild.test")):
            der = self_signed(name, self.path(ident, "cert"), self.path(ident, "key"))
            self.fp[ident] = _der_sha256(der)


@pytest.fixture
def tls_daemon(daemon):
    ports = {"smtp": free_port(), "imaps": free_port()}
    certs = Certs(daemon.root)
    daemon.configure(
        listeners=[("smtp", "smtp", ports["smtp"])],
        server={"shutdown-timeout": "120s"},
        extra=f"""
[[server.listener]]
id = "imaps"
protocol = "imap"
bind = "127.0.0.1:{ports['imaps']}"
tls.implicit = true

[certificate.default]
cert = "%{{file:{certs.path('default', 'cert')}}}%"
private-key = "%{{file:{certs.path('default', 'key')}}}%"
default = true

[certificate.other]
cert = "%{{file:{certs.path('other', 'cert')}}}%"
private-key = "%{{file:{certs.path('other', 'key')}}}%"

[certificate.wild]
cert = "%{{file:{certs.path('wild', 'cert')}}}%"
private-key = "%{{file:{certs.path('wild', 'key')}}}%"

{memory_directory(("jane", "jane-password", ["jane@example.test"]))}
""")
    daemon.ports = list(ports.values())
    daemon.start()
    daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30,
                    message="the memory directory")
    return daemon, ports, certs


def test_sni_chooses_the_certificate_on_smtp_and_imap(tls_daemon):
    daemon, ports, certs = tls_daemon
    assert certs.fp["default"] != certs.fp["other"]
    for name, expected in ((None, "default"), ("mx.test.invalid", "default"),
                           ("imap.other.test", "other"), ("IMAP.Other.Test", "other"),
                           ("a.wild.test", "wild"), ("b.a.wild.test", "default"),
                           ("wild.test", "default"), ("unknown.example", "default")):
        assert _smtp_fingerprint(ports["smtp"], name) == certs.fp[expected], name
        assert _imap_fingerprint(ports["imaps"], name) == certs.fp[expected], name


def test_sighup_reloads_certificates_and_open_connections_stay_up(tls_daemon):
    daemon, ports, certs = tls_daemon
    old = dict(certs.fp)
    imap = _imaps(ports["imaps"], "imap.other.test")
    assert _fingerprint(imap.sock) == old["other"]
    imap.login("jane", "jane-password")
    imap.select("INBOX")
    smtp = SmtpTls(ports["smtp"], None)
    assert smtp.fingerprint == old["default"]

    certs.issue()                                # new keys and certificates, same files
    assert certs.fp["default"] != old["default"] and certs.fp["other"] != old["other"]
    daemon.reload()

    # New connections: the new certificates, chosen by SNI as before.
    def renewed() -> bool:
        return (_smtp_fingerprint(ports["smtp"], None) == certs.fp["default"]
                and _imap_fingerprint(ports["imaps"], None) == certs.fp["default"]
                and _imap_fingerprint(ports["imaps"], "imap.other.test") == certs.fp["other"]
                and _smtp_fingerprint(ports["smtp"], "imap.other.test") == certs.fp["other"])
    daemon.wait_for(renewed, timeout=30, message="new connections to get the new certificates")

    # The SMTP session opened before the reload is still served by its old worker, on
    # the old certificate: a whole message goes through it.
    smtp.cmd("NOOP", "250")
    smtp.cmd("MAIL FROM:<bob@remote.test>", "250")
    smtp.cmd("RCPT TO:<jane@example.test>", "250")
    smtp.cmd("DATA", "354")
    smtp.cmd("Subject: across the reload\r\n\r\nsent on a pre-reload session\r\n.", "250")
    assert _fingerprint(smtp.sock) == old["default"]
    smtp.close()
    # The IMAP session opened before the reload stays up too, on its old worker (retired
    # gently: no new connections, the open ones go on) and its old certificate, and it
    # sees the message delivered after the reload.
    assert imap.noop()[0] == "OK"
    assert _fingerprint(imap.sock) == old["other"]
    typ, count = imap.select("INBOX", readonly=True)
    assert typ == "OK" and count == [b"1"]
    _, fetched = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"across the reload" in fetched[0][1]
    # The master retires it once its successor is up; its title says so within a beat.
    daemon.wait_for(lambda: [p.title.split()[1] for p in daemon.processes()
                             if "(retiring)" in p.title] == ["imap"],
                    timeout=15, message="the old imap worker to be retiring")
    # A new client gets the new certificate (and the new worker).
    fresh = _imaps(ports["imaps"], "imap.other.test")
    try:
        assert _fingerprint(fresh.sock) == certs.fp["other"]
        fresh.login("jane", "jane-password")
        typ, count = fresh.select("INBOX", readonly=True)
        assert typ == "OK" and count == [b"1"]
    finally:
        fresh.logout()
    # Its last session gone, the old worker leaves on its own.
    imap.logout()
    daemon.wait_for(lambda: not any("(retiring)" in p.title for p in daemon.processes()),
                    timeout=15, message="the retired imap worker to leave")
    assert "replaced, and its last connection ended" in daemon.log()


def test_a_reload_with_a_mismatched_key_keeps_the_running_certificates(tls_daemon):
    daemon, ports, certs = tls_daemon
    before = dict(certs.fp)
    # The other certificate's key under the default certificate: the pair does not match.
    certs.path("default", "key").write_bytes(certs.path("other", "key").read_bytes())
    daemon.reload()
    assert daemon.running()
    assert "does not match the certificate" in daemon.log()
    assert _smtp_fingerprint(ports["smtp"], None) == before["default"]
    assert _imap_fingerprint(ports["imaps"], "imap.other.test") == before["other"]
    # Fixed files: the next SIGHUP takes them.
    certs.issue()
    daemon.reload()
    daemon.wait_for(lambda: _smtp_fingerprint(ports["smtp"], None) == certs.fp["default"],
                    timeout=30, message="the fixed certificate")
    assert daemon.stop(signal.SIGTERM) == 0
