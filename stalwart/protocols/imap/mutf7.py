"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3, kept by RFC 9051 section 5.1.3).

IMAP4rev1 clients that have not enabled UTF8=ACCEPT (RFC 6855) exchange mailbox names in
this encoding; IMAP4rev2 and UTF8=ACCEPT sessions use UTF-8 and never see it.

The rules enforced by ``decode`` (a name breaking any of them is refused, never guessed at):

- Printable US-ASCII (0x20-0x7E) other than "&" stands for itself; "&" is written "&-".
- Every other character is written as "&", the modified BASE64 (RFC 2152 with "," instead
  of "/", no "=" padding) of its UTF-16BE encoding, then "-".
- A shifted run must not encode a character that could have been written directly, must
  not be followed at once by another shifted run (the two must have been one), must end
  with "-", must hold a whole number of UTF-16 units with zero padding bits, and must
  decode to well-formed UTF-16 (no lone surrogates).
- Octets outside 0x20-0x7E are not allowed outside a shifted run.

``encode`` produces the one canonical form, so ``decode(encode(s)) == s`` for every string
and ``encode(decode(b)) == b`` for every valid ``b``.
"""

from __future__ import annotations

import binascii

__all__ = ["encode", "decode", "MUTF7Error"]

_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


class MUTF7Error(ValueError):
    """The octets are not a valid modified UTF-7 mailbox name."""


def _b64_encode(units: bytes) -> str:
    return binascii.b2a_base64(units, newline=False).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """The modified UTF-7 form of ``name`` (only printable ASCII in the result)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append("&" + _b64_encode("".join(run).encode("utf-16-be")) + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def decode(raw: bytes | str) -> str:
    """Decode a modified UTF-7 name; raise ``MUTF7Error`` saying what is wrong."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("ascii")
        except UnicodeEncodeError:
            raise MUTF7Error("mailbox name has 8-bit characters; use modified UTF-7 "
                             "(RFC 3501 5.1.3) or ENABLE UTF8=ACCEPT") from None
    out: list[str] = []
    i, n = 0, len(raw)
    last_shift_end = -1
    while i < n:
        c = raw[i]
        if c != 0x26:  # "&"
            if c >= 0x80:
                raise MUTF7Error("mailbox name has 8-bit characters; use modified UTF-7 "
                                 "(RFC 3501 5.1.3) or ENABLE UTF8=ACCEPT")
            if c < 0x20 or c == 0x7F:
                raise MUTF7Error("mailbox name has a control character")
            out.append(chr(c))
            i += 1
            continue
        end = raw.find(b"-", i + 1)
        if end < 0:
            raise MUTF7Error("modified UTF-7 shift sequence is not terminated by '-'")
        body = raw[i + 1:end]
        if not body:
            out.append("&")
            i = end + 1
            continue
        if last_shift_end == i:
            raise MUTF7Error("adjacent modified UTF-7 shift sequences must be merged")
        if any(b not in _B64 for b in body):
            raise MUTF7Error("invalid character in modified UTF-7 shift sequence")
        if len(body) % 4 == 1:
            raise MUTF7Error("truncated modified UTF-7 shift sequence")
        std = body.replace(b",", b"/") + b"=" * (-len(body) % 4)
        units = binascii.a2b_base64(std)
        if len(units) % 2:
            raise MUTF7Error("modified UTF-7 shift sequence holds a partial UTF-16 unit")
        if _b64_encode(units).encode("ascii") != body:
            raise MUTF7Error("modified UTF-7 shift sequence has non-zero padding bits")
        try:
            text = units.decode("utf-16-be")
        except UnicodeDecodeError:
            raise MUTF7Error("modified UTF-7 shift sequence is not valid UTF-16") from None
        if any(0x20 <= ord(ch) <= 0x7E for ch in text):
            raise MUTF7Error("modified UTF-7 must not encode printable US-ASCII")
        out.append(text)
        i = end + 1
        last_shift_end = i
    return "".join(out)
