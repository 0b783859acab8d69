"""Server-side TLS contexts built from ``Config.certificates``.

``server_context(certificates, alpn=...)`` returns one ``ssl.SSLContext`` for an
implicit-TLS listener (or for STARTTLS: the same context works with ``loop.start_tls``):

- TLS 1.2 is the minimum (RFC 8996 deprecates 1.0 and 1.1; RFC 8314 for mail);
- every configured certificate gets its own context, and the SNI callback picks the one
  whose names (subjectAltName DNS entries, else the subject CN; ``*.example.org`` wildcards
  match one label, RFC 6125 section 6.4.3) match the name the client asked for; a client
  without SNI, or asking for an unknown name, gets the default certificate (the one marked
  ``default``, else the first by id);
- private keys are handed to OpenSSL through an anonymous in-memory file (``memfd``), so
  the key never touches a file system other than the one it was configured in.

Nothing here is specific to HTTP: SMTP, IMAP, POP3 and ManageSieve listeners build their
contexts with the same function (with their own ALPN ids, RFC 7301 / IANA registry:
"imap", "pop3", "smtp" is not registered, so pass ``alpn=()`` there).
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Protocol


class CertificateLike(Protocol):
    cert_pem: bytes
    key_pem: bytes
    default: bool


class TlsConfigError(ValueError):
    """The configured certificates cannot be used (message names the certificate)."""


@contextlib.contextmanager
def _secret_path(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that holds ``data``, removed when the block ends."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("stalwart-tls", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="stalwart-tls-") as tmp:   # mode 0700
        path = Path(tmp) / "pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield str(path)


def certificate_names(cert_pem: bytes) -> list[str]:
    """The DNS names a PEM certificate (its first, leaf certificate) is valid for."""
    from cryptography import x509          # only where certificates are configured
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise TlsConfigError(f"not a PEM certificate: {exc}") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                 if isinstance(a.value, str)]
    return [n.lower().rstrip(".") for n in names]


def _context(cert_id: str, cert: CertificateLike, alpn: tuple[str, ...]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    try:
        with _secret_path(cert.cert_pem) as cert_path, _secret_path(cert.key_pem) as key_path:
            ctx.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        raise TlsConfigError(f"certificate {cert_id!r}: cannot load the certificate and "
                             f"private key: {exc.reason or exc}") from None
    return ctx


def lookup(names: Mapping[str, ssl.SSLContext], server_name: str) -> ssl.SSLContext | None:
    """The context for ``server_name``: an exact name first, then a one-label wildcard."""
    server_name = server_name.lower().rstrip(".")
    ctx = names.get(server_name)
    if ctx is None and "." in server_name:
        ctx = names.get("*." + server_name.split(".", 1)[1])
    return ctx


def server_context(certificates: Mapping[str, CertificateLike], *,
                   alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """One SSLContext serving every configured certificate, chosen by SNI."""
    if not certificates:
        raise TlsConfigError("a TLS listener needs at least one [certificate.<id>]")
    contexts: dict[str, ssl.SSLContext] = {}
    by_name: dict[str, ssl.SSLContext] = {}
    default_id = None
    for cert_id in sorted(certificates):
        cert = certificates[cert_id]
        contexts[cert_id] = _context(cert_id, cert, alpn)
        try:
            names = certificate_names(cert.cert_pem)
        except TlsConfigError as exc:
            raise TlsConfigError(f"certificate {cert_id!r}: {exc}") from None
        for name in names:
            by_name.setdefault(name, contexts[cert_id])
        if getattr(cert, "default", False) and default_id is None:
            default_id = cert_id
    default = contexts[default_id or sorted(contexts)[0]]

    def choose(sslobj: ssl.SSLObject, server_name: str | None,
               _ctx: ssl.SSLContext) -> None:
        if server_name:
            chosen = lookup(by_name, server_name)
            if chosen is not None and chosen is not default:
                sslobj.context = chosen
        return None

    default.sni_callback = choose
    return default
