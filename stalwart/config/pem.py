"""Validation of TLS certificate/key pairs given as PEM text.

Loading a config parses each ``[certificate.<id>]`` with ``cryptography``: the chain
must hold at least one certificate, the key must be an unencrypted private key, and the
key must belong to the first (leaf) certificate. Problems are reported against the
setting that holds the bad value (``cert`` or ``private-key``).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

# ``cryptography`` is imported when a certificate is checked, not with the config
# package: an instance without certificates never loads it (about 10 MiB per process
# tree; the master preloads it only when certificates are configured).

__all__ = ["PemError", "PairInfo", "check_pair"]


class PemError(ValueError):
    """A bad certificate or key; ``field`` is ``"cert"`` or ``"private-key"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PairInfo:
    names: tuple[str, ...]
    not_after: _dt.datetime


def check_pair(cert_pem: bytes, key_pem: bytes) -> PairInfo:
    """Parse and match a certificate chain and its key; ``PemError`` on any problem."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    if b"-----BEGIN" not in cert_pem:
        raise PemError("cert", "is not PEM text (no -----BEGIN CERTIFICATE----- line); "
                               "use %{file:/path/cert.pem}% to read a file")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise PemError("cert", f"is not a valid PEM certificate: {exc}") from None
    leaf = chain[0]

    if b"-----BEGIN" not in key_pem:
        raise PemError("private-key", "is not PEM text (no -----BEGIN ... PRIVATE KEY----- "
                                      "line); use %{file:/path/key.pem}% to read a file")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise PemError("private-key", "is encrypted; provide an unencrypted key") from None
    except ValueError as exc:
        raise PemError("private-key", f"is not a valid PEM private key: {exc}") from None
    except UnsupportedAlgorithm as exc:
        raise PemError("private-key", f"uses an unsupported algorithm: {exc}") from None

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise PemError("private-key", "does not match the certificate (the key belongs to a "
                                      "different certificate)")
    return PairInfo(_names(leaf), leaf.not_valid_after_utc)


def _names(cert) -> tuple[str, ...]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
        if names:
            return tuple(n.lower() for n in names)
    except x509.ExtensionNotFound:
        pass
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return tuple(str(a.value).lower() for a in common_names)
