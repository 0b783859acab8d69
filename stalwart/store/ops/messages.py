"""Operations on messages: append, deliver, keywords, copy, move, expunge, destroy."""

from __future__ import annotations

from typing import Any

from .. import keys
from ..errors import StoreError
from ..kv import Txn
from ..engine import EMAIL, MAILBOX, THREAD, OpCtx, _int, _keywords, _require, operation
from .common import _load_mailbox, _mailboxes, _ref_blob, _unref_blob


def _thread_for(c: OpCtx, acc: int, thread_keys: Any) -> tuple[int, bool]:
    """Find the thread of a new message from its Message-ID/In-Reply-To/References.

    Returns (thread id, created). Every id the message names is indexed to that thread, so a
    reply that arrives before its parent still joins the parent later.
    """
    ids: list[str] = []
    if thread_keys:
        _require(isinstance(thread_keys, dict), "thread_keys must be a map")
        mid = thread_keys.get("message_id")
        if isinstance(mid, str) and mid:
            ids.append(mid[:998])
        refs = thread_keys.get("refs") or []
        _require(isinstance(refs, (list, tuple)), "thread_keys.refs must be a list")
        ids.extend(r[:998] for r in refs[:256] if isinstance(r, str) and r)
    thread = 0
    for ident in ids:
        raw = c.txn.get(keys.thread_idx(acc, ident))
        if raw is not None:
            thread = keys.read_u32(raw)
            break
    created = False
    if not thread:
        state = c.account_state(acc)
        thread = state["next_thread"]
        state["next_thread"] = thread + 1
        created = True
    for ident in ids:
        k = keys.thread_idx(acc, ident)
        if c.txn.get(k) is None:
            c.txn.put(k, keys.u32(thread))
    return thread, created


def _check_blob(c: OpCtx, blob: Any, size: Any) -> tuple[bytes, int]:
    _require(isinstance(blob, bytes) and len(blob) == 32, "blob must be a 32-byte hash")
    size = _int(size, "size", maximum=2**40)
    if not c.engine.blob_exists(blob):
        raise StoreError("not_found", f"blob {blob.hex()} has not been stored")
    return blob, size


def _add_to_mailbox(c: OpCtx, acc: int, eid: int, email: dict, mbox: int, mrec: dict) -> int:
    uid = mrec["uidnext"]
    _require(uid < 2**32 - 1, "UIDs of this mailbox are exhausted")
    mrec["uidnext"] = uid + 1
    change = c.change_id(acc)
    mrec["hms"] = change
    mrec["total"] += 1
    mrec["size"] += email["size"]
    if "$seen" not in email["kw"]:
        mrec["unseen"] += 1
    email["mb"][mbox] = uid
    c.txn.put(keys.mailbox_uid(acc, mbox, uid), keys.u32(eid))
    c.store(keys.mailbox(acc, mbox), mrec)
    c.changed(acc, MAILBOX, "updated", mbox)
    return uid


def _remove_from_mailbox(c: OpCtx, acc: int, eid: int, mbox: int, mrec: dict,
                         vanish: bool = True) -> int | None:
    """Take email ``eid`` out of ``mbox``; destroy it if it is then in no mailbox."""
    email = c.load(keys.email(acc, eid))
    if email is None or mbox not in email["mb"]:
        return None
    uid = email["mb"].pop(mbox)
    change = c.change_id(acc)
    c.txn.delete(keys.mailbox_uid(acc, mbox, uid))
    mrec["total"] -= 1
    mrec["size"] -= email["size"]
    if "$seen" not in email["kw"]:
        mrec["unseen"] -= 1
    mrec["hms"] = change
    if vanish:
        c.txn.put(keys.vanished(acc, mbox, change, uid), b"")
        c.store(keys.mailbox(acc, mbox), mrec)
        c.changed(acc, MAILBOX, "updated", mbox)
    if email["mb"]:
        email["modseq"] = change
        c.store(keys.email(acc, eid), email)
        c.changed(acc, EMAIL, "updated", eid)
    else:
        _destroy_email(c, acc, eid, email)
    return uid


def _destroy_email(c: OpCtx, acc: int, eid: int, email: dict) -> None:
    state = c.account_state(acc)
    state["used"] = max(0, state["used"] - email["size"])
    c.txn.delete(keys.email(acc, eid))
    _unref_blob(c, email["blob"])
    c.changed(acc, EMAIL, "destroyed", eid)
    c.changed(acc, THREAD, "updated", email["thread"])


