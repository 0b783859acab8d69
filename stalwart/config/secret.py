"""Administrator and principal secrets: plain text or argon2 hashes, and the generated one.

A stored secret that starts with ``$argon2`` is an argon2 hash in PHC string format
(``$argon2id$v=19$m=...,t=...,p=...$salt$hash``); anything else is the password itself.
Values that look like another crypt scheme (``$6$...``, ``$2b$...``, ``$pbkdf2-sha256$...``)
are rejected by ``check_format`` instead of silently becoming a password nobody can type.

The embedded default's fallback admin gets a random secret on first use: the plaintext is
shown once, and only its argon2 hash is kept, in ``<base_dir>/etc/admin-secret`` (mode
0600, created with O_EXCL so two processes starting at once agree on one secret).
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["is_hashed", "check_format", "hash_secret", "verify_secret", "load_or_create"]

_HASHER = argon2.PasswordHasher()
_OTHER_SCHEME = re.compile(r"\$[A-Za-z0-9-]{1,32}\$")


def is_hashed(secret: str) -> bool:
    """True when ``secret`` is an argon2 hash rather than a plain-text password."""
    return secret.startswith("$argon2")


def check_format(secret: str) -> None:
    """``ValueError`` for a malformed argon2 hash or an unsupported hash scheme."""
    if is_hashed(secret):
        try:
            argon2.extract_parameters(secret)
        except InvalidHashError:
            raise ValueError("starts with $argon2 but is not a valid argon2 hash") from None
    elif _OTHER_SCHEME.match(secret):
        scheme = secret.split("$")[1]
        raise ValueError(f"hash scheme ${scheme}$ is not supported; use an argon2 hash "
                         f"($argon2id$...) or a plain-text password")


def hash_secret(plaintext: str) -> str:
    """An argon2id hash (PHC string) of ``plaintext``."""
    return _HASHER.hash(plaintext)


def verify_secret(stored: str, candidate: str) -> bool:
    """Whether ``candidate`` matches ``stored`` (an argon2 hash or plain text)."""
    if is_hashed(stored):
        try:
            return _HASHER.verify(stored, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    return hmac.compare_digest(stored.encode("utf-8"), candidate.encode("utf-8"))


def load_or_create(path: Path) -> tuple[str, str | None]:
    """``(argon2 hash, plaintext)`` where plaintext is set only if this call created it.

    Raises ``ValueError`` when the file exists but does not hold an argon2 hash, and
    ``OSError`` when it cannot be read or written.
    """
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    else:
        if not is_hashed(stored):
            raise ValueError("does not hold an argon2 hash; delete it to generate a new secret")
        check_format(stored)
        return stored, None

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    plaintext = secrets.token_urlsafe(18)
    hashed = hash_secret(plaintext)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(hashed + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)     # atomic and fails if another process won the race
        except FileExistsError:
            return load_or_create(path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return hashed, plaintext
