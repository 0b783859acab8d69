"""Value types of settings: how a raw TOML value becomes a typed Python value.

Each type has a ``name`` (shown in the generated reference) and ``parse(raw)``, which
returns the typed value or raises ``ValueError`` with a message fit for an operator.
Strings are accepted wherever a number or a boolean is expected, so that values coming
from ``%{env:...}%`` macros work (``"2525"`` is an int, ``"true"`` a bool).

- ``Duration`` -> float seconds. ``"30s"``, ``"500ms"``, ``"5m"``, ``"1h"``, ``"2d"``,
  ``"1w"``; a bare integer is milliseconds (Stalwart's convention).
- ``Size`` -> int bytes. ``"50mb"``, ``"1gb"``, ``"512kb"``, ``"100b"``; binary multiples
  (1 kb = 1024 bytes); a bare integer is bytes.
- ``SocketAddress`` -> ``(host, port)``: ``"0.0.0.0:25"``, ``"[::1]:143"``, ``"[::]:993"``.
  The host must be an IP literal (a listener binds to addresses, not names).
- ``List(item)`` -> tuple; a single value is accepted as a one-element list.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any, Sequence

__all__ = [
    "ValueType", "String", "Int", "Bool", "Duration", "Size", "SocketAddress", "Enum", "List",
    "format_duration", "parse_duration", "parse_size",
]


def _describe(raw: Any) -> str:
    return f"{type(raw).__name__} {raw!r}"


class ValueType:
    """Base class: subclasses set ``name`` and implement ``parse``."""

    name = "value"

    def parse(self, raw: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class String(ValueType):
    name = "string"

    def __init__(self, *, allow_empty: bool = False) -> None:
        self.allow_empty = allow_empty

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {_describe(raw)}")
        if not self.allow_empty and not raw.strip():
            raise ValueError("must not be empty")
        return raw


class Int(ValueType):
    def __init__(self, *, min: int | None = None, max: int | None = None) -> None:
        self.min, self.max = min, max
        if min is not None and max is not None:
            self.name = f"integer ({min}-{max})"
        elif min is not None:
            self.name = f"integer (>= {min})"
        else:
            self.name = "integer"

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {_describe(raw)}")
        if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
            raw = int(raw)
        if not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {_describe(raw)}")
        if self.min is not None and raw < self.min:
            raise ValueError(f"must be at least {self.min}, got {raw}")
        if self.max is not None and raw > self.max:
            raise ValueError(f"must be at most {self.max}, got {raw}")
        return raw


class Bool(ValueType):
    name = "boolean"
    _WORDS = {"true": True, "false": False}

    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in self._WORDS:
            return self._WORDS[raw.strip().lower()]
        raise ValueError(f"expected true or false, got {_describe(raw)}")


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*", re.IGNORECASE)


def parse_duration(raw: Any) -> float:
    """Seconds for ``"30s"``-style text or an integer of milliseconds."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a duration such as \"30s\", got {_describe(raw)}")
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError(f"a duration cannot be negative, got {raw}")
        return raw / 1000.0
    if isinstance(raw, str):
        if re.fullmatch(r"\s*\d+\s*", raw):
            return int(raw) / 1000.0
        m = _DURATION_RE.fullmatch(raw)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
    raise ValueError(
        f"expected a duration such as \"500ms\", \"30s\", \"5m\", \"1h\", \"2d\" "
        f"or an integer of milliseconds, got {_describe(raw)}")


def format_duration(seconds: float) -> str:
    """The shortest exact text form of a duration (used in docs and messages)."""
    for unit in ("w", "d", "h", "m", "s"):
        n = seconds / _DURATION_UNITS[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{round(seconds * 1000)}ms"


class Duration(ValueType):
    name = "duration"

    def __init__(self, *, min: float | None = None) -> None:
        self.min = min

    def parse(self, raw: Any) -> float:
        value = parse_duration(raw)
        if self.min is not None and value < self.min:
            raise ValueError(f"must be at least {format_duration(self.min)}")
        return value


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?b?)\s*", re.IGNORECASE)


def parse_size(raw: Any) -> int:
    """Bytes for ``"50mb"``-style text (1 kb = 1024 bytes) or an integer of bytes."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 0:
            raise ValueError(f"a size cannot be negative, got {raw}")
        return raw
    if isinstance(raw, str):
        m = _SIZE_RE.fullmatch(raw)
        if m:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(
        f"expected a size such as \"512kb\", \"50mb\", \"1gb\" or an integer of bytes, "
        f"got {_describe(raw)}")


class Size(ValueType):
    name = "size"

    def parse(self, raw: Any) -> int:
        return parse_size(raw)


class SocketAddress(ValueType):
    name = "socket address"

    def parse(self, raw: Any) -> tuple[str, int]:
        if not isinstance(raw, str):
            raise ValueError(f"expected an address such as \"0.0.0.0:25\", got {_describe(raw)}")
        text = raw.strip()
        m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", text) or re.fullmatch(r"([^:\[\]]+):(\d+)", text)
        if not m:
            raise ValueError(
                f"expected HOST:PORT such as \"0.0.0.0:25\" or \"[::]:25\", got {raw!r}")
        host, port = m.group(1), int(m.group(2))
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise ValueError(f"{host!r} in {raw!r} is not an IP address") from None
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} in {raw!r} is out of range 1-65535")
        return (host, port)


class Enum(ValueType):
    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)
        self.name = " | ".join(f"`{c}`" for c in self.choices)

    def parse(self, raw: Any) -> str:
        if isinstance(raw, str):
            value = raw.strip().lower()
            if value in self.choices:
                return value
            close = difflib.get_close_matches(value, self.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown value {raw!r}{hint}; expected one of {', '.join(self.choices)}")
        raise ValueError(f"expected one of {', '.join(self.choices)}, got {_describe(raw)}")


class List(ValueType):
    def __init__(self, item: ValueType, *, min_items: int = 0) -> None:
        self.item = item
        self.min_items = min_items
        self.name = f"list of {item.name}"

    def parse(self, raw: Any) -> tuple:
        items = raw if isinstance(raw, list) else [raw]
        out = []
        for i, item in enumerate(items):
            try:
                out.append(self.item.parse(item))
            except ValueError as exc:
                raise ValueError(f"item {i + 1}: {exc}") from None
        if len(out) < self.min_items:
            raise ValueError(f"needs at least {self.min_items} item(s)")
        return tuple(out)
