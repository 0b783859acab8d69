"""MIME messages for IMAP, JMAP, delivery and the spam filter: the public API.

Other code imports this module, never ``stalwart._native`` directly. Parsing is native
(``ext/src/mime.rs``, on Stalwart Labs' ``mail-parser`` crate) and runs without the GIL;
there is no pure-Python fallback (docs/architecture.md: native code fails loudly when
missing).

``parse(raw)`` returns a :class:`Message`. What it offers (see ``stalwart/_native.pyi``):

- the part tree: ``message.parts`` (index 0 is the root, ``part.children`` index into the
  same list), each with byte offsets into ``message.raw`` (``header_start``,
  ``body_start``, ``body_end``), MIME fields (RFC 2045/2046/2183/2231/2392/3282/2557),
  ``size`` and ``lines`` (IMAP BODYSTRUCTURE, RFC 3501/9051 section 7.5.2), and for
  message/rfc822 parts the nested :class:`Message` (``part.message``) whose offsets are
  in the same outer ``raw``;
- the envelope, decoded (RFC 2047 encoded-words, charsets to UTF-8): ``subject``,
  ``from_``/``sender``/``reply_to``/``to``/``cc``/``bcc`` as ``(name, address)`` lists or
  ``address_groups(field)`` for IMAP ENVELOPE groups, ``date`` (Unix time) and
  ``date_raw``, ``message_id``, ``in_reply_to``, ``references``; where a field repeats the
  last one counts (RFC 8621 section 4.1.3). ``headers`` / ``header(name)`` give the raw
  fields for IMAP ``HEADER.FIELDS`` and the raw ENVELOPE strings;
- JMAP bodies (RFC 8621 section 4.1.4): ``text_body``, ``html_body``, ``attachments``
  (part indexes), ``decoded_body(index)`` (str for text, bytes otherwise) and
  ``preview`` (RFC 8621 / RFC 8970, up to 256 characters).

Invariants: parsing never raises on malformed mail (missing boundaries, bad encodings,
8-bit headers, no body, no header); nesting is capped at :data:`MAX_DEPTH`;
``0 <= header_start <= body_start <= body_end <= len(raw)`` for every part.

:func:`find_section` resolves IMAP section part numbers (RFC 9051 section 6.4.5) on the
tree, so IMAP FETCH ``BODY[1.2.MIME]`` and friends share one definition.
"""

from __future__ import annotations

from collections.abc import Sequence

from stalwart._native import MIME_MAX_DEPTH, Message, Part, parse_message

__all__ = ["MAX_DEPTH", "Message", "Part", "find_section", "parse"]

MAX_DEPTH: int = MIME_MAX_DEPTH
"""Deepest container nesting kept; deeper containers are leaves."""


def parse(raw: bytes | bytearray | memoryview) -> Message:
    """Parse an RFC 5322 message; never raises for malformed input.

    ``raw`` is kept (not copied) when it is ``bytes``; other buffers are copied once,
    since the parsed offsets must keep pointing into immutable data.
    """
    if not isinstance(raw, bytes):
        if not isinstance(raw, (bytearray, memoryview)):
            raise TypeError(f"raw message must be bytes, not {type(raw).__name__}")
        raw = bytes(raw)
    return parse_message(raw)


def find_section(message: Message, numbers: Sequence[int]) -> tuple[Message, Part] | None:
    """The part that IMAP section part ``numbers`` (e.g. ``(1, 2)`` for ``1.2``) names.

    Returns ``(message the part belongs to, part)`` or None when there is no such part.
    Rules (RFC 9051 section 6.4.5): in a multipart, ``n`` is its n-th child; a message
    whose root is not multipart has one part, ``1``, its root; a message/rfc822 part's
    numbers continue into its nested message by the same rules. An empty sequence names
    the message itself and returns its root part.
    """
    current = message
    part = current.part(0)
    if not numbers:
        return current, part
    at_message_root = True
    for position, number in enumerate(numbers):
        if number < 1:
            return None
        if at_message_root and not part.is_multipart:
            # A non-multipart message has exactly one part, numbered 1: its root.
            if number != 1:
                return None
        else:
            children = part.children
            if number > len(children):
                return None
            part = current.part(children[number - 1])
        at_message_root = False
        if position + 1 < len(numbers) and not part.is_multipart:
            nested = part.message
            if nested is None:
                return None
            current = nested
            part = current.part(0)
            at_message_root = True
    return current, part
