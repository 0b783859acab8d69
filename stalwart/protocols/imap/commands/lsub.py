"""LSUB (RFC 3501 6.3.9, IMAP4rev1 only; IMAP4rev2 clients use LIST (SUBSCRIBED)).

Lists subscribed mailboxes matching the pattern. When "%" stops at a level whose mailbox
is not subscribed but has subscribed children, that name is listed with \\Noselect, as
RFC 3501 describes.
"""

from __future__ import annotations

from ..mailboxes import SEP, MailboxTree, pattern_regex


async def run(s, cmd):
    tree = MailboxTree(s.store.list_mailboxes(s.account["id"]))
    regex = pattern_regex(cmd.args.reference + cmd.args.pattern)
    for path, record in tree.sorted_paths():
        if not regex.match(path):
            continue
        if record.get("subscribed"):
            s.untagged(f'LSUB () "{SEP}" '.encode() + s.mailbox_name(path))
        elif any(tree.by_id[d].get("subscribed") for d in tree.descendants(record["id"])) \
                and "%" in cmd.args.pattern:
            s.untagged(f'LSUB (\\Noselect) "{SEP}" '.encode() + s.mailbox_name(path))
    return "LSUB completed"
