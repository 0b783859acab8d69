"""The one exception the configuration layer raises.

``str(ConfigError)`` always reads ``FILE: KEY: what is wrong`` so that an operator can go
straight to the offending line; parts that are unknown are left out (a TOML syntax error
has a line instead of a key: ``FILE: line 12: ...``). Loading collects every problem it
can find before raising, so ``--check-config`` reports them all at once: the raised error
is the first one and ``errors`` holds all of them, in file order where that is known.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """A configuration file (or the embedded default) is unusable."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        errors: tuple["ConfigError", ...] = (),
    ) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        self.errors: tuple[ConfigError, ...] = errors or (self,)
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.key is not None:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)

    def __repr__(self) -> str:
        return f"ConfigError({str(self)!r})"

    @classmethod
    def collect(cls, errors: list["ConfigError"]) -> "ConfigError":
        """One error to raise for a non-empty list: the first, carrying all of them."""
        if not errors:
            raise ValueError("ConfigError.collect needs at least one error")
        first = errors[0]
        return cls(first.message, file=first.file, key=first.key, line=first.line,
                   errors=tuple(errors))
