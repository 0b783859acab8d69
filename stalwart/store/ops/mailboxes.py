"""Operations on mailboxes: create, rename/move, subscribe, ACLs, delete."""

from __future__ import annotations

from typing import Any

from .. import keys
from ..errors import StoreError
from ..engine import MAILBOX, ROLES, OpCtx, _int, _mailbox_name, _require, operation
from .common import _load_mailbox, _mailboxes
from .messages import _remove_from_mailbox


def _name_clash(other: dict, parent: int, name: str) -> bool:
    """Sibling names are unique; at the top level "INBOX" matches in any case (RFC 9051)."""
    if other["parent"] != parent:
        return False
    if other["name"] == name:
        return True
    return parent == 0 and name.lower() == "inbox" and other["name"].lower() == "inbox"


def _new_mailbox(c: OpCtx, acc: int, name: str, parent: int, role: str | None,
                 subscribed: bool) -> dict:
    state = c.account_state(acc)
    for mid, other in _mailboxes(c, acc):
        if _name_clash(other, parent, name):
            raise StoreError("exists", f"a mailbox named {name!r} already exists there")
        if role is not None and other.get("role") == role:
            raise StoreError("exists", f"mailbox {other['name']!r} already has role {role!r}")
    mbox = state["next_mailbox"]
    _require(mbox < 2**32, "mailbox ids exhausted")
    state["next_mailbox"] = mbox + 1
    change = c.change_id(acc)
    record = {"name": name, "parent": parent, "role": role, "subscribed": subscribed,
              "uidvalidity": c.meta_counter("uidvalidity", c.now & 0x7FFFFFFF or 1),
              "uidnext": 1, "hms": change, "total": 0, "unseen": 0, "size": 0,
              "acl": {}, "sort": 0}
    c.store(keys.mailbox(acc, mbox), record)
    c.changed(acc, MAILBOX, "created", mbox)
    return {"id": mbox, **record}


@operation
def create_mailbox(c: OpCtx, account: Any, name: Any, parent: Any = 0, role: Any = None,
                   subscribed: Any = True) -> dict:
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    name = _mailbox_name(name)
    parent = _int(parent, "parent", maximum=2**32 - 1)
    if parent:
        _load_mailbox(c, acc, parent)
    if role is not None:
        _require(role in ROLES, f"unknown mailbox role {role!r}")
    _require(isinstance(subscribed, bool), "subscribed must be true or false")
    return _new_mailbox(c, acc, name, parent, role, subscribed)


@operation
def update_mailbox(c: OpCtx, account: Any, mailbox: Any, **changes: Any) -> dict:
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    record = _load_mailbox(c, acc, mailbox)
    unknown = set(changes) - {"name", "parent", "role", "subscribed", "acl", "sort"}
    _require(not unknown, f"unknown mailbox fields: {', '.join(sorted(unknown))}")
    name = _mailbox_name(changes.get("name", record["name"]))
    parent = _int(changes.get("parent", record["parent"]), "parent", maximum=2**32 - 1)
    if parent:
        _load_mailbox(c, acc, parent)
        walk = parent
        while walk:  # no cycles: the new parent must not be the mailbox or below it
            _require(walk != mailbox, "a mailbox cannot be moved below itself")
            walk = _load_mailbox(c, acc, walk)["parent"]
    if (name, parent) != (record["name"], record["parent"]):
        for mid, other in _mailboxes(c, acc):
            if mid != mailbox and _name_clash(other, parent, name):
                raise StoreError("exists", f"a mailbox named {name!r} already exists there")
    if "role" in changes and changes["role"] != record["role"]:
        role = changes["role"]
        if role is not None:
            _require(role in ROLES, f"unknown mailbox role {role!r}")
            for mid, other in _mailboxes(c, acc):
                if mid != mailbox and other.get("role") == role:
                    raise StoreError("exists", f"mailbox {other['name']!r} already has role {role!r}")
        record["role"] = role
    if "subscribed" in changes:
        _require(isinstance(changes["subscribed"], bool), "subscribed must be true or false")
        record["subscribed"] = changes["subscribed"]
    if "sort" in changes:
        record["sort"] = _int(changes["sort"], "sort", maximum=2**32 - 1)
    if "acl" in changes:
        acl = changes["acl"]
        _require(isinstance(acl, dict), "acl must be a map of account id to rights")
        clean = {}
        for who, rights in acl.items():
            who = _int(who, "acl account", maximum=2**32 - 1)
            _require(isinstance(rights, str) and set(rights) <= set("lrswipkxtea"),
                     f"invalid rights {rights!r} (RFC 4314: lrswipkxtea)")
            if rights:
                clean[who] = "".join(sorted(set(rights)))
        record["acl"] = clean
    record["name"], record["parent"] = name, parent
    record["hms"] = c.change_id(acc)
    c.store(keys.mailbox(acc, mailbox), record)
    c.changed(acc, MAILBOX, "updated", mailbox)
    return {"id": mailbox, **record}


@operation
def delete_mailbox(c: OpCtx, account: Any, mailbox: Any, remove_emails: Any = True) -> dict:
    """Delete a mailbox. Its messages leave it; those in no other mailbox are destroyed.

    Refused (``in_use``) while the mailbox has children, or when it holds messages and
    ``remove_emails`` is false (JMAP ``onDestroyRemoveEmails``).
    """
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    record = _load_mailbox(c, acc, mailbox)
    for mid, other in _mailboxes(c, acc):
        if other["parent"] == mailbox:
            raise StoreError("in_use", f"mailbox {record['name']!r} has child mailboxes")
    prefix = keys.mailbox_uid_prefix(acc, mailbox)
    members = list(c.txn.scan(prefix, keys.prefix_end(prefix)))
    if members and not remove_emails:
        raise StoreError("in_use", f"mailbox {record['name']!r} is not empty")
    for k, raw in members:
        _remove_from_mailbox(c, acc, keys.read_u32(raw), mailbox, record, vanish=False)
    vprefix = keys.vanished_prefix(acc, mailbox)
    for k, _ in list(c.txn.scan(vprefix, keys.prefix_end(vprefix))):
        c.txn.delete(k)
    c.txn.delete(keys.mailbox(acc, mailbox))
    c.changed(acc, MAILBOX, "destroyed", mailbox)
    return {"id": mailbox, "removed": len(members)}


