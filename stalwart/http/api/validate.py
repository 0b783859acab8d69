"""Input checks for the management API, run before anything reaches the store.

Each check takes the decoded JSON value and returns it normalized, or raises
``HTTPError(400, code="invalid")`` naming the field. Domain names and addresses are
normalized by the store's own functions (IDNA to ASCII, lower case, RFC 1035 label
rules, RFC 5321 length limits), so the API and the store can never disagree about what
is valid; checking here gives a precise error without a round trip to the store process.

``check_object`` refuses unknown fields: a typo such as ``"qouta"`` is an error, not a
silently ignored change.
"""

from __future__ import annotations

from typing import Any, Callable

from stalwart.store.engine import normalize_address, normalize_domain
from stalwart.store.errors import StoreError

from ..message import HTTPError

Check = Callable[[str, Any], Any]

MAX_NAME = 255
MAX_PASSWORD = 1024
MAX_ADDRESSES = 1000
MAX_QUOTA = 2**63 - 1
ACCOUNT_TYPES = ("individual", "admin")


def invalid(field: str, message: str) -> HTTPError:
    return HTTPError(400, f"{field}: {message}", code="invalid")


def _string(field: str, value: Any, *, max_len: int = MAX_NAME,
            allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if not value and not allow_empty:
        raise invalid(field, "must not be empty")
    if len(value) > max_len:
        raise invalid(field, f"is longer than {max_len} characters")
    return value


def domain_name(field: str, value: Any) -> str:
    value = _string(field, value, max_len=253 * 4)
    try:
        return normalize_domain(value)
    except StoreError as exc:
        raise invalid(field, exc.message) from None


def address(field: str, value: Any) -> str:
    value = _string(field, value, max_len=320)
    try:
        return normalize_address(value)
    except StoreError as exc:
        raise invalid(field, exc.message) from None


def address_list(field: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise invalid(field, "must be a list of addresses")
    if len(value) > MAX_ADDRESSES:
        raise invalid(field, f"has more than {MAX_ADDRESSES} addresses")
    out: list[str] = []
    for index, item in enumerate(value):
        normalized = address(f"{field}[{index}]", item)
        if normalized not in out:
            out.append(normalized)
    return out


def account_name(field: str, value: Any) -> str:
    value = _string(field, value)
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise invalid(field, "must not contain spaces or control characters")
    if "/" in value:
        raise invalid(field, "must not contain '/'")
    return value


def password(field: str, value: Any) -> str:
    return _string(field, value, max_len=MAX_PASSWORD)


def optional_password(field: str, value: Any) -> str | None:
    """A new password, or null to remove it (the account can then not log in)."""
    return None if value is None else password(field, value)


def display_name(field: str, value: Any) -> str:
    value = _string(field, value, allow_empty=True)
    if any(not ch.isprintable() for ch in value):
        raise invalid(field, "must not contain control characters")
    return value


def quota(field: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(field, "must be an integer number of bytes (0 = unlimited)")
    if not 0 <= value <= MAX_QUOTA:
        raise invalid(field, "must be between 0 and 2^63-1 bytes")
    return value


def boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def account_type(field: str, value: Any) -> str:
    if value not in ACCOUNT_TYPES:
        raise invalid(field, f"must be one of {', '.join(ACCOUNT_TYPES)}")
    return value


def optional(check: Check) -> Check:
    """Allow JSON null (meaning "none") in addition to what ``check`` accepts."""
    def run(field: str, value: Any) -> Any:
        return None if value is None else check(field, value)
    return run


def check_object(body: dict, *, required: dict[str, Check] | None = None,
                 optional_fields: dict[str, Check] | None = None) -> dict[str, Any]:
    """Check every field of ``body``; unknown or missing fields are errors."""
    required = required or {}
    optional_fields = optional_fields or {}
    unknown = sorted(set(body) - set(required) - set(optional_fields))
    if unknown:
        raise HTTPError(400, f"unknown fields: {', '.join(unknown)}", code="invalid")
    missing = sorted(set(required) - set(body))
    if missing:
        raise HTTPError(400, f"missing fields: {', '.join(missing)}", code="invalid")
    out: dict[str, Any] = {}
    for name, value in body.items():
        check = required.get(name) or optional_fields[name]
        out[name] = check(name, value)
    return out


def account_name_or_address(field: str, value: Any) -> str:
    """An account named by its name or one of its addresses."""
    value = _string(field, value, max_len=320)
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise invalid(field, "must not contain spaces or control characters")
    return value
