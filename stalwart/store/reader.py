"""The read side of the store: queries over a reader (a RocksDB secondary or a MemoryKV).

Every function here takes a ``kv`` with ``get`` and ``scan`` (see kv.py) and never writes.
The ``Store`` facade decides when the reader catches up with the writer (read-your-writes);
a multi-step query runs without any catch-up in between, so it sees one consistent state.
"""

from __future__ import annotations

from typing import Any

from . import keys
from .engine import normalize_address, normalize_domain, unpack
from .ops.directory import public_account
from .ops import forward as _forward
from .errors import StoreError

COLLECTIONS = ("Email", "Mailbox", "Thread")


def _load(kv, key: bytes) -> Any | None:
    raw = kv.get(key)
    return None if raw is None else unpack(raw)


def _scan_prefix(kv, prefix: bytes, reverse: bool = False):
    return kv.scan(prefix, keys.prefix_end(prefix), reverse)


# --------------------------------------------------------------------------- directory

def list_domains(kv) -> list[dict]:
    return [unpack(v) for _, v in _scan_prefix(kv, keys.DOMAIN)]


def get_domain(kv, name: str) -> dict | None:
    try:
        name = normalize_domain(name)
    except StoreError:
        return None
    return _load(kv, keys.domain(name))


def account_id(kv, name_or_id: Any) -> int | None:
    if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        return name_or_id if kv.get(keys.principal(name_or_id)) is not None else None
    if not isinstance(name_or_id, str) or not name_or_id:
        return None
    raw = kv.get(keys.name_idx(name_or_id))
    if raw is None and "@" in name_or_id:
        try:
            raw = kv.get(keys.email_idx(normalize_address(name_or_id)))
        except StoreError:
            return None
    return None if raw is None else keys.read_u32(raw)


def get_principal(kv, acc: int) -> dict | None:
    """The full principal record, secret included (for authentication only)."""
    return _load(kv, keys.principal(acc))


def get_account(kv, name_or_id: Any) -> dict | None:
    acc = account_id(kv, name_or_id)
    if acc is None:
        return None
    record = _load(kv, keys.principal(acc))
    if record is None:
        return None
    state = _load(kv, keys.account(acc)) or {}
    return {"id": acc, **public_account(record, state.get("used", 0))}


def list_accounts(kv, domain: str | None = None) -> list[dict]:
    if domain is not None:
        dom = normalize_domain(domain)
        ids = sorted({keys.read_u32(v) for _, v in _scan_prefix(kv, keys.email_idx_domain_prefix(dom))})
        out = [get_account(kv, acc) for acc in ids]
        return sorted((a for a in out if a), key=lambda a: a["name"].lower())
    out = []
    for k, v in _scan_prefix(kv, keys.NAME_IDX):
        account = get_account(kv, keys.read_u32(v))
        if account:
            out.append(account)
    return out


def resolve_address(kv, address: str) -> int | None:
    """The account that receives mail for ``address``, or None.

    Order: the exact address; the same local part in the target of an alias domain;
    sub-addressing (``user+tag@`` -> ``user@``); the domain's catch-all. An address that
    is a forwarding alias (``ops/forward.py``) has no account: None (``resolve_recipient``
    tells it apart), never the catch-all.
    """
    try:
        address = normalize_address(address)
    except StoreError:
        return None
    found = _forward.resolve(kv.get, address)
    return found[1] if found is not None and found[0] == "account" else None


def resolve_recipient(kv, address: str) -> dict | None:
    """Where mail for ``address`` goes: ``{"account": id}``, or for a forwarding alias
    ``{"forward": address, "accounts": [[target, id], ...], "remote": [addresses]}``
    (expanded, ``ops.forward.expand``), or None. A forward whose expansion is empty
    (every target gone) is None too: nobody receives its mail."""
    try:
        address = normalize_address(address)
    except StoreError:
        return None
    found = _forward.resolve(kv.get, address)
    if found is None:
        return None
    if found[0] == "account":
        return {"account": found[1]}
    expansion = _forward.expand(kv.get, found[1])
    if not expansion.accounts and not expansion.remote:
        return None
    return expansion.as_target()


