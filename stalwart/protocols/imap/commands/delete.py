"""DELETE (RFC 9051 6.3.5): remove a mailbox and the messages only it holds.

Refused for INBOX (NO [CANNOT]), a missing name (NO [NONEXISTENT]) and a mailbox with
children (NO [HASCHILDREN]; this server keeps no \\Noselect placeholders). Deleting the
selected mailbox is allowed; that session then sees every message expunged.
"""

from __future__ import annotations

from ..mailboxes import MailboxTree
from ..session import No
from . import acl


async def run(s, cmd):
    if acl.in_other_users(cmd.args.name):   # another account's mailbox (ACL "x")
        return await acl.delete_shared(s, cmd.args.name)
    acc = s.account["id"]
    tree = MailboxTree(s.store.list_mailboxes(acc))
    record = tree.find(cmd.args.name)
    if record is None:
        raise No("Mailbox does not exist", "NONEXISTENT")
    if tree.path[record["id"]] == "INBOX":
        raise No("INBOX cannot be deleted", "CANNOT")
    if tree.has_children(record["id"]):
        raise No("Mailbox has children; delete them first", "HASCHILDREN")
    await s.store.delete_mailbox(acc, record["id"])
    return "DELETE completed"
