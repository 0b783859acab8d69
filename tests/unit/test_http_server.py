"""serve(ctx) for the http pool (healthz, listeners, admin socket, drain) and the TLS
helper (SNI picks the certificate, TLS 1.2 minimum, clear errors for bad certificates)."""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.http.server import serve
from stalwart.http.testing import RawClient, tcp_listener, unix_listener
from stalwart.http.tls import TlsConfigError, certificate_names, server_context


@dataclass(frozen=True)
class Cert:
    cert_pem: bytes
    key_pem: bytes
    default: bool = False


def make_cert(names: list[str], *, cn: str | None = None, san: bool = True) -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30)))
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return Cert(cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


@dataclass(frozen=True)
class Listener:
    id: str
    protocol: str
    tls_implicit: bool = False


class Config:
    def __init__(self, certificates=None, shutdown_timeout=2.0):
        self.certificates = certificates or {}
        self.fallback_admin = ("admin", "pw")
        self.principals = []
        self._shutdown = shutdown_timeout

    def get(self, key):
        assert key == "server.shutdown-timeout"
        return self._shutdown


class Ctx:
    def __init__(self, config, sockets, admin_socket=None):
        self.kind, self.slot, self.generation = "http", 3, 7
        self.config = config
        self.sockets = sockets
        self.admin_socket = admin_socket
        self.shutdown = asyncio.Event()
        self.connections = self.opened = 0

    def connection_opened(self) -> None:          # the WorkerContext contract
        self.connections += 1
        self.opened += 1

    def connection_closed(self) -> None:
        self.connections -= 1


@pytest.fixture
def tmpdir_short():
    tmp = tempfile.mkdtemp(prefix="sw-srv-", dir="/tmp")
    yield Path(tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def peer_names(port: int, server_hostname: str | None) -> list[str]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(), server_hostname=server_hostname)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_serve_healthz_tls_sni_admin_socket_and_drain(tmpdir_short):
    default = make_cert(["default.example"])
    certs = {"a": make_cert(["mail.example.org"]),
             "b": make_cert(["*.example.net", "example.net"]),
             "c": Cert(default.cert_pem, default.key_pem, default=True)}

    async def main():
        plain, tls = tcp_listener(), tcp_listener()
        smtp = socket.socket()              # another pool's listener: not ours to serve
        admin = unix_listener(tmpdir_short / "admin.sock")
        ctx = Ctx(Config(certs), [(Listener("http", "http"), plain),
                                  (Listener("https", "http", True), tls),
                                  (Listener("smtp", "smtp"), smtp)], admin)
        task = asyncio.create_task(serve(ctx))
        plain_port, tls_port = plain.getsockname()[1], tls.getsockname()[1]
        await asyncio.sleep(0.05)

        expected = {"kind": "http", "slot": 3, "pid": os.getpid(), "generation": 7}
        for client in (await RawClient.tcp(plain_port),
                       await RawClient.tcp(tls_port, client_context(), "mail.example.org"),
                       await RawClient.unix(tmpdir_short / "admin.sock")):
            await client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head, headers, body = await client.response()
            assert head.status_code == 200 and orjson.loads(body) == expected
            assert headers["cache-control"] == "no-store"
            await client.close()
        # Each connection was reported to the worker (its title, the on-demand idle exit).
        await wait_until(lambda: ctx.connections == 0)
        assert ctx.opened == 3

        assert await peer_names(tls_port, "mail.example.org") == ["mail.example.org"]
        assert await peer_names(tls_port, "imap.example.net") == ["*.example.net",
                                                                   "example.net"]
        assert await peer_names(tls_port, "EXAMPLE.NET") == ["*.example.net", "example.net"]
        assert await peer_names(tls_port, "a.b.example.net") == ["default.example"]
        assert await peer_names(tls_port, "unknown.test") == ["default.example"]
        assert await peer_names(tls_port, None) == ["default.example"]

        # TLS 1.1 and older are refused.
        old = client_context()
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection("127.0.0.1", tls_port, ssl=old)
        # Failed handshakes (that one, the SNI probes) leave no connection counted.
        await wait_until(lambda: ctx.connections == 0)

        # Shutdown: a keep-alive client is closed, serve() returns, no more accepts.
        keep = await RawClient.tcp(plain_port)
        await keep.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await keep.response()
        ctx.shutdown.set()
        await asyncio.wait_for(task, 5)
        assert await keep.closed()
        await keep.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", plain_port)
        assert (tmpdir_short / "admin.sock").exists()    # the master owns it
        smtp.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_serve_without_certificates_fails_clearly():
    async def main():
        sock = tcp_listener()
        ctx = Ctx(Config({}), [(Listener("https", "http", True), sock)])
        with pytest.raises(TlsConfigError, match="at least one"):
            await serve(ctx)
    asyncio.run(main())


def test_certificate_names_from_cn_without_san():
    cert = make_cert(["legacy.example"], san=False)
    assert certificate_names(cert.cert_pem) == ["legacy.example"]
    with pytest.raises(TlsConfigError):
        certificate_names(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_mismatched_key_is_reported_with_the_certificate_id():
    one, two = make_cert(["one.example"]), make_cert(["two.example"])
    with pytest.raises(TlsConfigError, match="'broken'"):
        server_context({"broken": Cert(one.cert_pem, two.key_pem)})


def test_context_settings():
    ctx = server_context({"x": make_cert(["x.example"])}, alpn=("imap",))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.sni_callback is not None