def get_forward(kv, address: str) -> dict | None:
    """The forwarding alias record of exactly ``address`` (no alias-domain mapping)."""
    try:
        address = normalize_address(address)
    except StoreError:
        return None
    return _load(kv, keys.forward(address))


def list_forwards(kv, domain: str | None = None) -> list[dict]:
    prefix = keys.FORWARD if domain is None else keys.forward_domain_prefix(normalize_domain(domain))
    return [unpack(v) for _, v in _scan_prefix(kv, prefix)]


def expand_forward(kv, address: str) -> "_forward.Expansion | None":
    """The full expansion of one forwarding alias (with what it skipped), or None."""
    record = get_forward(kv, address)
    return None if record is None else _forward.expand(kv.get, record)


def is_local_domain(kv, domain: str) -> bool:
    return get_domain(kv, domain) is not None


# --------------------------------------------------------------------------- mailboxes

def account_state(kv, acc: int) -> dict | None:
    """Counters and JMAP states: {"change", "used", "states": {type: change}, ...}."""
    return _load(kv, keys.account(acc))


def list_mailboxes(kv, acc: int) -> list[dict]:
    prefix = keys.account_prefix(keys.MAILBOX, acc)
    return [{"id": keys.mailbox_id_from_key(k), **unpack(v)} for k, v in _scan_prefix(kv, prefix)]


def get_mailbox(kv, acc: int, mbox: int) -> dict | None:
    record = _load(kv, keys.mailbox(acc, mbox))
    return None if record is None else {"id": mbox, **record}


def mailbox_path(mailboxes: list[dict], mbox: int, sep: str = "/") -> str:
    """The full hierarchical name of a mailbox from a ``list_mailboxes`` result."""
    by_id = {m["id"]: m for m in mailboxes}
    parts = []
    seen = set()
    while mbox and mbox in by_id and mbox not in seen:
        seen.add(mbox)
        parts.append(by_id[mbox]["name"])
        mbox = by_id[mbox]["parent"]
    return sep.join(reversed(parts))


def find_mailbox(kv, acc: int, path: str, sep: str = "/") -> dict | None:
    """Look a mailbox up by its full name; "INBOX" matches the inbox in any case."""
    mailboxes = list_mailboxes(kv, acc)
    if path.upper() == "INBOX":
        for m in mailboxes:
            if m["parent"] == 0 and m["name"].upper() == "INBOX":
                return m
    for m in mailboxes:
        if mailbox_path(mailboxes, m["id"], sep) == path:
            return m
    return None


def mailbox_uids(kv, acc: int, mbox: int) -> list[tuple[int, int]]:
    """[(uid, email id)] of a mailbox in UID order: the IMAP message list."""
    prefix = keys.mailbox_uid_prefix(acc, mbox)
    return [(keys.uid_from_key(k), keys.read_u32(v)) for k, v in _scan_prefix(kv, prefix)]


def mailbox_messages(kv, acc: int, mbox: int) -> list[tuple[int, int, list, int]]:
    """[(uid, email id, keywords, modseq)] of a mailbox in UID order, in one pass
    (IMAP SELECT builds its view from this)."""
    out = []
    for k, v in _scan_prefix(kv, keys.mailbox_uid_prefix(acc, mbox)):
        eid = keys.read_u32(v)
        raw = kv.get(keys.email(acc, eid))
        if raw is None:
            continue
        email = unpack(raw)
        out.append((keys.uid_from_key(k), eid, email["kw"], email["modseq"]))
    return out


def vanished_since(kv, acc: int, mbox: int, modseq: int) -> list[int]:
    """UIDs removed from ``mbox`` by changes newer than ``modseq`` (QRESYNC VANISHED)."""
    prefix = keys.vanished_prefix(acc, mbox)
    start = prefix + modseq.to_bytes(8, "big") + b"\xff\xff\xff\xff"
    out = [keys.vanished_parse(k)[1] for k, _ in kv.scan(start, keys.prefix_end(prefix))]
    return sorted(set(out))


