"""Errors of the mail-level store API.

A ``StoreError`` always means the operation changed nothing: the engine runs every operation
in its own transaction layer and throws that layer away when it raises.
"""

from __future__ import annotations

#: Codes a caller may branch on. Protocols map them to replies (e.g. over_quota -> SMTP 552
#: 5.2.2 / IMAP NO [OVERQUOTA]; unavailable -> SMTP 451 4.3.0 / IMAP NO [UNAVAILABLE]).
CODES = frozenset(
    {"invalid", "not_found", "exists", "in_use", "over_quota", "conflict", "unavailable",
     "forbidden"}  # forbidden: the acting account lacks an ACL right (IMAP NO [NOPERM])
)


class StoreError(Exception):
    """An operation was refused or could not be carried out; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown store error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_wire(self) -> list:
        return [self.code, self.message]

    @classmethod
    def from_wire(cls, value) -> "StoreError":
        try:
            code, message = value
            return cls(str(code), str(message))
        except (TypeError, ValueError):
            return cls("unavailable", f"malformed error from the store: {value!r}")
