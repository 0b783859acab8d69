"""Access control on mailboxes (IMAP ACL, RFC 4314): rights, grants, and writes made by an
account in a mailbox of another account.

Rights are the eleven letters of RFC 4314 section 2.1, kept as a sorted string::

    l lookup (LIST)        r read (SELECT, FETCH, SEARCH, COPY from)   s keep \\Seen
    w write other flags    i insert (APPEND, COPY/MOVE into)           p post (no-op here)
    k create children      x delete mailbox                            t set \\Deleted
    e EXPUNGE              a administer (SETACL, DELETEACL, GETACL, LISTRIGHTS)

The owner of a mailbox always has all of them; nobody can take them away. Grants live in
the mailbox record (``acl``: {grantee account id: rights}, grantee 0 meaning "anyone")
and, so that an account can find what others share with it without scanning every
mailbox, in the ACL index (``keys.acl_idx``: grantee, owner, mailbox -> b""). The record
is the truth: a reader checks every index hit against it (an index entry whose mailbox
was deleted is skipped). The obsolete RFC 2086 rights are mapped as RFC 4314 2.1.1
allows: "c" to "k", "d" to "x", "t" and "e".

Enforcement: every write that an account makes in another account's mailbox goes through
``as_user(actor, operation, mailbox, args)``, which checks the rights RFC 4314 section 4 asks of
that operation and then runs it in the same transaction, or refuses the whole operation
with ``StoreError("forbidden")`` (nothing written). The checks, by operation:

    append, append_many   "i" on the mailbox; flags the actor may not set (\\Seen without
                          "s", \\Deleted without "t", others without "w") are dropped
    set_keywords          every email must be in the mailbox; each change needs "s"
                          (\\Seen), "t" (\\Deleted) or "w" (any other keyword)
    expunge               "e"
    copy                  "r" on the source mailbox (``mailbox``), "i" on the target
    move                  "r", "t" and "e" on the source, "i" on the target (RFC 6851)
    create_mailbox        "k" on the parent
    delete_mailbox        "x"

``copy_across`` copies messages from one account's mailbox to another's (the blob is
shared, the copy belongs to the target account and counts against its quota), with "r"
on the source and "i" on the target checked for whichever side is not the actor's own.
"""

from __future__ import annotations

from typing import Any

from .. import keys
from ..engine import MAILBOX, OPERATIONS, OpCtx, _int, _keywords, _require, operation
from ..errors import StoreError
from .common import _load_mailbox
from .messages import _create_email, _email_ids

ALL_RIGHTS = "aeiklprstwx"            # sorted "lrswipkxtea"
RIGHTS_ORDER = "lrswipkxtea"          # the order RFC 4314 lists them in
ANYONE = 0
_OBSOLETE = {"c": "k", "d": "xte"}


def normalize_rights(rights: Any) -> str:
    """The sorted set of rights in ``rights`` (obsolete "c"/"d" mapped); else invalid."""
    _require(isinstance(rights, str) and len(rights) <= 64, "rights must be a short string")
    out = set()
    for ch in rights:
        if ch in _OBSOLETE:
            out.update(_OBSOLETE[ch])
        elif ch in ALL_RIGHTS:
            out.add(ch)
        else:
            raise StoreError("invalid", f"unknown right {ch!r} (RFC 4314: lrswipkxtea)")
    return "".join(sorted(out))


def rights_in(owner: int, record: dict, actor: int) -> str:
    """What ``actor`` may do in mailbox ``record`` of account ``owner`` (sorted letters)."""
    if actor == owner:
        return ALL_RIGHTS
    acl = record.get("acl") or {}
    return "".join(sorted(set(acl.get(actor, "")) | set(acl.get(ANYONE, ""))))


def _need(owner: int, record: dict, actor: int, needed: str, what: str) -> str:
    have = rights_in(owner, record, actor)
    missing = [r for r in needed if r not in have]
    if missing:
        raise StoreError("forbidden", f"{what} needs the {''.join(missing)!r} right on "
                                      f"mailbox {record.get('name')!r}")
    return have


def _keyword_right(kw: str) -> str:
    return "s" if kw == "$seen" else "t" if kw == "$deleted" else "w"


def _allowed_keywords(kws: list[str], have: str) -> list[str]:
    return [k for k in kws if _keyword_right(k) in have]


# --------------------------------------------------------------------------- grants

