"""Operations on the internal directory: domains and accounts."""

from __future__ import annotations

from typing import Any

from .. import keys
from ..errors import StoreError
from ..engine import (
    DEFAULT_MAILBOXES, MAX_EMAILS_PER_ACCOUNT, OpCtx, _int, _require, _str, normalize_address, normalize_domain,
    operation, unpack,
)
from .common import _unref_blob
from .mailboxes import _new_mailbox


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
        if c.txn.get(keys.forward(address)) is not None:      # ops/forward.py
            raise StoreError("exists", f"address {address!r} is a forwarding alias")
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
    prefix = keys.forward_domain_prefix(name)                # ops/forward.py
    for _ in c.txn.scan(prefix, keys.prefix_end(prefix)):
        raise StoreError("in_use", f"domain {name!r} still has forwarding aliases; delete "
                                   f"them first")
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
                   type: Any = "individual", scram: Any = None) -> dict:
    name = _str(name, "account name").strip()
    _require(all(ch.isprintable() and not ch.isspace() for ch in name),
             "account name must not contain spaces or control characters")
    if secret is not None:
        _str(secret, "secret", max_len=1024)
    if scram is not None:
        _str(scram, "scram credentials", max_len=1024)
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
    record = {"name": name, "secret": secret, "scram": scram, "emails": emails,
              "display_name": display_name,
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
    allowed = {"secret", "scram", "display_name", "quota", "disabled", "emails", "add_emails",
               "remove_emails", "type", "new_name"}
    unknown = set(changes) - allowed
    _require(not unknown, f"unknown account fields: {', '.join(sorted(unknown))}")
    if "secret" in changes:
        if changes["secret"] is not None:
            _str(changes["secret"], "secret", max_len=1024)
        record["secret"] = changes["secret"]
    if "scram" in changes:
        if changes["scram"] is not None:
            _str(changes["scram"], "scram credentials", max_len=1024)
        record["scram"] = changes["scram"]
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


