"""The IMAP command parser the session uses: the Rust parser of ``ext/src/imap/``.

Same interface, same events, same values and same errors as the pure-Python reference
``grammar_ref`` (the executable specification; see its docstring for the framing rules,
the limits and the grammar choices): feed bytes with ``receive_data``, call ``next_event``
until it returns ``NEED_DATA``. Events are the classes of ``types.py`` (``Command``,
``Continuation``, ``IdleDone``, ``SaslResponse``), built by the native side directly;
errors are raised as ``ImapError``. ``tests/protocol/test_imap_grammar_native.py`` checks
that both parsers agree on every reference case and on random commands cut at random.

What the native parser adds (and the reference cannot show, having the same events):

- literal octets are moved out of the line buffer as they arrive and are never scanned for
  line ends; a literal is accepted only when its announced size is within the limits, so
  ``{4294967295}`` is refused before one octet of it is read or reserved, and a refused
  non-synchronizing literal is dropped as it arrives, never stored;
- memory follows the octets received: a literal's buffer grows as its data arrives (never
  reserved from the announced size), and an idle parser gives back a burst's buffers;
- with ``stream_append`` on, message literals (APPEND, REPLACE, UID REPLACE) are not
  collected at all: their octets leave as ``LiteralChunk`` events as they arrive (at most
  one input burst each), so a 50 MB APPEND or REPLACE costs the reader no more than a
  1 KB one;
- the work is linear in the octets received (each octet is looked at for a line end
  once), and parsing a command costs well under a microsecond per argument
  (``python -m bench micro.imap_parser``: 9-14x the reference).

Invariants of the session contract: after an error the parser is at the next command;
``buffered()`` is 0 when a STARTTLS command has been read and nothing followed it.
"""

from __future__ import annotations

from typing import Callable

from .. import base
from ... import _native
from .grammar_ref import Limits
from .types import Command

__all__ = ["Parser", "Limits", "NEED_DATA", "parse_command"]

NEED_DATA = base.NEED_DATA


def _limits_tuple(limits: Limits) -> tuple[int, ...]:
    return (limits.max_line, limits.max_command, limits.max_literal, limits.max_append,
            limits.max_append_total, limits.max_discard, limits.max_depth, limits.max_args)


def parse_command(parts: list[bytes], literals: list[tuple[bytes, bool]], *,
                  limits: Limits = Limits(), utf8: bool = False) -> Command:
    """Parse one complete command (its line parts and literals). Raises ImapError."""
    return _native.imap_parse_command(parts, literals, _limits_tuple(limits), utf8)


class Parser:
    """Incremental IMAP command reader: bytes in, events out (see ``grammar_ref.Parser``).

    ``literal_limit(name)`` (optional) gives the largest literal the session accepts for
    command ``name`` now; the default applies ``Limits.max_append`` to APPEND and
    ``Limits.max_literal`` to the rest. The methods are the native object's own (bound
    once here), so a call costs no Python frame.
    """

    COMMAND, IDLE, SASL = "command", "idle", "sasl"

    __slots__ = ("limits", "_native", "receive_data", "next_event", "buffered", "memory",
                 "discard_buffer", "expect_idle_done", "expect_sasl", "expect_command",
                 "refuse_literal")

    def __init__(self, limits: Limits | None = None, *, utf8: bool = False,
                 literal_limit: Callable[[str], int] | None = None) -> None:
        self.limits = limits or Limits()
        native = _native.ImapParser(_limits_tuple(self.limits), utf8, literal_limit)
        self._native = native
        self.receive_data = native.receive_data
        self.next_event = native.next_event
        self.buffered = native.buffered
        self.memory = native.memory
        self.discard_buffer = native.discard_buffer
        self.expect_idle_done = native.expect_idle_done
        self.expect_sasl = native.expect_sasl
        self.expect_command = native.expect_command
        self.refuse_literal = native.refuse_literal

    @property
    def utf8(self) -> bool:
        """Mailbox names are UTF-8 (IMAP4rev2 or UTF8=ACCEPT), else modified UTF-7."""
        return self._native.utf8

    @utf8.setter
    def utf8(self, value: bool) -> None:
        self._native.utf8 = value

    @property
    def stream_append(self) -> bool:
        """Message literals (APPEND, REPLACE, UID REPLACE) leave as ``LiteralChunk`` events
        as they arrive, and the command carries an empty literal in their place (off by
        default; the session turns it on and spools the chunks, see
        ``commands/append.py``)."""
        return self._native.stream_append

    @stream_append.setter
    def stream_append(self, value: bool) -> None:
        self._native.stream_append = value

    @property
    def mode(self) -> str:
        """``COMMAND``, ``IDLE`` (the next line must be DONE) or ``SASL``."""
        return self._native.mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._native.mode = value
