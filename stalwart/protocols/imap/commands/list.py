"""LIST (RFC 9051 6.3.9) with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
SPECIAL-USE (RFC 6154) and CHILDREN (RFC 3348).

- ``LIST ref ""`` answers the hierarchy delimiter: ``* LIST (\\Noselect) "/" ""``.
- The pattern is the reference followed by the pattern; "*" and "%" are the wildcards.
- Attributes: \\HasChildren or \\HasNoChildren always (RFC 9051 requires them), the
  special-use attribute of the mailbox's role always, \\Subscribed when the SUBSCRIBED
  selection or return option asks for it.
- Selection SUBSCRIBED lists subscribed mailboxes; with RECURSIVEMATCH, a mailbox that is
  not itself selected but has a selected descendant is listed with CHILDINFO
  ("SUBSCRIBED"). Selection SPECIAL-USE lists mailboxes with a special use. REMOTE is
  accepted and changes nothing (no remote mailboxes here).
- RETURN (STATUS (...)) sends a STATUS line after each selectable mailbox's LIST line.
- RETURN (MYRIGHTS) (RFC 8440) sends the MYRIGHTS line of each mailbox after its LIST
  line. Mailboxes other accounts share (ACL) follow under "Other Users/" (acl.py).
"""

from __future__ import annotations

from ..mailboxes import ROLE_ATTRS, SEP, MailboxTree, pattern_regex
from .status import status_items
from . import acl


async def run(s, cmd):
    args = cmd.args
    tree = MailboxTree(s.store.list_mailboxes(s.account["id"]))
    if not args.extended and args.patterns == ("",):
        s.untagged(f'LIST (\\Noselect) "{SEP}" ""')
        return "LIST completed"
    regexes = [pattern_regex(args.reference + p) for p in args.patterns if p != ""]
    selected_sub = "SUBSCRIBED" in args.select
    special_only = "SPECIAL-USE" in args.select
    recursive = "RECURSIVEMATCH" in args.select
    show_sub = selected_sub or "SUBSCRIBED" in args.returns

    def selected(record: dict) -> bool:
        if selected_sub and not record.get("subscribed"):
            return False
        if special_only and record.get("role") not in ROLE_ATTRS:
            return False
        return True

    for path, record in tree.sorted_paths():
        if not any(r.match(path) for r in regexes):
            continue
        childinfo = False
        if not selected(record):
            if not (recursive and any(selected(tree.by_id[d])
                                      for d in tree.descendants(record["id"]))):
                continue
            childinfo = True
        attrs = ["\\HasChildren" if tree.has_children(record["id"]) else "\\HasNoChildren"]
        if show_sub and record.get("subscribed"):
            attrs.append("\\Subscribed")
        role_attr = ROLE_ATTRS.get(record.get("role") or "")
        if role_attr:
            attrs.append(role_attr)
        line = f'LIST ({" ".join(attrs)}) "{SEP}" '.encode() + s.mailbox_name(path)
        if childinfo:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        s.untagged(line)
        if args.status:
            s.untagged(b"STATUS " + s.mailbox_name(path) + b" (" +
                       status_items(s, record, args.status).encode() + b")")
        if "MYRIGHTS" in args.returns:   # RFC 8440: the owner has every right
            s.untagged(b"MYRIGHTS " + s.mailbox_name(path) + b" " + acl.RIGHTS_ORDER.encode())
    if not selected_sub and not special_only:
        _list_shared(s, args, regexes)
    return "LIST completed"


def _list_shared(s, args, regexes) -> None:
    """Other accounts' mailboxes this account may see (ACL "l"), under "Other Users/",
    with the \\Noselect levels above them; none is subscribed or special-use here."""
    shared = acl.shared_mailboxes(s)
    paths = [p for p, _ in shared]
    for level in acl.other_users_levels(paths):
        if any(r.match(level) for r in regexes):
            s.untagged(f'LIST (\\Noselect \\HasChildren) "{SEP}" '.encode() +
                       s.mailbox_name(level))
    for path, target in shared:
        if not any(r.match(path) for r in regexes):
            continue
        children = any(p.startswith(path + SEP) for p in paths)
        attrs = "\\HasChildren" if children else "\\HasNoChildren"
        s.untagged(f'LIST ({attrs}) "{SEP}" '.encode() + s.mailbox_name(path))
        if args.status and "r" in target.rights:
            s.untagged(b"STATUS " + s.mailbox_name(path) + b" (" +
                       status_items(s, target.record, args.status,
                                    owner=target.owner).encode() + b")")
        if "MYRIGHTS" in args.returns:
            s.untagged(b"MYRIGHTS " + s.mailbox_name(path) + b" " + target.rights.encode())
