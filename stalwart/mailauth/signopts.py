"""How outbound mail is DKIM-signed (``auth.dkim.sign.*``), as a value the callers of
``stalwart.mailauth.keys.sign_outbound`` hold and pass: the SMTP server's
``LocalDelivery.dkim_sign`` (set when its worker starts) and the queue's TLS report job.

Kept apart from ``keys`` so that building it from the config does not import
``cryptography`` (about 8 MiB), which a process that never signs must not pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SignOptions", "ALGORITHMS", "RSA_SHA256", "ED25519_SHA256"]

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
ALGORITHMS = (RSA_SHA256, ED25519_SHA256)


@dataclass(frozen=True)
class SignOptions:
    """How outbound mail is signed. ``algorithms``: which of a domain's keys may sign
    (the newest key of each); ``canonicalization`` ``(header, body)``; ``headers`` None:
    the default list (``dkim.DEFAULT_HEADERS``); ``oversign``: fields signed once more
    than present; ``expire`` seconds for ``x=``, None for none."""

    algorithms: tuple[str, ...] = ALGORITHMS
    canonicalization: tuple[str, str] = ("relaxed", "relaxed")
    headers: tuple[str, ...] | None = None
    oversign: tuple[str, ...] = ("from",)
    expire: int | None = None

    @classmethod
    def from_config(cls, config: Any) -> "SignOptions":
        header_canon, _, body_canon = config.get("auth.dkim.sign.canonicalization").partition("/")
        expire = config.get("auth.dkim.sign.expire")
        return cls(algorithms=tuple(config.get("auth.dkim.sign.algorithms")),
                   canonicalization=(header_canon, body_canon),
                   headers=tuple(h.strip().lower() for h in config.get("auth.dkim.sign.headers")),
                   expire=int(expire) if expire else None)

    def signer_kwargs(self) -> dict:
        kwargs: dict[str, Any] = {"canonicalization": self.canonicalization,
                                  "oversign": self.oversign, "expire": self.expire}
        if self.headers is not None:
            kwargs["headers"] = self.headers
        return kwargs
