"""CREATE (RFC 9051 6.3.4, CREATE-SPECIAL-USE RFC 6154 3).

Missing superior mailboxes are created too ("a/b/c" creates "a" and "a/b"); a trailing
separator is dropped. New mailboxes are not subscribed (RFC 9051 6.3.4 leaves that to
SUBSCRIBE; clients that list with LSUB expect exactly what they subscribed). Refused: INBOX or an existing name (NO [ALREADYEXISTS]), an empty
component (NO [CANNOT]), a USE attribute we do not know (NO [USEATTR]) or one another
mailbox already has (NO [USEATTR]).
"""

from __future__ import annotations

from ..mailboxes import ATTR_ROLES, SEP, MailboxTree, normalize
from ..session import No
from . import acl


async def run(s, cmd):
    if acl.in_other_users(cmd.args.name):   # another account's mailbox (ACL "k")
        if cmd.args.use:
            raise No("Special-use attributes are the owner's to set", "USEATTR")
        return await acl.create_shared(s, cmd.args.name)
    acc = s.account["id"]
    name = normalize(cmd.args.name)
    components = name.split(SEP)
    if not name or any(not c for c in components):
        raise No("Mailbox names cannot have empty components", "CANNOT")
    role = None
    for attr in cmd.args.use:
        role = ATTR_ROLES.get(attr.upper())
        if role is None:
            raise No(f"Unsupported special-use attribute {attr}", "USEATTR")
    if len(cmd.args.use) > 1:
        raise No("Only one special-use attribute per mailbox", "USEATTR")
    tree = MailboxTree(s.store.list_mailboxes(acc))
    if tree.find(name) is not None:
        raise No("Mailbox already exists", "ALREADYEXISTS")
    if role is not None and any(r.get("role") == role for r in tree.by_id.values()):
        raise No(f"Another mailbox already has the {cmd.args.use[0]} attribute", "USEATTR")
    parent = 0
    for i, component in enumerate(components):
        path = SEP.join(components[:i + 1])
        existing = tree.find(path)
        if existing is not None:
            parent = existing["id"]
            continue
        last = i == len(components) - 1
        created = await s.store.create_mailbox(acc, component, parent=parent,
                                               role=role if last else None, subscribed=False)
        parent = created["id"]
    return "CREATE completed"
