"""IMAP flags <-> the store's JMAP keywords (RFC 8621 section 4.1.1 mapping).

The store keeps keywords in JMAP form, lower case. IMAP system flags map to the JMAP
"$" keywords; other keywords are the same words (IMAP keywords are case-insensitive,
RFC 9051 section 2.3.2, so lower case loses nothing). On the way out the well-known
keywords get their registered spelling back ("$Forwarded", RFC 5788 registry).
"""

from __future__ import annotations

from typing import Iterable

SYSTEM = {"\\Seen": "$seen", "\\Answered": "$answered", "\\Flagged": "$flagged",
          "\\Draft": "$draft", "\\Deleted": "$deleted"}
_TO_IMAP = {v: k for k, v in SYSTEM.items()}
_WELL_KNOWN = {k.lower(): k for k in ("$Forwarded", "$MDNSent", "$Junk", "$NotJunk",
                                      "$Phishing", "$Important", "$SubmitPending",
                                      "$Submitted")}
#: Flags every mailbox accepts (PERMANENTFLAGS adds \* : new keywords may be created).
BASE_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def to_keyword(flag: str) -> str:
    system = SYSTEM.get(flag)
    return system if system is not None else flag.lower()


def to_keywords(flags: Iterable[str]) -> list[str]:
    return sorted({to_keyword(f) for f in flags if f != "\\Recent"})


def to_flag(keyword: str) -> str:
    return _TO_IMAP.get(keyword) or _WELL_KNOWN.get(keyword, keyword)


def to_flags(keywords: Iterable[str]) -> list[str]:
    return [to_flag(k) for k in sorted(keywords)]
