"""Checking a password against a configured secret: argon2 hash or plain text.

The comparison itself is the config's (``stalwart.config.secret.verify_secret``: argon2
PHC hashes checked with argon2-cffi, plain text compared in constant time), so the config
loader, the fallback admin and the memory directory share one rule. This wrapper adds
what a login path needs on top: it never raises for missing or mistyped values, and a
``$scheme$`` value that is not argon2 never matches (the loader rejects such secrets;
treating one as a plain password would let anyone who read the hash log in with it).

argon2 verification costs tens of milliseconds of CPU: async callers run
``verify_secret`` in an executor (``authenticate`` does).
"""

from __future__ import annotations

from stalwart.config.secret import is_hashed
from stalwart.config.secret import verify_secret as _config_verify


def verify_secret(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``. Never raises for bad input."""
    if not stored or not isinstance(stored, str) or not isinstance(password, str):
        return False
    if stored.startswith("$") and not is_hashed(stored):
        return False
    return _config_verify(stored, password)
