"""DKIM keys: generation, storage form, the DNS record to publish, and the outbound
signing step that picks a domain's keys from the store.

Algorithms are named as in the ``a=`` tag: ``rsa-sha256`` (RFC 6376; keys of 1024 to
4096 bits, 2048 by default) and ``ed25519-sha256`` (RFC 8463). Private keys are kept as
unencrypted PKCS#8 PEM text in the store record (the store also holds the password
hashes; its files are readable by the server's user only). Public keys are published as
``v=DKIM1; k=rsa|ed25519; p=<base64>``: for RSA the DER SubjectPublicKeyInfo, for
Ed25519 the raw 32-byte key (RFC 8463 4.2). ``dns_record`` also gives the record split
into character-strings of at most 255 octets, as a zone file needs.

Store records (``stalwart/store/ops/dkim.py``)::

    {"domain", "selector", "algorithm", "private_key": PEM str, "created": epoch seconds}

Outbound signing (``sign_outbound``): the domain of the message's single From address;
the newest key of each algorithm that domain has in the store signs, restricted to the
configured algorithms, with the configured canonicalization, header list and expiry
(``SignOptions``, from ``auth.dkim.sign.*``; the defaults: both algorithms,
relaxed/relaxed, ``dkim.DEFAULT_HEADERS``, no ``x=``), From oversigned. The options are
handed to each caller (the SMTP server's ``LocalDelivery.dkim_sign``, the queue's TLS
report job), never kept in a global. A message without a usable From, or for a domain
without keys (of an allowed algorithm), leaves unchanged. Loaded private keys are cached
by (domain, selector, created, PEM) so a busy sender does not parse PEM for every
message.
"""

from __future__ import annotations

import base64
import email.utils
import re
import time
from dataclasses import dataclass
from typing import Any, Collection, Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .signopts import ALGORITHMS, ED25519_SHA256, RSA_SHA256, SignOptions

__all__ = ["ALGORITHMS", "DEFAULT_RSA_BITS", "generate", "private_key_pem", "load_private_key",
           "public_key_b64", "dns_record", "DnsRecord", "key_algorithm", "new_selector",
           "signers_for", "from_domain", "sign_outbound", "valid_selector", "SignOptions"]

DEFAULT_RSA_BITS = 2048
MIN_RSA_BITS = 1024
MAX_RSA_BITS = 4096

_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")


def valid_selector(selector: str) -> bool:
    return isinstance(selector, str) and len(selector) <= 200 and bool(_SELECTOR.match(selector))