def _create_email(c: OpCtx, acc: int, mbox: int, blob: bytes, size: int, received: int,
                  kw: list[str], thread_keys: Any, meta: Any) -> dict:
    state = c.account_state(acc)
    principal = c.load(keys.principal(acc))
    quota = principal["quota"] if principal else 0
    if quota and state["used"] + size > quota:
        raise StoreError("over_quota", f"account {principal['name']!r} is over its quota "
                                       f"({state['used']} + {size} > {quota} bytes)")
    mrec = _load_mailbox(c, acc, mbox)
    eid = state["next_email"]
    _require(eid < 2**32, "email ids exhausted")
    state["next_email"] = eid + 1
    state["used"] += size
    thread, created = _thread_for(c, acc, thread_keys)
    change = c.change_id(acc)
    email = {"blob": blob, "size": size, "received": received, "kw": kw, "thread": thread,
             "mb": {}, "modseq": change, "meta": meta}
    uid = _add_to_mailbox(c, acc, eid, email, mbox, mrec)
    c.store(keys.email(acc, eid), email)
    _ref_blob(c, blob)
    c.changed(acc, EMAIL, "created", eid)
    c.changed(acc, THREAD, "created" if created else "updated", thread)
    return {"account": acc, "id": eid, "mailbox": mbox, "uid": uid,
            "uidvalidity": mrec["uidvalidity"], "thread": thread, "modseq": change}


def _role_mailbox(c: OpCtx, acc: int, role: str) -> int:
    for mid, rec in _mailboxes(c, acc):
        if rec.get("role") == role:
            return mid
    raise StoreError("not_found", f"account {acc} has no {role} mailbox")


@operation
def append(c: OpCtx, account: Any, mailbox: Any, blob: Any, size: Any, received: Any = None,
           keywords: Any = (), thread_keys: Any = None, meta: Any = None) -> dict:
    """IMAP APPEND / JMAP Email/import: one message into one mailbox."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    blob, size = _check_blob(c, blob, size)
    received = c.now if received is None else _int(received, "received")
    return _create_email(c, acc, _int(mailbox, "mailbox", maximum=2**32 - 1), blob, size,
                         received, _keywords(keywords), thread_keys, meta)


@operation
def append_many(c: OpCtx, account: Any, mailbox: Any, items: Any) -> list:
    """IMAP MULTIAPPEND (RFC 3502): several messages into one mailbox, all or none.

    ``items``: [{"blob", "size", "received", "keywords", "thread_keys", "meta"}]."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    mailbox = _int(mailbox, "mailbox", maximum=2**32 - 1)
    _require(isinstance(items, (list, tuple)) and items, "items must be a non-empty list")
    _require(len(items) <= 10000, "too many messages in one append")
    out = []
    for item in items:
        _require(isinstance(item, dict), "each item must be a map")
        unknown = set(item) - {"blob", "size", "received", "keywords", "thread_keys", "meta"}
        _require(not unknown, f"unknown item fields: {', '.join(sorted(unknown))}")
        blob, size = _check_blob(c, item.get("blob"), item.get("size"))
        received = item.get("received")
        received = c.now if received is None else _int(received, "received")
        out.append(_create_email(c, acc, mailbox, blob, size, received,
                                 _keywords(item.get("keywords") or []),
                                 item.get("thread_keys"), item.get("meta")))
    return out


@operation
def deliver(c: OpCtx, recipients: Any, blob: Any, size: Any, received: Any = None,
            thread_keys: Any = None, meta: Any = None) -> list:
    """Local delivery of one message to several accounts, in one durable step.

    ``recipients``: list of {"account": id, "mailbox": id (default: the inbox),
    "keywords": [...]}. Each recipient succeeds or fails on its own (quota, missing account);
    the result lists, in order, either the new email or {"error": code, "message": ...}.
    """
    _require(isinstance(recipients, (list, tuple)) and recipients, "recipients must be a list")
    _require(len(recipients) <= 10000, "too many recipients")
    blob, size = _check_blob(c, blob, size)
    received = c.now if received is None else _int(received, "received")
    results = []
    for rcpt in recipients:
        # Each recipient runs in its own operation context layered on this one, so a
        # failure (quota, unknown account) discards only that recipient's writes.
        sub = OpCtx(Txn(c.txn, ()), c.engine)
        sub.now = c.now
        try:
            _require(isinstance(rcpt, dict), "each recipient must be a map")
            acc = _int(rcpt.get("account"), "account", maximum=2**32 - 1)
            sub.account_state(acc)
            mbox = rcpt.get("mailbox") or _role_mailbox(sub, acc, "inbox")
            kw = _keywords(rcpt.get("keywords") or [])
            result = _create_email(sub, acc, mbox, blob, size, received, kw, thread_keys, meta)
        except StoreError as exc:
            results.append({"error": exc.code, "message": exc.message})
            continue
        for acc_id, event in sub.finish().items():
            c.extra_events.setdefault(acc_id, []).append(event)
        c.txn.writes.update(sub.txn.writes)
        results.append(result)
    return results