# --------------------------------------------------------------------------- messages

def get_email(kv, acc: int, eid: int) -> dict | None:
    record = _load(kv, keys.email(acc, eid))
    return None if record is None else {"id": eid, **record}


def list_email_ids(kv, acc: int) -> list[int]:
    prefix = keys.account_prefix(keys.EMAIL, acc)
    return [keys.email_id_from_key(k) for k, _ in _scan_prefix(kv, prefix)]


def blob_refcount(kv, blob_hash: bytes) -> int:
    raw = kv.get(keys.blob_ref(blob_hash))
    return 0 if raw is None else keys.read_u32(raw)


# --------------------------------------------------------------------------- changes

def changes_since(kv, acc: int, collection: str, since: int, max_changes: int = 0) -> dict:
    """JMAP /changes for ``collection`` after state ``since`` (a change id).

    Returns {"old_state", "new_state", "has_more", "created", "updated", "destroyed"}, with
    an id created and destroyed in the window reported in neither list (RFC 8620 5.2), and
    ``new_state`` the change id up to which the lists are complete. Raises
    StoreError("invalid") for an unknown collection and StoreError("conflict") when
    ``since`` is in the future ("cannotCalculateChanges").
    """
    if collection not in COLLECTIONS:
        raise StoreError("invalid", f"unknown collection {collection!r}")
    state = account_state(kv, acc)
    if state is None:
        raise StoreError("not_found", f"account {acc} does not exist")
    current = state["change"]
    if since > current or since < 0:
        raise StoreError("conflict", f"state {since} is not a state of this account")
    created: dict[int, None] = {}
    updated: dict[int, None] = {}
    destroyed: dict[int, None] = {}
    new_state = since
    has_more = False
    count = 0
    start = keys.changelog(acc, since + 1)
    for k, v in kv.scan(start, keys.prefix_end(keys.account_prefix(keys.CHANGELOG, acc))):
        record = unpack(v).get(collection)
        change = keys.change_from_key(k)
        if record:
            c, u, d = record
            if max_changes and count + len(c) + len(u) + len(d) > max_changes and count:
                has_more = True
                break
            for i in c:
                created[i] = None
            for i in u:
                if i not in created:
                    updated[i] = None
            for i in d:
                if i in created:
                    del created[i]
                else:
                    updated.pop(i, None)
                    destroyed[i] = None
            count += len(c) + len(u) + len(d)
        new_state = change
    if not has_more:
        new_state = current
    return {"old_state": since, "new_state": new_state, "has_more": has_more,
            "created": list(created), "updated": list(updated), "destroyed": list(destroyed)}


# --------------------------------------------------------------------------- queue

def queue_get(kv, qid: int) -> dict | None:
    return _load(kv, keys.queue(qid))


def queue_due(kv, now: float, limit: int) -> list[dict]:
    """Entries due at or before ``now`` (epoch seconds), earliest first."""
    end = keys.queue_due(int(now * 1000), 2**64 - 1)
    out = []
    for k, _ in kv.scan(keys.QUEUE_DUE, keys.prefix_end(end)):
        if len(out) >= limit:
            break
        record = _load(kv, keys.queue(keys.queue_due_parse(k)[1]))
        if record is not None:
            out.append(record)
    return out


def queue_next_due(kv) -> float | None:
    for k, _ in _scan_prefix(kv, keys.QUEUE_DUE):
        record = _load(kv, keys.queue(keys.queue_due_parse(k)[1]))
        if record is not None:
            return float(record["due"])
    return None


def queue_list(kv, limit: int = 1000, after: int = 0) -> list[dict]:
    out = []
    for _, v in kv.scan(keys.queue(after + 1), keys.prefix_end(keys.QUEUE)):
        if len(out) >= limit:
            break
        out.append(unpack(v))
    return out
