"""Server-side SASL (RFC 4422) for every protocol: SMTP AUTH, IMAP AUTHENTICATE, POP3
AUTH, ManageSieve AUTHENTICATE. User authentication only; message authentication
(DKIM, SPF, ...) lives in ``stalwart.auth``.

    mech = server_mechanism("SCRAM-SHA-256")    # or "PLAIN", "LOGIN"; None if unknown
    step = mech.start(initial_or_None)          # then respond()/resolve(), see base.py

``MECHANISMS`` lists the names in the order protocols advertise them (strongest first).
A protocol offers ``plaintext`` mechanisms only over TLS unless configured otherwise.
SCRAM needs ``ScramCredentials`` stored by the directory next to the argon2 hash.
"""

from __future__ import annotations

from .base import (Challenge, Failure, LookupCredentials, ServerMechanism, Step, Success,
                   VerifyPassword)
from .login import Login
from .plain import Plain
from .saslprep import saslprep
from .scram import ScramCredentials, ScramSha256

_REGISTRY: dict[str, type[ServerMechanism]] = {
    "SCRAM-SHA-256": ScramSha256,
    "PLAIN": Plain,
    "LOGIN": Login,
}

MECHANISMS: tuple[str, ...] = tuple(_REGISTRY)


def server_mechanism(name: str) -> ServerMechanism | None:
    """A fresh mechanism for ``name`` (case-insensitive), or None if we do not have it."""
    cls = _REGISTRY.get(name.upper()) if isinstance(name, str) else None
    return cls() if cls is not None else None


def is_plaintext(name: str) -> bool:
    cls = _REGISTRY.get(name.upper())
    return bool(cls and cls.plaintext)


__all__ = [
    "Challenge", "Failure", "LookupCredentials", "ServerMechanism", "Step", "Success",
    "VerifyPassword", "Plain", "Login", "ScramSha256", "ScramCredentials", "saslprep",
    "MECHANISMS", "server_mechanism", "is_plaintext",
]