def _email_ids(value: Any) -> list[int]:
    _require(isinstance(value, (list, tuple)), "ids must be a list")
    _require(len(value) <= 1_000_000, "too many ids")
    return [_int(v, "email id", minimum=1, maximum=2**32 - 1) for v in value]


@operation
def set_keywords(c: OpCtx, account: Any, ids: Any, add: Any = (), remove: Any = (),
                 replace: Any = None, unchanged_since: Any = None) -> dict:
    """IMAP STORE / JMAP keywords. ``unchanged_since`` is CONDSTORE's UNCHANGEDSINCE:
    emails whose modseq is greater are left alone and returned in ``conflicts``."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    ids = _email_ids(ids)
    add_kw = _keywords(add)
    remove_kw = _keywords(remove)
    replace_kw = None if replace is None else _keywords(replace)
    if unchanged_since is not None:
        unchanged_since = _int(unchanged_since, "unchanged_since")
    updated, conflicts, missing = [], [], []
    change = 0
    for eid in ids:
        email = c.load(keys.email(acc, eid))
        if email is None:
            missing.append(eid)
            continue
        if unchanged_since is not None and email["modseq"] > unchanged_since:
            conflicts.append(eid)
            continue
        old = set(email["kw"])
        new = set(replace_kw) if replace_kw is not None else (old | set(add_kw)) - set(remove_kw)
        if new == old:
            continue
        change = c.change_id(acc)
        email["kw"] = sorted(new)
        email["modseq"] = change
        seen_delta = ("$seen" in old) - ("$seen" in new)
        for mbox in email["mb"]:
            mrec = c.load(keys.mailbox(acc, mbox))
            mrec["unseen"] += seen_delta
            mrec["hms"] = change
            c.store(keys.mailbox(acc, mbox), mrec)
            if seen_delta:
                c.changed(acc, MAILBOX, "updated", mbox)
        c.store(keys.email(acc, eid), email)
        c.changed(acc, EMAIL, "updated", eid)
        updated.append(eid)
    return {"updated": updated, "conflicts": conflicts, "missing": missing,
            "modseq": change or c.account_state(acc)["change"]}


@operation
def copy(c: OpCtx, account: Any, ids: Any, mailbox: Any, keywords: Any = None) -> list:
    """IMAP COPY: new, independent emails (own flags) sharing the blob, in ``mailbox``."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    _load_mailbox(c, acc, mailbox)
    out = []
    for eid in _email_ids(ids):
        email = c.load(keys.email(acc, eid))
        if email is None:
            raise StoreError("not_found", f"email {eid} does not exist")
        kw = email["kw"] if keywords is None else _keywords(keywords)
        created = _create_email(c, acc, mailbox, email["blob"], email["size"],
                                email["received"], kw, None, email.get("meta"))
        # The copy joins the original's thread.
        new = c.load(keys.email(acc, created["id"]))
        if new["thread"] != email["thread"]:
            c.changed(acc, THREAD, "destroyed", new["thread"])
            new["thread"] = email["thread"]
            c.store(keys.email(acc, created["id"]), new)
            c.changed(acc, THREAD, "updated", email["thread"])
        created["thread"] = email["thread"]
        out.append({"source": eid, **created})
    return out


