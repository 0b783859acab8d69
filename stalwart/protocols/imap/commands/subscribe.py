"""SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8): the mailbox's subscribed flag.

Only existing mailboxes can be subscribed here (the store keeps the flag on the mailbox);
UNSUBSCRIBE of a name that is not a mailbox is answered NO [NONEXISTENT].
"""

from __future__ import annotations

from ..mailboxes import MailboxTree
from ..session import No
from . import acl


async def run(s, cmd):
    if acl.in_other_users(cmd.args.name):
        # The subscribed flag lives on the mailbox record, which is the owner's.
        raise No("Subscriptions to other users' mailboxes are not kept", "CANNOT")
    acc = s.account["id"]
    record = MailboxTree(s.store.list_mailboxes(acc)).find(cmd.args.name)
    if record is None:
        raise No("Mailbox does not exist", "NONEXISTENT")
    want = cmd.name == "SUBSCRIBE"
    if record.get("subscribed") != want:
        await s.store.update_mailbox(acc, record["id"], subscribed=want)
    return f"{cmd.name} completed"
