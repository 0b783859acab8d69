"""The memory directory: principals declared in the config file.

``[[directory.<id>.principals]]`` entries reach us as ``Config.principals``: dicts with
``name``, ``class`` (individual | admin | group), ``secret`` (plain text or argon2 hash;
absent = cannot log in), ``email`` (list, first = primary), ``description`` and
``quota`` (bytes). Logins are a principal's name or any of its addresses, matched without
regard to case (as the internal directory does).

A ``Config`` never changes once built, so the index is built once per config object.
"""

from __future__ import annotations

import weakref
from typing import Any, Iterable

from .principal import Principal

_cache: "weakref.WeakKeyDictionary[Any, MemoryDirectory]" = weakref.WeakKeyDictionary()


class MemoryDirectory:
    """Principals from the config, indexed by lower-cased name and address."""

    def __init__(self, principals: Iterable[dict]) -> None:
        self._by_login: dict[str, tuple[Principal, str | None]] = {}
        for entry in principals:
            emails = tuple(str(e) for e in (entry.get("email") or ()))
            principal = Principal(
                name=str(entry["name"]),
                source="memory",
                type=str(entry.get("class") or "individual"),
                emails=emails,
                display_name=str(entry.get("description") or ""),
                quota=int(entry.get("quota") or 0),
            )
            secret = entry.get("secret")
            record = (principal, str(secret) if secret else None)
            for login in (principal.name, *emails):
                self._by_login.setdefault(login.lower(), record)

    @classmethod
    def from_config(cls, config: Any) -> "MemoryDirectory":
        try:
            return _cache[config]
        except (KeyError, TypeError):
            pass
        directory = cls(getattr(config, "principals", None) or ())
        try:
            _cache[config] = directory
        except TypeError:       # not weak-referenceable (a test double): just don't cache
            pass
        return directory

    def __len__(self) -> int:
        return len({p.name for p, _ in self._by_login.values()})

    def lookup(self, login: str) -> tuple[Principal, str | None] | None:
        """The principal for a login and its stored secret, or None if unknown."""
        return self._by_login.get(login.lower())

    def get(self, login: str) -> Principal | None:
        found = self.lookup(login)
        return found[0] if found else None
