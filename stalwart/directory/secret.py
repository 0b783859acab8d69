"""Checking a password against a configured secret: argon2 hash or plain text.

A secret starting with ``$argon2`` is a PHC-format argon2 hash (RFC 9106) checked with
argon2-cffi. Any other ``$scheme$`` value is refused: the config loader rejects such
secrets, and treating them as plain passwords would let anyone who read the hash log in
with it. Anything else is a plain-text password, compared in constant time
(``hmac.compare_digest`` over the UTF-8 bytes).

argon2 verification costs tens of milliseconds of CPU: async callers run
``verify_secret`` in an executor (``authenticate`` does).
"""

from __future__ import annotations

import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def verify_secret(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``. Never raises for bad input."""
    if not stored or not isinstance(stored, str) or not isinstance(password, str):
        return False
    if stored.startswith("$argon2"):
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith("$"):
        return False
    return hmac.compare_digest(stored.encode("utf-8"), password.encode("utf-8"))
