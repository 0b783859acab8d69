"""The registry of settings: every key the server understands is declared here once.

A declaration names a key pattern (``server.listener.<id>.bind``), its type, its default
(written the way an operator would write it in the file, or a function of the
placeholder values when it depends on the machine or on the key), its documentation, and
optionally a validator. The loader rejects any key that matches no declaration (with the
nearest declared key as a hint), the typed accessor ``Config.get`` applies defaults, and
``python -m stalwart.config.docs`` renders ``docs/configuration.md`` from the same list.

Declarations live in ``stalwart/config/settings/<area>.py``; to add settings for a new
area, write a module there calling ``declare(...)`` and add it to the import list of
``stalwart/config/settings/__init__.py`` (the registry must be complete before any file
is loaded, and the config package must not import protocol code).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .keys import Key, format_key, is_placeholder, match_pattern, parse_key
from .types import ValueType

__all__ = ["Setting", "Registry", "REGISTRY", "declare", "section"]

_UNSET = object()


@dataclass(frozen=True)
class Setting:
    pattern: Key
    type: ValueType
    doc: str
    section: str
    default: Any = None                   # raw (as written in a file), or a callable
    default_doc: str | None = None        # how the reference shows a callable default
    required: bool = False
    validator: Callable[[Any, dict[str, str]], None] | None = None
    secret: bool = False                  # never echoed back in messages

    @property
    def key(self) -> str:
        return format_key(self.pattern)

    @property
    def wildcards(self) -> int:
        return sum(1 for s in self.pattern if is_placeholder(s))

    def default_value(self, params: dict[str, str]) -> Any:
        """The typed default for a concrete key (placeholder values in ``params``)."""
        if callable(self.default):
            return self.default(params)
        if self.default is None:
            return None
        return self.type.parse(self.default)

    def documented_default(self) -> str | None:
        if self.default_doc is not None:
            return self.default_doc
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, str):
            return f'"{self.default}"'
        return repr(self.default)


@dataclass
class Registry:
    settings: list[Setting] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)   # name -> introduction
    _by_pattern: dict[Key, Setting] = field(default_factory=dict)

    def section(self, name: str, doc: str) -> None:
        if name in self.sections:
            raise ValueError(f"configuration section {name!r} declared twice")
        self.sections[name] = doc

    def declare(self, key: str, type: ValueType, doc: str, *, section: str,
                default: Any = None, default_doc: str | None = None, required: bool = False,
                validator: Callable[[Any, dict[str, str]], None] | None = None,
                secret: bool = False) -> Setting:
        pattern = parse_key(key)
        if pattern in self._by_pattern:
            raise ValueError(f"setting {key!r} declared twice")
        if section not in self.sections:
            raise ValueError(f"setting {key!r}: undeclared section {section!r}")
        if callable(default) and default_doc is None:
            raise ValueError(f"setting {key!r}: a computed default needs default_doc")
        if default is not None and not callable(default):
            type.parse(default)            # a wrong default is a bug: fail at import
        setting = Setting(pattern, type, " ".join(doc.split()), section, default, default_doc,
                          required, validator, secret)
        self.settings.append(setting)
        self._by_pattern[pattern] = setting
        return setting

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def find(self, key: Key) -> tuple[Setting, dict[str, str]] | None:
        """The most specific declaration matching ``key`` and its placeholder values."""
        best: tuple[Setting, dict[str, str]] | None = None
        for setting in self.settings:
            params = match_pattern(setting.pattern, key)
            if params is not None and (best is None or setting.wildcards < best[0].wildcards):
                best = (setting, params)
        return best

    def array_kind(self, prefix: Key) -> str | None:
        """How an array of tables at ``prefix`` is keyed: ``"id"``, ``"n"`` or None."""
        depth = len(prefix)
        for setting in self.settings:
            p = setting.pattern
            if len(p) > depth and is_placeholder(p[depth]) and \
                    match_pattern(p[:depth], prefix) is not None:
                name = p[depth][1:-1]
                return "n" if name == "n" else "id"
        return None

    def is_id_table(self, prefix: Key) -> bool:
        """True when the children of ``prefix`` are ids (``server.listener.<id>``)."""
        return self.array_kind(prefix) == "id"

    def suggest(self, key: Key) -> str | None:
        """The declared key nearest to an unknown ``key``, with its placeholders filled in."""
        candidates: dict[str, Setting] = {}
        for setting in self.settings:
            p = setting.pattern
            if len(p) == len(key):
                filled = tuple(k if is_placeholder(s) else s for s, k in zip(p, key))
            else:
                # fill the placeholders that line up with the key's own segments
                filled = tuple(key[i] if is_placeholder(s) and i < len(key) else s
                               for i, s in enumerate(p))
            candidates[format_key(filled)] = setting
        close = difflib.get_close_matches(format_key(key), list(candidates), n=1, cutoff=0.6)
        return close[0] if close else None


REGISTRY = Registry()


def declare(key: str, type: ValueType, doc: str, **kwargs: Any) -> Setting:
    """Declare a setting in the global registry (see ``Registry.declare``)."""
    return REGISTRY.declare(key, type, doc, **kwargs)


def section(name: str, doc: str) -> None:
    """Declare a section of the reference (the settings' first key segment, by convention)."""
    REGISTRY.section(name, doc)
