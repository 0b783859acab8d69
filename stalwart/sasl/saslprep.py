"""SASLprep (RFC 4013): the stringprep profile SCRAM applies to user names and passwords.

Steps (RFC 4013 2, RFC 3454):
1. Map: non-ASCII spaces (C.1.2) become U+0020; "commonly mapped to nothing" (B.1) goes.
2. Normalize with NFKC.
3. Prohibit: non-ASCII spaces and controls, private use, non-characters, surrogates,
   inappropriate for plain text / canonical representation, change-display and tagging
   characters (C.1.2, C.2.1, C.2.2, C.3-C.9).
4. Bidi (RFC 3454 6): a string with RandALCat characters must not contain LCat ones and
   must start and end with RandALCat.
5. Unassigned code points (A.1) are allowed for queries and refused for stored strings
   (RFC 4013 2.5): ``allow_unassigned`` picks which.

Raises ``ValueError`` for a prohibited string; never anything else.
"""

from __future__ import annotations

import stringprep
import unicodedata

_PROHIBITED = (
    stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
    stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
    stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    if text.isascii() and all(0x20 <= ord(ch) < 0x7F for ch in text):
        return text                     # fast path: printable ASCII is unchanged
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in text if not stringprep.in_table_b1(ch))
    normal = unicodedata.normalize("NFKC", mapped)
    if not normal:
        return normal
    for ch in normal:
        if any(check(ch) for check in _PROHIBITED):
            raise ValueError(f"prohibited character U+{ord(ch):04X}")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError(f"unassigned code point U+{ord(ch):04X}")
    rand_al = [stringprep.in_table_d1(ch) for ch in normal]
    if any(rand_al):
        if any(stringprep.in_table_d2(ch) for ch in normal):
            raise ValueError("mixed right-to-left and left-to-right text")
        if not (rand_al[0] and rand_al[-1]):
            raise ValueError("right-to-left text must start and end with an RTL character")
    return normal