@operation
def set_acl(c: OpCtx, account: Any, mailbox: Any, actor: Any, grantee: Any, rights: Any,
            mode: Any = "replace") -> dict:
    """SETACL / DELETEACL: give (``replace``), add to (``add``) or take from (``remove``)
    ``grantee``'s rights on a mailbox of ``account``. ``grantee`` 0 is "anyone". Needs "a"
    (the owner has it). Empty rights remove the grant. Returns the mailbox's new ACL."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    mbox = _int(mailbox, "mailbox", maximum=2**32 - 1)
    record = _load_mailbox(c, acc, mbox)
    actor = _int(actor, "actor", maximum=2**32 - 1)
    _need(acc, record, actor, "a", "changing the ACL")
    grantee = _int(grantee, "grantee", maximum=2**32 - 1)
    _require(grantee != acc, "the owner always has every right; they cannot be changed")
    if grantee != ANYONE and c.load(keys.principal(grantee)) is None:
        raise StoreError("not_found", f"account {grantee} does not exist")
    _require(mode in ("replace", "add", "remove"), "mode must be replace, add or remove")
    rights = normalize_rights(rights)
    acl = {int(k): v for k, v in (record.get("acl") or {}).items()}
    old = set(acl.get(grantee, ""))
    new = set(rights) if mode == "replace" else old | set(rights) if mode == "add" \
        else old - set(rights)
    if new:
        acl[grantee] = "".join(sorted(new))
        c.txn.put(keys.acl_idx(grantee, acc, mbox), b"")
    else:
        acl.pop(grantee, None)
        c.txn.delete(keys.acl_idx(grantee, acc, mbox))
    record["acl"] = acl
    record["hms"] = c.change_id(acc)
    c.store(keys.mailbox(acc, mbox), record)
    c.changed(acc, MAILBOX, "updated", mbox)
    return {"id": mbox, "acl": acl}


# --------------------------------------------------------------------------- writes by others

def _check_set_keywords(c: OpCtx, acc: int, mbox: int, record: dict, actor: int,
                        args: dict) -> None:
    have = _need(acc, record, actor, "r", "changing flags")
    add = set(_keywords(args.get("add") or []))
    remove = set(_keywords(args.get("remove") or []))
    replace = args.get("replace")
    replace = None if replace is None else set(_keywords(replace))
    needed = set()
    for eid in _email_ids(args.get("ids")):
        email = c.load(keys.email(acc, eid))
        if email is None:
            continue
        if mbox not in email["mb"]:
            raise StoreError("forbidden", f"email {eid} is not in mailbox {mbox}")
        old = set(email["kw"])
        new = replace if replace is not None else (old | add) - remove
        needed.update(_keyword_right(k) for k in old ^ new)
    missing = sorted(needed - set(have))
    if missing:
        raise StoreError("forbidden", f"changing these flags needs the {''.join(missing)!r} "
                                      f"right on mailbox {record.get('name')!r}")


def _strip_item_keywords(item: Any, have: str) -> Any:
    if isinstance(item, dict) and item.get("keywords"):
        item = dict(item)
        item["keywords"] = _allowed_keywords(_keywords(item["keywords"]), have)
    return item


@operation
def as_user(c: OpCtx, actor: Any, operation: Any, mailbox: Any, args: Any) -> Any:
    """Run write ``operation`` with ``args`` for ``actor`` in ``args["account"]``'s
    ``mailbox``, after the rights check of the module docstring (none for the owner)."""
    op = operation
    actor = _int(actor, "actor", maximum=2**32 - 1)
    _require(isinstance(args, dict), "args must be a map")
    _require(op in _CHECKS, f"{op!r} cannot be run on behalf of another account")
    acc = _int(args.get("account"), "account", maximum=2**32 - 1)
    c.account_state(acc)
    mbox = _int(mailbox, "mailbox", maximum=2**32 - 1)
    if actor != acc:
        record = _load_mailbox(c, acc, mbox)
        args = _CHECKS[op](c, acc, mbox, record, actor, dict(args))
    try:
        return OPERATIONS[op](c, **args)
    except TypeError as exc:
        raise StoreError("invalid", f"{op}: {exc}") from None


def _append_check(c, acc, mbox, record, actor, args):
    _require(args.get("mailbox") == mbox, "append goes to the mailbox that was checked")
    have = _need(acc, record, actor, "i", "appending")
    if "items" in args:
        _require(isinstance(args["items"], (list, tuple)), "items must be a list")
        args["items"] = [_strip_item_keywords(i, have) for i in args["items"]]
    elif args.get("keywords"):
        args["keywords"] = _allowed_keywords(_keywords(args["keywords"]), have)
    return args


def _set_keywords_check(c, acc, mbox, record, actor, args):
    _check_set_keywords(c, acc, mbox, record, actor, args)
    return args


def _expunge_check(c, acc, mbox, record, actor, args):
    _require(args.get("mailbox") == mbox, "expunge acts on the mailbox that was checked")
    _need(acc, record, actor, "e", "expunging")
    return args


def _target_check(c, acc, actor, target: Any, what: str) -> None:
    trec = _load_mailbox(c, acc, _int(target, "mailbox", maximum=2**32 - 1))
    _need(acc, trec, actor, "i", what)


def _source_emails_check(c, acc, mbox, args) -> None:
    for eid in _email_ids(args.get("ids")):
        email = c.load(keys.email(acc, eid))
        if email is None or mbox not in email["mb"]:
            raise StoreError("forbidden", f"email {eid} is not in mailbox {mbox}")


def _copy_check(c, acc, mbox, record, actor, args):
    _need(acc, record, actor, "r", "copying from this mailbox")
    _source_emails_check(c, acc, mbox, args)
    _target_check(c, acc, actor, args.get("mailbox"), "copying into this mailbox")
    return args


def _move_check(c, acc, mbox, record, actor, args):
    _require(args.get("source") == mbox, "move acts on the mailbox that was checked")
    _need(acc, record, actor, "rte", "moving messages out of this mailbox")
    _target_check(c, acc, actor, args.get("mailbox"), "moving into this mailbox")
    return args


def _create_check(c, acc, mbox, record, actor, args):
    _require(args.get("parent") == mbox, "create goes below the mailbox that was checked")
    _need(acc, record, actor, "k", "creating a mailbox here")
    return args


def _delete_check(c, acc, mbox, record, actor, args):
    _require(args.get("mailbox") == mbox, "delete acts on the mailbox that was checked")
    _need(acc, record, actor, "x", "deleting this mailbox")
    return args


_CHECKS = {
    "append": _append_check, "append_many": _append_check,
    "set_keywords": _set_keywords_check, "expunge": _expunge_check,
    "copy": _copy_check, "move": _move_check,
    "create_mailbox": _create_check, "delete_mailbox": _delete_check,
}


@operation
def copy_across(c: OpCtx, actor: Any, account: Any, mailbox: Any, ids: Any,
                dest_account: Any, dest_mailbox: Any) -> list:
    """COPY between two accounts (a shared mailbox and one's own, or two shared ones).

    The copies are new emails of ``dest_account`` with the same blob, received date and
    keywords (those the actor may set there), in a new thread of their own."""
    actor = _int(actor, "actor", maximum=2**32 - 1)
    src_acc = _int(account, "account", maximum=2**32 - 1)
    dst_acc = _int(dest_account, "dest_account", maximum=2**32 - 1)
    c.account_state(src_acc)
    c.account_state(dst_acc)
    src_id = _int(mailbox, "mailbox", maximum=2**32 - 1)
    dst_id = _int(dest_mailbox, "dest_mailbox", maximum=2**32 - 1)
    src = _load_mailbox(c, src_acc, src_id)
    dst = _load_mailbox(c, dst_acc, dst_id)
    _need(src_acc, src, actor, "r", "copying from this mailbox")
    have = _need(dst_acc, dst, actor, "i", "copying into this mailbox")
    out = []
    for eid in _email_ids(ids):
        email = c.load(keys.email(src_acc, eid))
        if email is None or src_id not in email["mb"]:
            raise StoreError("not_found", f"email {eid} is not in mailbox {src_id}")
        created = _create_email(c, dst_acc, dst_id, email["blob"], email["size"],
                                email["received"], _allowed_keywords(email["kw"], have),
                                None, email.get("meta"))
        out.append({"source": eid, **created})
    return out


# --------------------------------------------------------------------------- reads

def shared_with(kv, actor: int) -> list[tuple[int, dict, str]]:
    """Mailboxes of other accounts that ``actor`` has any right on (directly or through
    "anyone"): [(owner account, mailbox record with "id", rights)], from the ACL index,
    every hit checked against its mailbox record."""
    from .. import reader

    found: dict[tuple[int, int], tuple[int, dict, str]] = {}
    for grantee in (actor, ANYONE):
        prefix = keys.acl_idx_prefix(grantee)
        for k, _ in reader._scan_prefix(kv, prefix):
            owner, mbox = keys.acl_idx_parse(k)
            if owner == actor or (owner, mbox) in found:
                continue
            record = reader.get_mailbox(kv, owner, mbox)
            if record is None:
                continue
            rights = rights_in(owner, record, actor)
            if rights:
                found[(owner, mbox)] = (owner, record, rights)
    return sorted(found.values(), key=lambda t: (t[0], t[1]["id"]))
