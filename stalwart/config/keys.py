"""Setting keys: dotted paths, quoting, and patterns with ``<name>`` placeholders.

A key is held as a tuple of segments, because ids may contain dots
(``[certificate."mail.example.com"]``). Its text form is the TOML dotted-key syntax:
segments joined with ``.``, any segment that is not a bare TOML key (letters, digits,
``-``, ``_``) written in double quotes. ``parse_key`` is the inverse.

A pattern is a key whose segments may be placeholders, ``<id>`` or ``<protocol>``, each
matching exactly one segment. The placeholder ``<n>`` marks an array of tables keyed by
position (``[[directory.x.principals]]``); ``<id>`` under an array of tables marks one
keyed by its ``id`` field (``[[server.listener]]`` with ``id = "smtp"``).
"""

from __future__ import annotations

import re

__all__ = ["Key", "format_key", "parse_key", "is_placeholder", "match_pattern"]

Key = tuple[str, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+\Z")


def is_placeholder(segment: str) -> bool:
    return len(segment) > 2 and segment[0] == "<" and segment[-1] == ">"


def format_key(key: Key) -> str:
    """The text form: ``("certificate", "a.b", "cert")`` -> ``certificate."a.b".cert``."""
    out = []
    for seg in key:
        if _BARE.match(seg) or is_placeholder(seg):
            out.append(seg)
        else:
            out.append('"' + seg.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return ".".join(out)


def parse_key(text: str | Key) -> Key:
    """Split a dotted key, honouring double-quoted segments. A tuple is returned as is."""
    if isinstance(text, tuple):
        return text
    if not isinstance(text, str):
        raise TypeError(f"a setting key is a str or a tuple of str, not {type(text).__name__}")
    segments: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ValueError(f"unterminated quote in key {text!r}")
            segments.append("".join(buf))
            i = j + 1
        else:
            j = text.find(".", i)
            j = n if j < 0 else j
            segments.append(text[i:j].strip())
            i = j
        if i >= n:
            break
        if text[i] != ".":
            raise ValueError(f"malformed key {text!r}")
        i += 1
    if any(s == "" for s in segments):
        raise ValueError(f"empty segment in key {text!r}")
    return tuple(segments)


def match_pattern(pattern: Key, key: Key) -> dict[str, str] | None:
    """The placeholder values if ``key`` matches ``pattern`` (same length), else None."""
    if len(pattern) != len(key):
        return None
    params: dict[str, str] = {}
    for p, k in zip(pattern, key):
        if is_placeholder(p):
            params[p[1:-1]] = k
        elif p != k:
            return None
    return params