@operation
def move(c: OpCtx, account: Any, ids: Any, source: Any, mailbox: Any) -> list:
    """IMAP MOVE (RFC 6851) in one step: same email, new UID in ``mailbox``, gone from
    ``source`` (a VANISHED entry there)."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    src = _load_mailbox(c, acc, source)
    dst = _load_mailbox(c, acc, mailbox)
    _require(source != mailbox, "source and destination are the same mailbox")
    out = []
    for eid in _email_ids(ids):
        email = c.load(keys.email(acc, eid))
        if email is None or source not in email["mb"]:
            raise StoreError("not_found", f"email {eid} is not in mailbox {source}")
        if mailbox in email["mb"]:
            old_uid = _remove_from_mailbox(c, acc, eid, source, src)
            out.append({"id": eid, "old_uid": old_uid, "uid": email["mb"][mailbox]})
            continue
        uid = _add_to_mailbox(c, acc, eid, email, mailbox, dst)
        old_uid = email["mb"].pop(source)
        change = c.change_id(acc)
        c.txn.delete(keys.mailbox_uid(acc, source, old_uid))
        c.txn.put(keys.vanished(acc, source, change, old_uid), b"")
        src["total"] -= 1
        src["size"] -= email["size"]
        if "$seen" not in email["kw"]:
            src["unseen"] -= 1
        src["hms"] = change
        email["modseq"] = change
        c.store(keys.email(acc, eid), email)
        c.changed(acc, EMAIL, "updated", eid)
        out.append({"id": eid, "old_uid": old_uid, "uid": uid})
    c.store(keys.mailbox(acc, source), src)
    c.changed(acc, MAILBOX, "updated", source)
    return out


@operation
def expunge(c: OpCtx, account: Any, mailbox: Any, uids: Any) -> dict:
    """Remove the messages with these UIDs from ``mailbox`` (IMAP EXPUNGE/UID EXPUNGE).
    Emails left in no mailbox are destroyed. Unknown UIDs are ignored, as IMAP wants."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    mrec = _load_mailbox(c, acc, mailbox)
    _require(isinstance(uids, (list, tuple)), "uids must be a list")
    done = []
    for uid in uids:
        uid = _int(uid, "uid", minimum=1, maximum=2**32 - 1)
        raw = c.txn.get(keys.mailbox_uid(acc, mailbox, uid))
        if raw is None:
            continue
        if _remove_from_mailbox(c, acc, keys.read_u32(raw), mailbox, mrec) is not None:
            done.append(uid)
    return {"expunged": done, "modseq": mrec["hms"]}


@operation
def set_mailboxes(c: OpCtx, account: Any, id: Any, mailboxes: Any) -> dict:
    """JMAP Email/set mailboxIds: the exact set of mailboxes the email is in (non-empty)."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    eid = _int(id, "email id", minimum=1, maximum=2**32 - 1)
    email = c.load(keys.email(acc, eid))
    if email is None:
        raise StoreError("not_found", f"email {eid} does not exist")
    _require(isinstance(mailboxes, (list, tuple)) and mailboxes,
             "an email must be in at least one mailbox")
    target = {_int(m, "mailbox", maximum=2**32 - 1) for m in mailboxes}
    records = {m: _load_mailbox(c, acc, m) for m in target | set(email["mb"])}
    for m in sorted(target - set(email["mb"])):
        _add_to_mailbox(c, acc, eid, email, m, records[m])
    for m in sorted(set(email["mb"]) - target):
        uid = email["mb"].pop(m)
        change = c.change_id(acc)
        mrec = records[m]
        c.txn.delete(keys.mailbox_uid(acc, m, uid))
        c.txn.put(keys.vanished(acc, m, change, uid), b"")
        mrec["total"] -= 1
        mrec["size"] -= email["size"]
        if "$seen" not in email["kw"]:
            mrec["unseen"] -= 1
        mrec["hms"] = change
        c.store(keys.mailbox(acc, m), mrec)
        c.changed(acc, MAILBOX, "updated", m)
    email["modseq"] = c.change_id(acc)
    c.store(keys.email(acc, eid), email)
    c.changed(acc, EMAIL, "updated", eid)
    return {"id": eid, "mailboxes": email["mb"]}


@operation
def destroy(c: OpCtx, account: Any, ids: Any) -> dict:
    """JMAP Email/set destroy: remove emails from every mailbox and delete them."""
    acc = _int(account, "account", maximum=2**32 - 1)
    c.account_state(acc)
    destroyed, missing = [], []
    for eid in _email_ids(ids):
        email = c.load(keys.email(acc, eid))
        if email is None:
            missing.append(eid)
            continue
        for m in sorted(email["mb"]):
            _remove_from_mailbox(c, acc, eid, m, c.load(keys.mailbox(acc, m)))
        destroyed.append(eid)
    return {"destroyed": destroyed, "missing": missing}

