"""The authenticated identity every directory returns."""

from __future__ import annotations

from dataclasses import dataclass

#: Where a principal comes from ("socket": a trusted peer on the admin Unix socket).
SOURCES = ("memory", "internal", "fallback", "socket")


@dataclass(frozen=True)
class Principal:
    """An authenticated account (or administrator).

    ``id`` is the store's account id for internal accounts and ``None`` for principals
    that have no mailbox in the store (memory-directory principals and the fallback
    admin). ``emails[0]`` is the primary address. ``quota`` is in bytes, 0 = unlimited.
    """

    name: str
    source: str
    id: int | None = None
    type: str = "individual"                # individual | admin | group
    emails: tuple[str, ...] = ()
    display_name: str = ""
    quota: int = 0

    @property
    def is_admin(self) -> bool:
        return self.type == "admin"

    @property
    def primary_email(self) -> str | None:
        return self.emails[0] if self.emails else None
