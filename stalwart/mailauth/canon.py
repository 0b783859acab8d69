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
    runs, and an empty body stays empty. A line end is exactly CRLF: a bare CR or LF is
    an ordinary byte.

Signing input
    ``header_data(raws, canon, sig_raw)`` is what a signature signs of the header (RFC
    6376 5.4.2): the selected fields canonicalized, then the signature field with ``b=``
    emptied, canonicalized, without its final CRLF. ``body_hash(body, method, length)``
    -> ``(sha256 digest, canonical length)``: the digest covers the first ``length``
    canonical octets (``l=``; all when None), the length is the whole canonical body's.
    ``BodyHasher(method, length)`` is the same fed in chunks (``update``/``finish``).

Native and reference (issue 5 point 3)
    Splitting, header and body canonicalization and the body hash run in Rust
    (``ext/src/dkim.rs``, through ``stalwart._native``): the canonical body is streamed
    into SHA-256 there and never built in Python. The ``*_py`` functions below are the
    reference implementation, kept for the differential tests
    (``tests/unit/test_canon_native.py``: byte-identical results on a corpus and on edge
    cases) and as the fallback when the extension lacks the DKIM functions.
    ``use_native(False)`` switches the public functions to the reference (benchmarks).

Tag lists (RFC 6376 3.2)
    ``parse_tags(text)`` -> ``{name: value}`` with FWS around names and values removed;
    ``TagListError`` for an empty tag-spec (other than after a final ``;``), a tag without
    ``=``, a bad tag name, a duplicate tag or a control character in a value. Tag names
    are case-sensitive. Values may contain UTF-8 (RFC 8616).
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, NamedTuple

try:
    from stalwart import _native as _native_module
except ImportError:                      # the extension is not built: reference only
    _native_module = None

__all__ = ["Field", "TagListError", "split_message", "relaxed_header", "simple_header",
           "canonical_body", "parse_tags", "strip_fws", "strip_b_value", "header_data",
           "body_hash", "BodyHasher", "use_native", "NATIVE"]


class Field(NamedTuple):
    lname: bytes          # field name, lower case, trailing WSP removed
    raw: bytes            # the whole field: "Name: value\r\n" with its folding


class TagListError(ValueError):
    """A tag=value list that does not follow RFC 6376 3.2."""


_BARE_LF = re.compile(rb"(?<!\r)\n")
_WSP_RUN = re.compile(rb"[ \t]+")
_FIELD_SPLIT = re.compile(rb"\r\n(?![ \t])")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f;]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize_line_ends(message: bytes) -> bytes:
    if message.count(b"\n") != message.count(b"\r\n"):
        return _BARE_LF.sub(b"\r\n", message)
    return message


def split_message_py(message: bytes) -> tuple[list[Field], bytes]:
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


def relaxed_header_py(raw: bytes) -> bytes:
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


def canonical_body_py(body: bytes, method: str) -> bytes:
    """RFC 6376 3.4.3 (simple) and 3.4.4 (relaxed)."""
    if method == "relaxed":
        if b"\t" in body or b" " in body:
            body = _WSP_RUN.sub(b" ", body).replace(b" \r\n", b"\r\n").rstrip(b" ")
        body = _strip_trailing_crlfs(body)
        return body + b"\r\n" if body else b""
    body = _strip_trailing_crlfs(body)
    return body + b"\r\n"


_FWS_DELETE = str.maketrans("", "", " \t\r\n")


def strip_fws(value: str) -> str:
    """A tag value with every folding white space removed (b=, bh=, p=)."""
    return value.translate(_FWS_DELETE)


#: Tag names of DKIM, ARC and key records: valid without the regular expression.
_KNOWN_TAGS = frozenset(("v", "a", "b", "bh", "c", "d", "h", "i", "l", "q", "s", "t", "x",
                         "z", "k", "p", "n", "g", "cv"))


def parse_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    parts = text.split(";")
    last = len(parts) - 1
    # Values never hold ";" (the split removed them): without a control character in
    # the whole text no value can fail the check, so it is skipped.
    check_values = _CONTROL.search(text) is not None
    for index, part in enumerate(parts):
        name, eq, value = part.partition("=")
        name = name.strip(" \t\r\n")
        if not eq:
            if not name:                 # an empty tag-spec
                if index == last:
                    continue
                raise TagListError("empty tag in tag list")
            raise TagListError(f"tag {name[:20]!r} has no '='")
        if name not in _KNOWN_TAGS and not _TAG_NAME.match(name):
            raise TagListError(f"bad tag name {name[:20]!r}")
        if name in tags:
            raise TagListError(f"duplicate tag {name}")
        value = value.strip(" \t\r\n")
        if check_values and _BAD_VALUE_CHAR.search(value):
            raise TagListError(f"control character in the value of tag {name}")
        tags[name] = value
    return tags


_B_TAG = re.compile(rb"((?:^|;)[ \t\r\n]*b[ \t\r\n]*=)[^;]*")


