"""The account's mailbox tree as IMAP names it: full names with "/" and the INBOX rules.

The store keeps mailboxes as (name, parent id) records. IMAP sees full hierarchical names
joined with the separator "/" (RFC 9051 section 5.1). The inbox (role "inbox", or the
top-level mailbox named "INBOX" in any case) is always called "INBOX", and "INBOX" is
case-insensitive also as the first component of a longer name (what Dovecot and most
clients expect). Roles map to the special-use attributes of RFC 6154.
"""

from __future__ import annotations

import re

SEP = "/"
ROLE_ATTRS = {"sent": "\\Sent", "drafts": "\\Drafts", "junk": "\\Junk", "trash": "\\Trash",
              "archive": "\\Archive", "all": "\\All", "flagged": "\\Flagged",
              "important": "\\Important"}
ATTR_ROLES = {v.upper(): k for k, v in ROLE_ATTRS.items()}


def normalize(name: str) -> str:
    """Canonical spelling of a client-given name: the INBOX prefix in upper case, no
    trailing separator."""
    if name.upper() == "INBOX" or name[:6].upper() == "INBOX" + SEP:
        name = "INBOX" + name[5:]
    return name.rstrip(SEP) if name != SEP else name


class MailboxTree:
    """A snapshot of ``store.list_mailboxes(account)`` indexed by id and by full name."""

    def __init__(self, records: list[dict]) -> None:
        self.by_id = {r["id"]: r for r in records}
        self.path: dict[int, str] = {}
        for r in records:
            self.path[r["id"]] = self._path(r["id"])
        self.by_path = {p: self.by_id[i] for i, p in self.path.items()}
        self.children: dict[int, list[int]] = {}
        for r in records:
            self.children.setdefault(r["parent"], []).append(r["id"])

    def _path(self, mid: int) -> str:
        parts: list[str] = []
        seen: set[int] = set()
        while mid and mid in self.by_id and mid not in seen:
            seen.add(mid)
            r = self.by_id[mid]
            is_inbox = r["parent"] == 0 and (r.get("role") == "inbox" or r["name"].upper() == "INBOX")
            parts.append("INBOX" if is_inbox else r["name"])
            mid = r["parent"]
        return SEP.join(reversed(parts))

    def find(self, name: str) -> dict | None:
        return self.by_path.get(normalize(name))

    def inbox(self) -> dict | None:
        return self.by_path.get("INBOX")

    def has_children(self, mid: int) -> bool:
        return bool(self.children.get(mid))

    def descendants(self, mid: int) -> list[int]:
        out, todo = [], list(self.children.get(mid, ()))
        while todo:
            m = todo.pop()
            out.append(m)
            todo.extend(self.children.get(m, ()))
        return out

    def sorted_paths(self) -> list[tuple[str, dict]]:
        return sorted(self.by_path.items(), key=lambda item: (item[0] != "INBOX", item[0]))


def pattern_regex(pattern: str) -> re.Pattern:
    """RFC 9051 6.3.9: "*" matches anything, "%" anything but the separator."""
    pattern = normalize(pattern) if pattern.upper().startswith("INBOX") else pattern
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(SEP)}]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.S)
