"""Encoding of IMAP response data (RFC 9051 section 9 ``response`` grammar).

Every function returns ``bytes`` ready to be joined into a response line. Choice of string
form (RFC 9051 section 4.3):

- an atom when the value is a non-empty run of ASTRING-CHARs and is not "NIL" (only where
  the grammar allows an astring: mailbox names, flags);
- a quoted string when it fits on the line: no CR, LF or NUL, at most ``QUOTED_MAX``
  octets, and 8-bit only when the session speaks UTF-8 (IMAP4rev2 / UTF8=ACCEPT);
- a literal otherwise (``{n}`` then the octets); ``literal8`` (``~{n}``, RFC 3516) when the
  data holds NUL, which only BINARY may return.

Header text decoded to Unicode (display names, file names) goes back to IMAP4rev1 clients
as RFC 2047 encoded words, since their grammar has no place for raw 8-bit text.
"""

from __future__ import annotations

import time
from email.header import Header
from typing import Iterable

from . import mutf7
from .grammar_ref import ASTRING_CHARS

QUOTED_MAX = 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def literal(data: bytes) -> bytes:
    if b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data


def string(value: str | bytes, utf8: bool = True) -> bytes:
    """A quoted string or a literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= QUOTED_MAX and not any(c in data for c in b"\r\n\x00") and \
            (utf8 or data.isascii()):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def nstring(value: str | bytes | None, utf8: bool = True) -> bytes:
    return b"NIL" if value is None else string(value, utf8)


def astring(value: str | bytes, utf8: bool = True) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    if data and data.upper() != b"NIL" and all(c in ASTRING_CHARS for c in data):
        return data
    return string(data, utf8)


def text(value: str | None, utf8: bool) -> bytes:
    """Decoded header text (a display name, a file name) as an nstring."""
    if value is None:
        return b"NIL"
    if not utf8 and not value.isascii():
        value = Header(value, "utf-8").encode(maxlinelen=10000)
    return string(value, utf8)


def mailbox(name: str, utf8: bool) -> bytes:
    """A mailbox name: UTF-8 for IMAP4rev2/UTF8=ACCEPT sessions, else modified UTF-7."""
    return astring(name if utf8 else mutf7.encode(name), utf8)


def number_set(numbers: Iterable[int]) -> str:
    """Numbers as a compact sequence set ("1:3,7,9:10"); empty string for none."""
    out: list[str] = []
    start = prev = None
    for n in sorted(set(numbers)):
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


def internal_date(timestamp: int) -> bytes:
    """INTERNALDATE as "dd-Mon-yyyy hh:mm:ss +0000" (quoted; always in UTC)."""
    t = time.gmtime(timestamp)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday, _MONTHS[t.tm_mon - 1].encode(), t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(f.encode() for f in flags) + b")"


def param_list(params: list[tuple[str, str]], utf8: bool) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(string(k.upper(), utf8) + b" " + text(v, utf8)
                            for k, v in params) + b")"
