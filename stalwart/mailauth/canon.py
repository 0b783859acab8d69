"""The parts DKIM (RFC 6376) and ARC (RFC 8617) share: the message split into header
fields and body, header and body canonicalization, and tag=value lists.

Message
    ``split_message(raw)`` normalises bare LF line ends to CRLF (messages on the wire and
    in our store are CRLF; files and test data often are not), then returns the header
    fields in order, each ``Field(lname, raw)`` with ``raw`` the whole field as it appears,
    folding and final CRLF included, and the body (everything after the empty line; empty
    when there is none). A header line that is neither a field (no colon) nor a
    continuation is skipped: it cannot be signed, and it must not make parsing fail.

Canonicalization (RFC 6376 3.4)
    ``simple`` headers are the raw bytes; ``relaxed`` lower-cases the name, unfolds,
    collapses runs of WSP to one SP and drops WSP at the ends of the value and around the
    colon. Bodies: ``simple`` drops trailing empty lines and ends the body with one CRLF
    (an empty body is one CRLF); ``relaxed`` also drops WSP at line ends and collapses WSP
    runs, and an empty body stays empty. Both work on whole bytes objects with C-level
    ``re``/``bytes`` operations: no per-line Python loop.

Tag lists (RFC 6376 3.2)
    ``parse_tags(text)`` -> ``{name: value}`` with FWS around names and values removed;
    ``TagListError`` for an empty tag-spec (other than after a final ``;``), a tag without
    ``=``, a bad tag name, a duplicate tag or a control character in a value. Tag names
    are case-sensitive. Values may contain UTF-8 (RFC 8616).
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["Field", "TagListError", "split_message", "relaxed_header", "simple_header",
           "canonical_body", "parse_tags", "strip_fws", "strip_b_value"]


class Field(NamedTuple):
    lname: bytes          # field name, lower case, trailing WSP removed
    raw: bytes            # the whole field: "Name: value\r\n" with its folding


class TagListError(ValueError):
    """A tag=value list that does not follow RFC 6376 3.2."""


_BARE_LF = re.compile(rb"(?<!\r)\n")
_WSP_RUN = re.compile(rb"[ \t]+")
_FIELD_SPLIT = re.compile(rb"\r\n(?![ \t])")
_FWS = re.compile(r"[ \t\r\n]+")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f;]")


def normalize_line_ends(message: bytes) -> bytes:
    if message.count(b"\n") != message.count(b"\r\n"):
        return _BARE_LF.sub(b"\r\n", message)
    return message


def split_message(message: bytes) -> tuple[list[Field], bytes]:
    """The header fields in order and the body (see the module notes)."""
    message = normalize_line_ends(bytes(message))
    if message.startswith(b"\r\n"):
        return [], message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        head, body = message, b""
        if not head.endswith(b"\r\n"):
            head += b"\r\n"
    else:
        head, body = message[:end + 2], message[end + 4:]
    fields: list[Field] = []
    for piece in _FIELD_SPLIT.split(head[:-2]):
        colon = piece.find(b":")
        if colon <= 0 or piece[:1] in (b" ", b"\t"):
            continue                     # not a field (no name), or a stray continuation
        name = piece[:colon].rstrip(b" \t")
        if not name or b" " in name or b"\r" in name or b"\t" in name:
            continue
        fields.append(Field(name.lower(), piece + b"\r\n"))
    return fields, body


def simple_header(raw: bytes) -> bytes:
    return raw


def relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 3.4.2 for one whole field (``raw`` may or may not end in CRLF)."""
    name, _, value = raw.partition(b":")
    value = value.replace(b"\r\n", b"")
    if value.endswith(b"\r"):
        value = value[:-1]
    value = _WSP_RUN.sub(b" ", value).strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def _strip_trailing_crlfs(body: bytes) -> bytes:
    """``body`` without its trailing CRLF pairs (a lone CR before them stays)."""
    stripped = body.rstrip(b"\r\n")
    cut = len(stripped)
    tail = body[cut:]
    while tail and tail != b"\r\n" * (len(tail) // 2):
        cut += 1
        tail = body[cut:]
    return body[:cut]


def canonical_body(body: bytes, method: str) -> bytes:
    """RFC 6376 3.4.3 (simple) and 3.4.4 (relaxed)."""
    if method == "relaxed":
        if b"\t" in body or b" " in body:
            body = _WSP_RUN.sub(b" ", body).replace(b" \r\n", b"\r\n").rstrip(b" ")
        body = _strip_trailing_crlfs(body)
        return body + b"\r\n" if body else b""
    body = _strip_trailing_crlfs(body)
    return body + b"\r\n"


def strip_fws(value: str) -> str:
    """A tag value with every folding white space removed (b=, bh=, p=)."""
    return _FWS.sub("", value)


def parse_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    parts = text.split(";")
    last = len(parts) - 1
    for index, part in enumerate(parts):
        if not part.strip(" \t\r\n"):
            if index == last:
                continue
            raise TagListError("empty tag in tag list")
        name, eq, value = part.partition("=")
        name = name.strip(" \t\r\n")
        if not eq:
            raise TagListError(f"tag {name[:20]!r} has no '='")
        if not _TAG_NAME.match(name):
            raise TagListError(f"bad tag name {name[:20]!r}")
        if name in tags:
            raise TagListError(f"duplicate tag {name}")
        value = value.strip(" \t\r\n")
        if _BAD_VALUE_CHAR.search(value):
            raise TagListError(f"control character in the value of tag {name}")
        tags[name] = value
    return tags


_B_TAG = re.compile(rb"((?:^|;)[ \t\r\n]*b[ \t\r\n]*=)[^;]*")


def strip_b_value(raw: bytes) -> bytes:
    """The field with the value of its ``b=`` tag emptied (RFC 6376 3.7), the rest kept
    byte for byte. ``raw`` is the whole field; only the part after the colon is searched."""
    colon = raw.index(b":") + 1
    return raw[:colon] + _B_TAG.sub(rb"\1", raw[colon:], count=1)