def generate(algorithm: str, bits: int = DEFAULT_RSA_BITS):
    """A new private key for ``algorithm``."""
    if algorithm == RSA_SHA256:
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise ValueError(f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if algorithm == ED25519_SHA256:
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown DKIM algorithm {algorithm!r} (use {' or '.join(ALGORITHMS)})")


def key_algorithm(key: Any) -> str:
    """The ``a=`` value a private or public key signs with."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return RSA_SHA256
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return ED25519_SHA256
    raise ValueError(f"unsupported key type {type(key).__name__}")


def private_key_pem(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def load_private_key(data: str | bytes | Any):
    """A private key from PEM (PKCS#8 or PKCS#1 RSA), or a key object passed through.
    ``ValueError`` for anything else (encrypted keys included)."""
    if isinstance(data, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        return data
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if not isinstance(data, bytes):
        raise ValueError(f"a private key must be PEM text, not {type(data).__name__}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a usable unencrypted PEM private key: {exc}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise ValueError(f"DKIM keys are RSA or Ed25519, not {type(key).__name__}")
    return key


def public_key_b64(key: Any) -> str:
    """The ``p=`` value for a private or public key."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, rsa.RSAPublicKey):
        raw = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raise ValueError(f"unsupported key type {type(public).__name__}")
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class DnsRecord:
    name: str                  # selector._domainkey.domain
    value: str                 # the TXT data as one string
    strings: tuple[str, ...]   # the same in character-strings of at most 255 octets

    def zone_line(self) -> str:
        """``name. IN TXT ( "..." "..." )`` for a zone file."""
        quoted = " ".join(f'"{s}"' for s in self.strings)
        return f"{self.name}. IN TXT ( {quoted} )"


def dns_record(domain: str, selector: str, key: Any) -> DnsRecord:
    kind = "rsa" if key_algorithm(key) == RSA_SHA256 else "ed25519"
    value = f"v=DKIM1; k={kind}; p={public_key_b64(key)}"
    strings = tuple(value[i:i + 255] for i in range(0, len(value), 255))
    return DnsRecord(f"{selector}._domainkey.{domain}", value, strings)


def new_selector(algorithm: str, existing: Iterable[str], now: float | None = None) -> str:
    """``rsa-YYYYMMDD`` / ``ed25519-YYYYMMDD``, with ``-2``, ``-3``... when taken."""
    prefix = "rsa" if algorithm == RSA_SHA256 else "ed25519"
    base = f"{prefix}-{time.strftime('%Y%m%d', time.gmtime(now if now is not None else time.time()))}"
    taken = {s.lower() for s in existing}
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


# --------------------------------------------------------------------------- outbound

_key_cache: dict[tuple[str, str, float, Any], Any] = {}
_KEY_CACHE_MAX = 256


def _cached_key(record: dict) -> Any:
    # The PEM text is part of the key: two stores (or a key deleted and made again in
    # the same second) may hold different keys under one (domain, selector, created).
    ident = (record["domain"], record["selector"], float(record.get("created", 0)),
             record["private_key"])
    key = _key_cache.get(ident)
    if key is None:
        key = load_private_key(record["private_key"])
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[ident] = key
    return key


DEFAULT_SIGN_OPTIONS = SignOptions()


def signers_for(records: Iterable[dict], options: SignOptions | None = None) -> list:
    """DkimSigners for the newest key of each algorithm among ``records``, for the
    algorithms ``options`` allows, signing as ``options`` says (default: both
    algorithms, relaxed/relaxed, the default headers, From oversigned, no expiry)."""
    from .dkim import DkimSigner

    options = options or DEFAULT_SIGN_OPTIONS
    kwargs = options.signer_kwargs()
    newest: dict[str, dict] = {}
    for record in records:
        algorithm = record.get("algorithm")
        if algorithm not in ALGORITHMS or algorithm not in options.algorithms:
            continue
        if algorithm not in newest or record.get("created", 0) >= newest[algorithm].get("created", 0):
            newest[algorithm] = record
    return [DkimSigner(r["domain"], r["selector"], _cached_key(r), r["algorithm"], **kwargs)
            for _, r in sorted(newest.items())]


def from_domain(message: bytes) -> str | None:
    """The domain of the single address in the single From field, lower case, or None."""
    from .canon import split_message

    fields, _ = split_message(message[:65536] if len(message) > 65536 else message)
    values = [f.raw for f in fields if f.lname == b"from"]
    if len(values) != 1:
        return None
    text = values[0].split(b":", 1)[1].decode("utf-8", "replace").replace("\r\n", "")
    addresses = [a for _, a in email.utils.getaddresses([text]) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = addresses[0].rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


def sign_outbound(store: Any, message: bytes, *, now: float | None = None,
                  allowed: "Collection[str] | None" = None,
                  options: SignOptions | None = None) -> bytes:
    """``message`` with DKIM-Signature fields prepended when its From domain has keys.

    ``allowed``: the (A-label, lower-case) domains the sender may sign for, the domains
    of the authenticated account's own addresses; a From in any other domain goes out
    unsigned, so one account cannot get another local domain's signature. None: any
    domain (a client of a trusted relay network). ``options``: ``SignOptions`` (None:
    the defaults)."""
    from .dkim import sign

    domain = from_domain(message)
    if domain is None:
        return message
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return message
    if allowed is not None and domain not in allowed:
        return message
    reader = getattr(store, "dkim_keys", None)
    if reader is None:
        return message
    records = reader(domain)
    if not records:
        return message
    signers = signers_for(records, options)
    if not signers:
        return message
    return sign(message, signers, now=now) + message
