"""Self-signed certificates for the servers the integration tests start (ours and peers).

``self_signed(name, cert_path, key_path)`` writes a P-256 certificate for ``name`` (CN and
DNS subjectAltName, plus any ``ips``) and its key as PEM; the daemon reads them through
``[certificate.default]`` with ``%{file:...}%``. The DER is returned for pinning (DANE).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(name: str, cert_path: Path, key_path: Path, *, ips: tuple[str, ...] = (),
                days: int = 30) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt: list[x509.GeneralName] = [x509.DNSName(name)]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(key, hashes.SHA256()))
    Path(cert_path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(key_path).write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert.public_bytes(serialization.Encoding.DER)


def daemon_certificate(directory: Path, name: str = "mx.test.invalid", **kw) -> bytes:
    """``cert.pem`` and ``key.pem`` in ``directory`` (the daemon's root)."""
    directory = Path(directory)
    return self_signed(name, directory / "cert.pem", directory / "key.pem", **kw)