def strip_b_value_py(raw: bytes) -> bytes:
    """The field with the value of its ``b=`` tag emptied (RFC 6376 3.7), the rest kept
    byte for byte. ``raw`` is the whole field; only the part after the colon is searched."""
    colon = raw.index(b":") + 1
    return raw[:colon] + _B_TAG.sub(rb"\1", raw[colon:], count=1)


def header_data_py(raws: Iterable[bytes], canon: str, sig_raw: bytes) -> bytes:
    """RFC 6376 5.4.2: the fields ``raws`` canonicalized, then the signature field with
    an empty b= and no final CRLF (reference)."""
    fn = relaxed_header_py if canon == "relaxed" else simple_header
    out = [fn(raw) for raw in raws]
    sig = fn(strip_b_value_py(sig_raw))
    if sig.endswith(b"\r\n"):
        sig = sig[:-2]
    out.append(sig)
    return b"".join(out)


def body_hash_py(body: bytes, method: str, length: int | None = None) -> tuple[bytes, int]:
    """(SHA-256 of the first ``length`` canonical octets, canonical length) (reference)."""
    canon = canonical_body_py(body, method)
    return hashlib.sha256(canon if length is None else canon[:length]).digest(), len(canon)


# --------------------------------------------------------------------------- dispatch

_U64_MAX = 2**64 - 1
_DKIM_NATIVE = ("dkim_split", "dkim_relaxed_header", "dkim_strip_b_value", "dkim_header_data",
                "dkim_body_hash", "dkim_canonical_body", "DkimBodyHasher")

#: The Rust functions are available (an extension built before them lacks them).
NATIVE = _native_module is not None and all(hasattr(_native_module, n) for n in _DKIM_NATIVE)
_native = _native_module if NATIVE else None


def use_native(enabled: bool) -> bool:
    """Route the public functions to Rust (when built) or to the Python reference;
    returns whether the native path is now in use."""
    global _native
    _native = _native_module if enabled and NATIVE else None
    return _native is not None


def _limit(length: int | None) -> int | None:
    if length is None:
        return None
    if length < 0:
        raise ValueError("body length limit must not be negative")
    return min(length, _U64_MAX)         # l= may have 76 digits; no body is that long


def split_message(message: bytes) -> tuple[list[Field], bytes]:
    """The header fields in order and the body (see the module notes)."""
    if _native is None:
        return split_message_py(message)
    return _native.dkim_split(message if type(message) is bytes else bytes(message), Field)


def relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 3.4.2 for one whole field (``raw`` may or may not end in CRLF)."""
    if _native is None:
        return relaxed_header_py(raw)
    return _native.dkim_relaxed_header(raw if type(raw) is bytes else bytes(raw))


def strip_b_value(raw: bytes) -> bytes:
    """The field with the value of its ``b=`` tag emptied (RFC 6376 3.7), the rest kept
    byte for byte; ``ValueError`` for a field without a colon."""
    if _native is None:
        return strip_b_value_py(raw)
    return _native.dkim_strip_b_value(raw if type(raw) is bytes else bytes(raw))


def canonical_body(body: bytes, method: str) -> bytes:
    """RFC 6376 3.4.3 (simple) and 3.4.4 (relaxed): the canonical body itself. Signing
    and verifying use ``body_hash``, which never builds it."""
    if _native is None:
        return canonical_body_py(body, method)
    return _native.dkim_canonical_body(body if type(body) is bytes else bytes(body),
                                       method == "relaxed")


def header_data(raws: Iterable[bytes], canon: str, sig_raw: bytes) -> bytes:
    """What a signature signs of the header (see the module notes)."""
    if _native is None:
        return header_data_py(raws, canon, sig_raw)
    return _native.dkim_header_data(raws, canon == "relaxed", sig_raw)


def body_hash(body: bytes, method: str, length: int | None = None) -> tuple[bytes, int]:
    """(SHA-256 of the first ``length`` canonical body octets, canonical body length)."""
    if _native is None:
        return body_hash_py(body, method, length)
    return _native.dkim_body_hash(body if type(body) is bytes else bytes(body),
                                  method == "relaxed", _limit(length))


class BodyHasher:
    """``body_hash`` fed in chunks: ``update(chunk)`` any number of times, then
    ``finish()`` -> (digest, canonical length), once. Chunks may split the body anywhere
    (inside a CRLF, a WSP run)."""

    __slots__ = ("_method", "_length", "_native", "_chunks", "_done")

    def __init__(self, method: str, length: int | None = None) -> None:
        self._method, self._length = method, length
        self._native = (_native.DkimBodyHasher(method == "relaxed", _limit(length))
                        if _native is not None else None)
        self._chunks: list[bytes] = []
        self._done = False

    def update(self, data: bytes) -> None:
        if self._done:
            raise ValueError("hasher already finished")
        if self._native is not None:
            self._native.update(data if type(data) is bytes else bytes(data))
        else:
            self._chunks.append(bytes(data))

    def finish(self) -> tuple[bytes, int]:
        if self._done:
            raise ValueError("hasher already finished")
        self._done = True
        if self._native is not None:
            return self._native.finish()
        return body_hash_py(b"".join(self._chunks), self._method, self._length)
