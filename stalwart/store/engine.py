"""The write side of the store: every mail-level operation, run by the single writer.

Theory of operation
-------------------
The store process (or, in tests, ``Store.memory()``) calls ``Engine.execute(txn, op, args)``
for each request. An operation reads through ``txn`` (its own writes, then the batches not yet
durable, then the database) and writes only into ``txn``. If it raises, the caller drops the
txn: nothing it did is kept. Otherwise its writes join the current group-commit batch and the
request is acknowledged once that batch has been written with ``sync=True``.

Because one process runs all operations one after another, counters (UIDNEXT, MODSEQ/change
ids, email and mailbox ids, quota usage) are read and bumped without races, and they are
committed in the same batch as the data that uses them: after a crash they can never go
backwards or be handed out twice.

Change ids: each account has one counter. Every operation that changes an account takes the
next value once (``OpCtx.change_id``); it is at the same time the IMAP MODSEQ of the messages
and mailboxes the operation touched, and the JMAP state of the collections it changed.
A change-log record (``keys.changelog``) lists the ids created/updated/destroyed per JMAP
type, so ``/changes`` and IMAP CONDSTORE/QRESYNC read the same history. Expunged UIDs are
also indexed per mailbox and modseq (``keys.vanished``) for QRESYNC VANISHED.

Keywords are stored in JMAP form, lower case (``$seen``, ``$flagged``, ``$answered``,
``$draft``, ``$deleted`` for IMAP ``\\Deleted``, and user keywords); protocols map to their
own spelling.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401  (registers the codec used by normalize_domain)
import re
import time
from typing import Any, Callable

import msgpack

from . import keys
from .errors import StoreError
from .kv import Txn

#: Mailboxes every new account gets (RFC 6154 special-use, RFC 8621 roles).
DEFAULT_MAILBOXES = (
    ("Inbox", "inbox"),
    ("Drafts", "drafts"),
    ("Sent", "sent"),
    ("Junk", "junk"),
    ("Trash", "trash"),
    ("Archive", "archive"),
)
ROLES = frozenset(
    {"inbox", "drafts", "sent", "junk", "trash", "archive", "all", "flagged", "important"}
)
#: JMAP type names used in change records and events.
EMAIL, MAILBOX, THREAD = "Email", "Mailbox", "Thread"

MAX_NAME = 255
MAX_MAILBOX_NAME = 1024
MAX_KEYWORD = 255
MAX_EMAILS_PER_ACCOUNT = 1000
_KEYWORD_RE = re.compile(r"^[\x21-\x7e]+$")
_KEYWORD_FORBIDDEN = set('(){ ]%*"\\')
_LOCAL_RE = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+$")


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


# --------------------------------------------------------------------------- validation

def _require(cond: bool, message: str) -> None:
    if not cond:
        raise StoreError("invalid", message)


def _str(value: Any, what: str, *, max_len: int = MAX_NAME, allow_empty: bool = False) -> str:
    _require(isinstance(value, str), f"{what} must be a string")
    _require(allow_empty or bool(value), f"{what} must not be empty")
    _require(len(value) <= max_len, f"{what} is longer than {max_len} characters")
    _require("\x00" not in value, f"{what} contains a NUL character")
    return value


def _int(value: Any, what: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool), f"{what} must be an integer")
    _require(minimum <= value <= maximum, f"{what} must be between {minimum} and {maximum}")
    return value


def normalize_domain(name: Any) -> str:
    """Lower-case IDNA (ASCII) form of a domain name, or StoreError('invalid')."""
    name = _str(name, "domain name").strip().rstrip(".").lower()
    _require(bool(name), "domain name must not be empty")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise StoreError("invalid", f"domain name {name!r} is not a valid IDNA name: {exc}")
    _require(len(ascii_name) <= 253, "domain name is longer than 253 octets")
    labels = ascii_name.split(".")
    _require(len(labels) >= 2, f"domain name {name!r} must have at least two labels")
    for label in labels:
        _require(0 < len(label) <= 63, f"domain name {name!r} has an empty or long label")
        _require(
            re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", label) is not None,
            f"domain name {name!r} has an invalid label {label!r}",
        )
    return ascii_name


def normalize_address(address: Any) -> str:
    """``local@domain`` with the domain in IDNA ASCII and everything lower case."""
    address = _str(address, "email address", max_len=320).strip()
    local, at, dom = address.rpartition("@")
    _require(bool(at) and bool(local), f"{address!r} is not an email address")
    _require(len(local.encode("utf-8")) <= 64, f"local part of {address!r} is too long")
    _require(_LOCAL_RE.match(local) is not None, f"local part of {address!r} is invalid")
    _require(not local.startswith(".") and not local.endswith(".") and ".." not in local,
             f"local part of {address!r} has misplaced dots")
    return f"{local.lower()}@{normalize_domain(dom)}"


def normalize_keyword(kw: Any) -> str:
    kw = _str(kw, "keyword", max_len=MAX_KEYWORD)
    _require(_KEYWORD_RE.match(kw) is not None and not (set(kw) & _KEYWORD_FORBIDDEN),
             f"keyword {kw!r} has forbidden characters")
    return kw.lower()


def _keywords(value: Any) -> list[str]:
    _require(isinstance(value, (list, tuple)), "keywords must be a list")
    return sorted({normalize_keyword(k) for k in value})


def _mailbox_name(value: Any) -> str:
    name = _str(value, "mailbox name", max_len=MAX_MAILBOX_NAME)
    _require(name.strip() == name, "mailbox name must not start or end with white space")
    _require(all(ord(ch) >= 0x20 and ord(ch) != 0x7F for ch in name),
             "mailbox name contains control characters")
    _require("/" not in name, "mailbox name must not contain the hierarchy separator '/'")
    return name


# --------------------------------------------------------------------------- op context

class _AccountChanges:
    """What one operation changed in one account (becomes one change-log record)."""

    __slots__ = ("state", "change", "log")

    def __init__(self, state: dict) -> None:
        self.state = state
        self.change = 0
        self.log: dict[str, tuple[set, set, set]] = {}


class OpCtx:
    """Per-operation helper: cached account states, change ids, change records."""

    def __init__(self, txn: Txn, engine: "Engine") -> None:
        self.txn = txn
        self.engine = engine
        self._accounts: dict[int, _AccountChanges] = {}
        self.extra_events: dict[int, list[dict]] = {}
        self.now = int(time.time())

    # records
    def load(self, key: bytes) -> Any | None:
        raw = self.txn.get(key)
        return None if raw is None else unpack(raw)

    def store(self, key: bytes, value: Any) -> None:
        self.txn.put(key, pack(value))

    def meta_counter(self, name: str, start: int) -> int:
        """Return the next value of a store-wide counter (never reused)."""
        value = self.load(keys.meta(name))
        value = start if value is None else value + 1
        self.store(keys.meta(name), value)
        return value

    # accounts
    def account_state(self, acc: int) -> dict:
        entry = self._accounts.get(acc)
        if entry is None:
            state = self.load(keys.account(acc))
            if state is None:
                raise StoreError("not_found", f"account {acc} does not exist")
            entry = self._accounts[acc] = _AccountChanges(state)
        return entry.state

    def change_id(self, acc: int) -> int:
        """The change id (= MODSEQ) of this operation in ``acc``, allocated on first use."""
        self.account_state(acc)
        entry = self._accounts[acc]
        if not entry.change:
            entry.change = entry.state["change"] + 1
            entry.state["change"] = entry.change
        return entry.change

    def changed(self, acc: int, kind: str, what: str, ident: int) -> None:
        """Record that ``ident`` of JMAP type ``kind`` was created/updated/destroyed."""
        change = self.change_id(acc)
        entry = self._accounts[acc]
        created, updated, destroyed = entry.log.setdefault(kind, (set(), set(), set()))
        if what == "created":
            created.add(ident)
        elif what == "updated":
            if ident not in created:
                updated.add(ident)
        else:
            if ident in created:
                created.discard(ident)
            else:
                updated.discard(ident)
                destroyed.add(ident)
        entry.state["states"][kind] = change

    def finish(self) -> dict[int, dict]:
        """Write account states and change-log records; return the events to publish:
        ``{account: {"change": last change id, "types": [JMAP types changed]}}``."""
        events: dict[int, dict] = {}
        for acc, subs in self.extra_events.items():
            for event in subs:
                merged = events.setdefault(acc, {"change": 0, "types": []})
                merged["change"] = max(merged["change"], event["change"])
                merged["types"] = sorted(set(merged["types"]) | set(event["types"]))
        for acc, entry in self._accounts.items():
            if entry.state.get("_deleted"):
                continue
            self.store(keys.account(acc), entry.state)
            if entry.change:
                record = {k: [sorted(c), sorted(u), sorted(d)] for k, (c, u, d) in entry.log.items()}
                self.store(keys.changelog(acc, entry.change), record)
                merged = events.setdefault(acc, {"change": 0, "types": []})
                merged["change"] = max(merged["change"], entry.change)
                merged["types"] = sorted(set(merged["types"]) | set(entry.log))
        return events

    def forget_account(self, acc: int) -> None:
        entry = self._accounts.get(acc)
        if entry is not None:
            entry.state["_deleted"] = True


# --------------------------------------------------------------------------- the engine

class Engine:
    """Runs operations. ``blob_exists(hash) -> bool`` guards against dangling blob refs."""

    def __init__(self, blob_exists: Callable[[bytes], bool]) -> None:
        self.blob_exists = blob_exists

    def execute(self, txn: Txn, op: str, args: Any) -> tuple[Any, dict[int, dict]]:
        fn = OPERATIONS.get(op) if isinstance(op, str) else None
        if fn is None:
            raise StoreError("invalid", f"unknown operation {op!r}")
        if not isinstance(args, dict):
            raise StoreError("invalid", f"arguments of {op} must be a map")
        ctx = OpCtx(txn, self)
        try:
            result = fn(ctx, **args)
        except TypeError as exc:
            # Wrong or missing argument names: the caller's bug, reported, nothing written.
            raise StoreError("invalid", f"{op}: {exc}") from None
        return result, ctx.finish()


OPERATIONS: dict[str, Callable[..., Any]] = {}


def operation(fn: Callable[..., Any]) -> Callable[..., Any]:
    OPERATIONS[fn.__name__] = fn
    return fn


# --------------------------------------------------------------------------- directory

def _principal_by_name(c: OpCtx, name: Any) -> tuple[int, dict]:
    name = _str(name, "account name")
    raw = c.txn.get(keys.name_idx(name))
    if raw is None:
        raise StoreError("not_found", f"account {name!r} does not exist")
    acc = keys.read_u32(raw)
    return acc, c.load(keys.principal(acc))


def _check_domain_exists(c: OpCtx, address: str) -> None:
    dom = address.rpartition("@")[2]
    record = c.load(keys.domain(dom))
    if record is None:
        raise StoreError("invalid", f"domain {dom!r} of {address!r} is not a local domain")
    if record.get("alias_of"):
        raise StoreError("invalid", f"{dom!r} is an alias domain; use an address in "
                                    f"{record['alias_of']!r}")


def _add_emails(c: OpCtx, acc: int, emails: list[str]) -> None:
    for address in emails:
        _check_domain_exists(c, address)
        existing = c.txn.get(keys.email_idx(address))
        if existing is not None and keys.read_u32(existing) != acc:
            raise StoreError("exists", f"address {address!r} belongs to another account")
        c.txn.put(keys.email_idx(address), keys.u32(acc))


def _normalize_emails(value: Any) -> list[str]:
    _require(isinstance(value, (list, tuple)), "emails must be a list")
    _require(len(value) <= MAX_EMAILS_PER_ACCOUNT, "too many addresses")
    out: list[str] = []
    for address in value:
        address = normalize_address(address)
        if address not in out:
            out.append(address)
    return out


@operation
def create_domain(c: OpCtx, name: Any, alias_of: Any = None) -> dict:
    name = normalize_domain(name)
    if c.txn.get(keys.domain(name)) is not None:
        raise StoreError("exists", f"domain {name!r} already exists")
    if alias_of is not None:
        alias_of = normalize_domain(alias_of)
        target = c.load(keys.domain(alias_of))
        if target is None:
            raise StoreError("not_found", f"domain {alias_of!r} does not exist")
        if target.get("alias_of"):
            raise StoreError("invalid", f"{alias_of!r} is itself an alias domain")
        _require(alias_of != name, "a domain cannot be an alias of itself")
    record = {"name": name, "catch_all": None, "alias_of": alias_of}
    c.store(keys.domain(name), record)
    return record


@operation
def delete_domain(c: OpCtx, name: Any) -> None:
    name = normalize_domain(name)
    if c.txn.get(keys.domain(name)) is None:
        raise StoreError("not_found", f"domain {name!r} does not exist")
    prefix = keys.email_idx_domain_prefix(name)
    for _ in c.txn.scan(prefix, keys.prefix_end(prefix)):
        raise StoreError("in_use", f"domain {name!r} still has addresses; delete or move "
                                   f"those accounts first")
    for _, raw in c.txn.scan(keys.DOMAIN, keys.prefix_end(keys.DOMAIN)):
        other = unpack(raw)
        if other.get("alias_of") == name:
            raise StoreError("in_use", f"domain {other['name']!r} is an alias of {name!r}")
    c.txn.delete(keys.domain(name))


@operation
def set_catch_all(c: OpCtx, domain: Any, account: Any = None) -> dict:
    domain = normalize_domain(domain)
    record = c.load(keys.domain(domain))
    if record is None:
        raise StoreError("not_found", f"domain {domain!r} does not exist")
    if account is None:
        record["catch_all"] = None
    else:
        acc, _ = _principal_by_name(c, account)
        record["catch_all"] = acc
    c.store(keys.domain(domain), record)
    return record


@operation
def create_account(c: OpCtx, name: Any, secret: Any = None, emails: Any = (),
                   display_name: Any = "", quota: Any = 0, disabled: Any = False,
                   type: Any = "individual") -> dict:
    name = _str(name, "account name").strip()
    _require(all(ch.isprintable() and not ch.isspace() for ch in name),
             "account name must not contain spaces or control characters")
    if secret is not None:
        _str(secret, "secret", max_len=1024)
    display_name = _str(display_name, "display name", allow_empty=True)
    quota = _int(quota, "quota")
    _require(isinstance(disabled, bool), "disabled must be true or false")
    _require(type in ("individual", "admin", "group"), "type must be individual, admin or group")
    emails = _normalize_emails(emails)
    if c.txn.get(keys.name_idx(name)) is not None:
        raise StoreError("exists", f"account {name!r} already exists")
    acc = c.meta_counter("next_account", 1)
    _require(acc < 2**32, "account ids exhausted")
    _add_emails(c, acc, emails)
    c.txn.put(keys.name_idx(name), keys.u32(acc))
    record = {"name": name, "secret": secret, "emails": emails, "display_name": display_name,
              "quota": quota, "disabled": disabled, "type": type, "created": c.now}
    c.store(keys.principal(acc), record)
    c.store(keys.account(acc), {"change": 0, "used": 0, "next_mailbox": 1, "next_email": 1,
                                "next_thread": 1, "states": {}})
    for mname, role in DEFAULT_MAILBOXES:
        _new_mailbox(c, acc, mname, 0, role, True)
    return {"id": acc, **public_account(record, 0)}


def public_account(record: dict, used: int) -> dict:
    return {"name": record["name"], "emails": list(record["emails"]),
            "display_name": record["display_name"], "quota": record["quota"],
            "used": used, "disabled": record["disabled"], "type": record["type"]}


@operation
def update_account(c: OpCtx, name: Any, **changes: Any) -> dict:
    acc, record = _principal_by_name(c, name)
    allowed = {"secret", "display_name", "quota", "disabled", "emails", "add_emails",
               "remove_emails", "type", "new_name"}
    unknown = set(changes) - allowed
    _require(not unknown, f"unknown account fields: {', '.join(sorted(unknown))}")
    if "secret" in changes:
        if changes["secret"] is not None:
            _str(changes["secret"], "secret", max_len=1024)
        record["secret"] = changes["secret"]
    if "display_name" in changes:
        record["display_name"] = _str(changes["display_name"], "display name", allow_empty=True)
    if "quota" in changes:
        record["quota"] = _int(changes["quota"], "quota")
    if "disabled" in changes:
        _require(isinstance(changes["disabled"], bool), "disabled must be true or false")
        record["disabled"] = changes["disabled"]
    if "type" in changes:
        _require(changes["type"] in ("individual", "admin", "group"),
                 "type must be individual, admin or group")
        record["type"] = changes["type"]
    emails = list(record["emails"])
    if "emails" in changes:
        emails = _normalize_emails(changes["emails"])
    if "add_emails" in changes:
        for a in _normalize_emails(changes["add_emails"]):
            if a not in emails:
                emails.append(a)
    if "remove_emails" in changes:
        gone = set(_normalize_emails(changes["remove_emails"]))
        missing = gone - set(emails)
        if missing:
            raise StoreError("not_found", f"{', '.join(sorted(missing))} not an address of "
                                          f"{record['name']!r}")
        emails = [a for a in emails if a not in gone]
    if emails != record["emails"]:
        for a in set(record["emails"]) - set(emails):
            c.txn.delete(keys.email_idx(a))
        _add_emails(c, acc, [a for a in emails if a not in record["emails"]])
        record["emails"] = emails
    if "new_name" in changes:
        new_name = _str(changes["new_name"], "account name").strip()
        if new_name.lower() != record["name"].lower():
            if c.txn.get(keys.name_idx(new_name)) is not None:
                raise StoreError("exists", f"account {new_name!r} already exists")
            c.txn.delete(keys.name_idx(record["name"]))
            c.txn.put(keys.name_idx(new_name), keys.u32(acc))
        record["name"] = new_name
    c.store(keys.principal(acc), record)
    state = c.load(keys.account(acc)) or {}
    return {"id": acc, **public_account(record, state.get("used", 0))}


@operation
def delete_account(c: OpCtx, name: Any) -> dict:
    """Delete an account and all its mail. Returns the blob hashes that lost a reference."""
    acc, record = _principal_by_name(c, name)
    c.txn.delete(keys.name_idx(record["name"]))
    for address in record["emails"]:
        c.txn.delete(keys.email_idx(address))
    c.txn.delete(keys.principal(acc))
    for _, raw in list(c.txn.scan(keys.DOMAIN, keys.prefix_end(keys.DOMAIN))):
        dom = unpack(raw)
        if dom.get("catch_all") == acc:
            dom["catch_all"] = None
            c.store(keys.domain(dom["name"]), dom)
    prefix = keys.account_prefix(keys.EMAIL, acc)
    for _, raw in list(c.txn.scan(prefix, keys.prefix_end(prefix))):
        _unref_blob(c, unpack(raw)["blob"])
    for sub in keys.ACCOUNT_SUBSPACES:
        prefix = keys.account_prefix(sub, acc)
        for k, _ in list(c.txn.scan(prefix, keys.prefix_end(prefix))):
            c.txn.delete(k)
    c.forget_account(acc)
    return {"id": acc}


# --------------------------------------------------------------------------- mailboxes

def _load_mailbox(c: OpCtx, acc: int, mbox: Any) -> dict:
    _int(mbox, "mailbox id", maximum=2**32 - 1)
    record = c.load(keys.mailbox(acc, mbox))
    if record is None:
        raise StoreError("not_found", f"mailbox {mbox} does not exist")
    return record


def _mailboxes(c: OpCtx, acc: int):
    prefix = keys.account_prefix(keys.MAILBOX, acc)
    for k, raw in c.txn.scan(prefix, keys.prefix_end(prefix)):
        yield keys.mailbox_id_from_key(k), unpack(raw)


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


# --------------------------------------------------------------------------- messages

def _ref_blob(c: OpCtx, blob: bytes) -> None:
    raw = c.txn.get(keys.blob_ref(blob))
    c.txn.put(keys.blob_ref(blob), keys.u32((keys.read_u32(raw) if raw else 0) + 1))


def _unref_blob(c: OpCtx, blob: bytes) -> None:
    raw = c.txn.get(keys.blob_ref(blob))
    count = keys.read_u32(raw) - 1 if raw else 0
    if count > 0:
        c.txn.put(keys.blob_ref(blob), keys.u32(count))
    else:
        c.txn.delete(keys.blob_ref(blob))


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
