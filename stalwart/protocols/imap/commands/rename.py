"""RENAME (RFC 9051 6.3.6): a new name, and with it a new place in the hierarchy.

Superiors of the new name are created when missing. Renaming INBOX moves its messages to
a new mailbox of that name and leaves INBOX empty, as the RFC requires. Refused: a missing
source (NO [NONEXISTENT]), an existing target (NO [ALREADYEXISTS]), a target below the
source (NO [CANNOT]).
"""

from __future__ import annotations

from ..mailboxes import SEP, MailboxTree, normalize
from ..session import No
from . import acl


async def run(s, cmd):
    if acl.in_other_users(cmd.args.old) or acl.in_other_users(cmd.args.new):
        raise No("Mailboxes of other users cannot be renamed here", "CANNOT")
    acc = s.account["id"]
    tree = MailboxTree(s.store.list_mailboxes(acc))
    source = tree.find(cmd.args.old)
    if source is None:
        raise No("Mailbox does not exist", "NONEXISTENT")
    new = normalize(cmd.args.new)
    components = new.split(SEP)
    if not new or any(not c for c in components):
        raise No("Mailbox names cannot have empty components", "CANNOT")
    if tree.find(new) is not None:
        raise No("Target mailbox already exists", "ALREADYEXISTS")
    old_path = tree.path[source["id"]]
    if new.startswith(old_path + SEP):
        raise No("A mailbox cannot be moved below itself", "CANNOT")
    parent = 0
    for i, component in enumerate(components[:-1]):
        existing = tree.find(SEP.join(components[:i + 1]))
        if existing is None:
            existing = await s.store.create_mailbox(acc, component, parent=parent,
                                                    subscribed=False)
        parent = existing["id"]
    if old_path == "INBOX":
        target = await s.store.create_mailbox(acc, components[-1], parent=parent)
        ids = [eid for _, eid in s.store.mailbox_uids(acc, source["id"])]
        if ids:
            await s.store.move(acc, ids, source["id"], target["id"])
    else:
        await s.store.update_mailbox(acc, source["id"], name=components[-1], parent=parent)
    return "RENAME completed"
