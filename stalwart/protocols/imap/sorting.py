"""Sort keys and threading for SORT and THREAD (RFC 5256), with SORT=DISPLAY (RFC 5957).

Sans-IO and store-free: callers hand in ``SortItem`` values (sequence number, UID,
internal date, size and the parsed message) and get orders or thread trees back.

- ``base_subject`` is RFC 5256 section 2.1 word for word: encoded words decoded, runs of
  white space folded to one space, trailing "(fwd)" removed, leading "Re:", "Fw:",
  "Fwd:" (with optional "[blob]" before the colon) and "[blob]" prefixes removed (the
  blob only when something is left), the "[fwd: ...]" wrapper removed, repeated until
  nothing changes. Comparison is case-insensitive (i;unicode-casemap: casefold).
- Sort keys (RFC 5256 section 3): ARRIVAL is the internal date; DATE the Date header in
  UTC, or the internal date when there is none or it cannot be parsed; CC/FROM/TO the
  local part of the first address; SIZE the RFC822.SIZE; SUBJECT the base subject.
  DISPLAYFROM/DISPLAYTO (RFC 5957): the display name of the first address when it has
  one, else its addr-spec. Ties are broken by sequence number, which REVERSE does not
  flip (RFC 5256: equal messages keep mailbox order).
- ORDEREDSUBJECT: messages grouped by base subject, each group sorted by sent date; the
  first is the parent of the others; groups ordered by their first message's date.
- REFERENCES: RFC 5256 section 2.2 steps 1-5 (linking by References / In-Reply-To,
  pruning dummies, grouping roots by base subject), then step 6 orders siblings by sent
  date. Reference cycles are never created (a link that would make one is skipped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_WSP = re.compile(r"\s+")
_TRAILER = re.compile(r"(?:\s|\(fwd\))+\Z", re.I)
_BLOB = r"\[[^\[\]]*\]\s*"
_LEADER = re.compile(rf"\A(?:{_BLOB})*(?:re|fwd?)\s*(?:{_BLOB})?:\s*", re.I)
_BLOB_PREFIX = re.compile(rf"\A{_BLOB}")
_FWD_WRAP = re.compile(r"\A\[fwd:(.*)\]\Z", re.I | re.S)


def base_subject(subject: str | None) -> str:
    """RFC 5256 2.1 base subject, case-folded for comparison."""
    text = _WSP.sub(" ", subject or "").strip()
    while True:
        text = _TRAILER.sub("", text)                              # step 2
        while True:                                                # steps 3 and 4
            before = text
            text = _LEADER.sub("", text, count=1)
            stripped = _BLOB_PREFIX.sub("", text, count=1)
            if stripped:
                text = stripped
            if text == before:
                break
        m = _FWD_WRAP.match(text)                                  # step 5
        if m is None:
            break
        text = m.group(1).strip()
    return text.casefold()


@dataclass
class SortItem:
    seq: int
    uid: int
    received: int
    size: int
    message: Any                   # the native parsed Message (stalwart._native)

    @property
    def sent(self) -> int:
        date = self.message.date
        return date if date is not None else self.received


def _first(addresses) -> tuple[str | None, str | None]:
    return addresses[0] if addresses else (None, None)


def _mailbox(addresses) -> str:
    _, addr = _first(addresses)
    return (addr or "").split("@", 1)[0].casefold()


def _display(addresses) -> str:
    name, addr = _first(addresses)
    return (name.strip() if name and name.strip() else addr or "").casefold()


def sort_key(item: SortItem, key: str):
    m = item.message
    if key == "ARRIVAL":
        return item.received
    if key == "DATE":
        return item.sent
    if key == "SIZE":
        return item.size
    if key == "SUBJECT":
        return base_subject(m.subject)
    if key == "FROM":
        return _mailbox(m.from_)
    if key == "TO":
        return _mailbox(m.to)
    if key == "CC":
        return _mailbox(m.cc)
    if key == "DISPLAYFROM":
        return _display(m.from_)
    if key == "DISPLAYTO":
        return _display(m.to)
    raise ValueError(f"unknown sort key {key}")


class _Desc:
    """Wraps a key so that it sorts in descending order inside a tuple."""

    __slots__ = ("v",)

    def __init__(self, v) -> None:
        self.v = v

    def __lt__(self, other: "_Desc") -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.v == other.v


def sort_items(items: list[SortItem], criteria) -> list[SortItem]:
    """``items`` ordered by ``criteria`` ((reverse, key) pairs), ties by sequence."""
    def composite(item: SortItem):
        parts = [(_Desc(sort_key(item, k)) if rev else sort_key(item, k)) for rev, k in criteria]
        return (*parts, item.seq)
    return sorted(items, key=composite)


# ------------------------------------------------------------------ threads

@dataclass(eq=False)
class Node:
    """A thread tree node; ``item`` is None for a dummy (a referenced, absent message)."""
    item: SortItem | None = None
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)

    def date(self) -> int:
        """Sent date of the message, or of its first child for a dummy (RFC 5256 2.2 6)."""
        if self.item is not None:
            return self.item.sent
        return min((c.date() for c in self.children), default=0)

    def seq(self) -> int:
        if self.item is not None:
            return self.item.seq
        return min((c.seq() for c in self.children), default=0)

    def is_ancestor_of(self, other: "Node") -> bool:
        n = other
        while n is not None:
            if n is self:
                return True
            n = n.parent
        return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _unlink(child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def _ordered(nodes: list[Node]) -> list[Node]:
    return sorted(nodes, key=lambda n: (n.date(), n.seq()))


def _msgid(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().strip("<>").strip()
    return value or None


def thread_orderedsubject(items: list[SortItem]) -> list[Node]:
    groups: dict[str, list[SortItem]] = {}
    for item in items:
        groups.setdefault(base_subject(item.message.subject), []).append(item)
    roots = []
    for members in groups.values():
        members.sort(key=lambda i: (i.sent, i.seq))
        root = Node(members[0])
        for other in members[1:]:
            _link(root, Node(other))
        roots.append(root)
    return _ordered(roots)


def thread_references(items: list[SortItem]) -> list[Node]:
    table: dict[str, Node] = {}
    nodes: list[Node] = []
    # Step 1: one container per Message-ID; link the References chain.
    for item in sorted(items, key=lambda i: i.seq):
        m = item.message
        mid = _msgid(m.message_id)
        node = table.get(mid) if mid else None
        if node is None or node.item is not None:
            node = Node(item)        # duplicate or missing Message-ID: a unique container
            if mid and mid not in table:
                table[mid] = node
        else:
            node.item = item
        nodes.append(node)
        refs = [r for r in (_msgid(x) for x in m.references) if r]
        if not refs:
            refs = [r for r in (_msgid(x) for x in m.in_reply_to) if r][:1]
        previous: Node | None = None
        for ref in refs:
            ref_node = table.get(ref)
            if ref_node is None:
                ref_node = table[ref] = Node()
            if previous is not None and ref_node.parent is None and \
                    ref_node is not previous and not ref_node.is_ancestor_of(previous):
                _link(previous, ref_node)
            previous = ref_node
        # The last reference is this message's parent (replacing any earlier guess).
        if previous is not None and previous is not node and not node.is_ancestor_of(previous):
            _link(previous, node)
        elif refs:
            _unlink(node)
    # Step 2: the root set.
    everything = set(table.values()) | set(nodes)
    roots = [n for n in everything if n.parent is None]
    # Step 3 is implicit (the table is dropped). Step 4: prune dummies.
    roots = _prune(roots)
    # Step 5: group roots by base subject.
    roots = _group_by_subject(roots)
    # Step 6: order siblings.
    _order_tree(roots)
    return _ordered(roots)


def _prune(siblings: list[Node]) -> list[Node]:
    out: list[Node] = []
    for node in siblings:
        node.children = _prune(node.children)
        for c in node.children:
            c.parent = node
        if node.item is None:
            if not node.children:
                continue                                   # 4.A: empty dummy goes
            if node.parent is not None or len(node.children) == 1:
                for c in node.children:                    # 4.B: promote the children
                    c.parent = node.parent
                out.extend(node.children)
                continue
        out.append(node)
    return out


def _group_by_subject(roots: list[Node]) -> list[Node]:
    subjects: dict[str, Node] = {}

    def subject_of(n: Node) -> tuple[str, bool]:
        item = n.item or min((c.item for c in n.children if c.item is not None),
                             key=lambda i: i.seq, default=None)
        raw = item.message.subject if item is not None else None
        base = base_subject(raw)
        is_reply = bool(raw) and base != _WSP.sub(" ", raw).strip().casefold()
        return base, is_reply

    for root in _ordered(roots):
        base, _ = subject_of(root)
        if not base:
            continue
        seen = subjects.get(base)
        if seen is None or (seen.item is not None and root.item is None) or \
                (seen.item is not None and root.item is not None and
                 subject_of(seen)[1] and not subject_of(root)[1]):
            subjects[base] = root
    out: list[Node] = []
    for root in _ordered(roots):
        if root.parent is not None:
            continue                     # already placed under a newer dummy
        base, reply = subject_of(root)
        keep = subjects.get(base) if base else None
        if keep is None or keep is root:
            out.append(root)
            continue
        if keep.item is None and root.item is None:
            for c in list(root.children):
                _link(keep, c)
        elif keep.item is None:
            _link(keep, root)
        elif root.item is not None and reply and not subject_of(keep)[1]:
            _link(keep, root)
        else:
            dummy = Node()
            parent_index = out.index(keep) if keep in out else None
            _link(dummy, keep)
            _link(dummy, root)
            subjects[base] = dummy
            if parent_index is not None:
                out[parent_index] = dummy
            else:
                out.append(dummy)
    for n in out:
        n.parent = None
    return out


def _order_tree(nodes: list[Node]) -> None:
    for n in nodes:
        n.children = _ordered(n.children)
        _order_tree(n.children)


def format_threads(roots: list[Node], number) -> str:
    """The THREAD response data: ``(1 2)(3 (4)(5))``; ``number(item)`` gives the seq or
    UID. A node with one child continues the same list; several children each get one."""
    def chain(node: Node) -> str:
        parts: list[str] = []
        n = node
        while True:
            if n.item is not None:
                parts.append(str(number(n.item)))
            if len(n.children) == 1:
                n = n.children[0]
                continue
            if n.children:
                parts.append("".join(f"({chain(c)})" for c in n.children))
            break
        return " ".join(parts)
    return "".join(f"({chain(r)})" for r in roots)
