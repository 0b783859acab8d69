"""Macros in string values: ``%{file:PATH}%`` and ``%{env:NAME}%``.

A macro may stand alone or sit inside a longer string (``"%{env:HOME}%/certs"``), and a
string may hold several. ``%{file:PATH}%`` is replaced by the file's text (UTF-8) with one
trailing newline (``\\n`` or ``\\r\\n``) removed; a relative PATH is taken relative to the
directory of the config file. ``%{env:NAME}%`` is replaced by the environment variable;
an unset variable is an error (an empty one is not). Replacement text is not expanded
again. Anything else that looks like a macro (``%{cfg:...}%``, an unterminated
``%{file:``) is an error rather than being passed through literally.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

__all__ = ["expand", "expand_value"]

_MACRO = re.compile(r"%\{([A-Za-z]+):([^}]*)\}%")
_OPENING = re.compile(r"%\{(?:file|env):", re.IGNORECASE)


def expand(text: str, *, base: Path, env: Mapping[str, str] | None = None) -> str:
    """``text`` with its macros replaced; ``ValueError`` naming the file or variable."""
    if "%{" not in text:
        return text
    environ = os.environ if env is None else env
    out: list[str] = []
    pos = 0
    for m in _MACRO.finditer(text):
        leftover = text[pos:m.start()]
        if _OPENING.search(leftover):
            raise ValueError(f"unterminated macro in {leftover!r}; write %{{file:PATH}}%")
        out.append(leftover)
        kind, arg = m.group(1).lower(), m.group(2).strip()
        if kind == "file":
            out.append(_read_file(arg, base))
        elif kind == "env":
            if not arg:
                raise ValueError("%{env:}% needs a variable name")
            if arg not in environ:
                raise ValueError(f"environment variable {arg} is not set")
            out.append(environ[arg])
        else:
            raise ValueError(f"unknown macro %{{{m.group(1)}:...}}%; "
                             f"use %{{file:PATH}}% or %{{env:NAME}}%")
        pos = m.end()
    rest = text[pos:]
    if _OPENING.search(rest):
        raise ValueError("unterminated macro: %{file:...}% and %{env:...}% end with }%")
    out.append(rest)
    return "".join(out)


def expand_value(value: object, *, base: Path, env: Mapping[str, str] | None = None) -> object:
    """``expand`` applied to a string or to each string of a list; other values unchanged."""
    if isinstance(value, str):
        return expand(value, base=base, env=env)
    if isinstance(value, list):
        return [expand(v, base=base, env=env) if isinstance(v, str) else v for v in value]
    return value


def _read_file(arg: str, base: Path) -> str:
    if not arg:
        raise ValueError("%{file:}% needs a path")
    path = Path(arg).expanduser()
    if not path.is_absolute():
        path = base / path
    origin = "" if str(path) == arg else f" (%{{file:{arg}}}%)"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"file {path} does not exist{origin}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a file{origin}") from None
    except OSError as exc:
        raise ValueError(f"cannot read file {path}{origin}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"file {path} is not UTF-8 text{origin}") from None
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
