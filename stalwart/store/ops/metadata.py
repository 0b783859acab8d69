"""Store operations behind three IMAP features, and the junk-training hook on moves.

METADATA (RFC 5464)
    Entries live under ``keys.METADATA`` + owner u32 + mailbox u32 + user u32 + name:
    ``mailbox`` 0 is a server entry; ``user`` 0 holds ``/shared`` values, otherwise the
    ``/private`` value of that user. Server ``/shared`` entries have owner 0 (one set for
    the whole server, written by an administrator through ``Store.set_metadata(0, 0, ...)``).
    Entry names are case-insensitive (stored lower case), start with ``/private/`` or
    ``/shared/``, and are printable ASCII without ``*``, ``%``, ``//`` or a trailing ``/``.
    Limits: ``MAX_VALUE`` octets per value, ``MAX_ENTRIES`` entries per (owner, mailbox,
    user); a write over either is refused whole (``invalid`` / ``over_quota``). A change of
    a mailbox's entries (or of a user's private server entries) publishes an event of type
    ``"Metadata"`` to that account without spending a change id: metadata has no MODSEQ.

\\Recent (RFC 3501 2.3.2)
    A message is recent in exactly one session: the first that selects its mailbox
    read-write after it arrived. ``claim_recent`` moves the mailbox's watermark
    (``keys.RECENT``: the highest UID already claimed) up to UIDNEXT-1 and returns the UIDs
    it took; the single writer makes two sessions' claims disjoint. No change id, no event.

Deleting a mailbox (``delete_mailbox`` is wrapped) deletes its entries and watermark.

Junk training
    ``move``, ``copy`` and ``set_mailboxes`` are wrapped (at import, after messages.py
    registered them): in the same transaction as the change, a message that enters the
    mailbox with role ``junk`` records a ``spam`` event; one that leaves it for a mailbox
    other than Junk or Trash records a ``ham`` event. Events (``keys.JUNK_TRAIN``, global
    ids) hold a reference on the message's blob until ``consume_junk_events`` drops them,
    so the spam filter can still read a message expunged in the meantime.
"""

from __future__ import annotations

import functools
import re
import struct
from typing import Any

from .. import keys
from ..engine import OPERATIONS, OpCtx, _int, _require, operation
from ..errors import StoreError
from .common import _load_mailbox, _ref_blob, _unref_blob

#: Largest value of one entry (RFC 5464 4.3: the server reports it as MAXSIZE).
MAX_VALUE = 64 * 1024
#: Entries per mailbox (or server) and user; the next one is refused (TOOMANY).
MAX_ENTRIES = 256
#: Longest entry name.
MAX_NAME = 1024
#: Most entries one SETMETADATA may carry.
MAX_SET = 1000

_NAME_RE = re.compile(r"^/(private|shared)(/[\x21-\x2e\x30-\x7e]+)+$")  # no "/" inside
_ROOTS = ("/private", "/shared")
_U32X3 = struct.Struct(">III")


# --------------------------------------------------------------------------- names, keys

def check_entry(name: Any, *, allow_root: bool = False) -> str:
    """The canonical (lower-case) form of an entry name, or StoreError('invalid')."""
    _require(isinstance(name, str) and name, "entry name must be a non-empty string")
    _require(len(name) <= MAX_NAME, f"entry name is longer than {MAX_NAME} characters")
    low = name.lower()
    if allow_root and low in _ROOTS:
        return low
    _require(_NAME_RE.match(low) is not None and "//" not in low and
             not (set(low) & {"*", "%"}),
             f"invalid entry name {name[:80]!r} (RFC 5464 3.2: /private/... or /shared/..., "
             "printable ASCII, no '*', '%', '//' or trailing '/')")
    return low


def scope_of(entry: str, owner: int, mailbox: int, user: int) -> tuple[int, int, int]:
    """(owner, mailbox, user) of the key holding ``entry`` seen by ``user``."""
    if entry.startswith("/private"):
        return (owner if mailbox else user), mailbox, user
    return (owner if mailbox else 0), mailbox, 0


def meta_prefix(owner: int, mailbox: int, user: int) -> bytes:
    return keys.METADATA + _U32X3.pack(owner, mailbox, user)


def meta_key(owner: int, mailbox: int, user: int, entry: str) -> bytes:
    return meta_prefix(owner, mailbox, user) + entry.encode("ascii")


def recent_key(acc: int, mbox: int) -> bytes:
    return keys.RECENT + struct.pack(">II", acc, mbox)


def junk_key(event: int) -> bytes:
    return keys.JUNK_TRAIN + struct.pack(">Q", event)


# --------------------------------------------------------------------------- METADATA

def _count(c: OpCtx, prefix: bytes) -> int:
    return sum(1 for _ in c.txn.scan(prefix, keys.prefix_end(prefix)))


@operation
def set_metadata(c: OpCtx, account: Any, mailbox: Any, user: Any, entries: Any,
                 set_role: Any = False, role: Any = None) -> dict:
    """SETMETADATA: ``entries`` [[name, value bytes | None (remove)]], all or nothing.

    ``account`` owns the mailbox (0 with ``mailbox`` 0 for server-wide /shared entries);
    ``user`` is the account acting (its /private entries). With ``set_role`` the mailbox's
    role (its special use, RFC 6154 4 ``/private/specialuse``) becomes ``role`` in the same
    transaction (``update_mailbox``'s rules: a known role, one mailbox per role).
    Returns {"changed": [names]}.
    """
    owner = _int(account, "account", maximum=2**32 - 1)
    mbox = _int(mailbox, "mailbox", maximum=2**32 - 1)
    user = _int(user, "user", maximum=2**32 - 1)
    if owner:
        c.account_state(owner)
    if user:
        c.account_state(user)
    if mbox:
        _require(owner != 0, "a mailbox entry needs the mailbox's account")
        _load_mailbox(c, owner, mbox)
    _require(isinstance(entries, (list, tuple)) and (entries or set_role),
             "entries must be a non-empty list")
    _require(len(entries) <= MAX_SET, f"at most {MAX_SET} entries in one request")
    changed: list[str] = []
    prefixes: set[bytes] = set()
    for item in entries:
        _require(isinstance(item, (list, tuple)) and len(item) == 2,
                 "each entry must be [name, value]")
        name = check_entry(item[0])
        value = item[1]
        _require(value is None or isinstance(value, bytes), "an entry value must be bytes or null")
        if value is not None and len(value) > MAX_VALUE:
            raise StoreError("invalid", f"value of {name} is {len(value)} octets, over the "
                                        f"limit of {MAX_VALUE} (MAXSIZE {MAX_VALUE})")
        o, m, u = scope_of(name, owner, mbox, user)
        _require(name.startswith("/shared") or u != 0, "/private entries need a user")
        key = meta_key(o, m, u, name)
        if value is None:
            if c.txn.get(key) is not None:
                c.txn.delete(key)
                changed.append(name)
        else:
            c.txn.put(key, value)
            prefixes.add(meta_prefix(o, m, u))
            changed.append(name)
    for prefix in prefixes:
        if _count(c, prefix) > MAX_ENTRIES:
            raise StoreError("over_quota", f"too many metadata entries (limit {MAX_ENTRIES})")
    if set_role is True:
        _require(mbox != 0, "only a mailbox has a special use")
        OPERATIONS["update_mailbox"](c, account=owner, mailbox=mbox, role=role)
        changed.append("/private/specialuse")
    # Tell the sessions of the account concerned (NOTIFY MailboxMetadataChange and
    # ServerMetadataChange); the administrator's server /shared entries concern everyone
    # and are not announced.
    told = owner if mbox else user
    if changed and told:
        c.extra_events.setdefault(told, []).append(
            {"change": c.account_state(told)["change"], "types": ["Metadata"]})
    return {"changed": changed}


def read_metadata(kv, owner: int, mailbox: int, user: int, names: list[str],
                  depth: int | None = 0) -> list[tuple[str, bytes]]:
    """Entries named (canonical names), with descendants down to ``depth`` levels (None:
    all), in name order, as (name, value). Read side: ``kv`` has ``get`` and ``scan``."""
    found: dict[str, bytes] = {}
    for name in names:
        o, m, u = scope_of(name, owner, mailbox, user)
        if name.startswith("/private") and not u:
            continue  # no user: no private entries (an administrator's server read)
        if name not in _ROOTS:
            raw = kv.get(meta_key(o, m, u, name))
            if raw is not None:
                found[name] = raw
        if depth == 0:
            continue
        base = name.count("/")
        prefix = meta_prefix(o, m, u) + (name + "/").encode("ascii")
        for k, v in kv.scan(prefix, keys.prefix_end(prefix)):
            entry = k[len(prefix) - len(name) - 1:].decode("ascii")
            if depth is None or entry.count("/") - base <= depth:
                found[entry] = v
    return sorted(found.items())


# --------------------------------------------------------------------------- \Recent

@operation
def claim_recent(c: OpCtx, account: Any, mailbox: Any) -> dict:
    """Take every UID above the mailbox's watermark as recent for the caller's session.

    Returns {"first": lowest UID taken, "last": highest}; first > last when nothing new.
    """
    acc = _int(account, "account", maximum=2**32 - 1)
    mbox = _int(mailbox, "mailbox", maximum=2**32 - 1)
    mrec = _load_mailbox(c, acc, mbox)
    raw = c.txn.get(recent_key(acc, mbox))
    mark = keys.read_u32(raw) if raw else 0
    top = mrec["uidnext"] - 1
    if top > mark:
        c.txn.put(recent_key(acc, mbox), keys.u32(top))
    return {"first": mark + 1, "last": top}


def recent_mark(kv, acc: int, mbox: int) -> int:
    raw = kv.get(recent_key(acc, mbox))
    return keys.read_u32(raw) if raw else 0


# --------------------------------------------------------------------------- junk training

def _role(c: OpCtx, acc: int, mbox: int) -> str | None:
    record = c.load(keys.mailbox(acc, mbox))
    return None if record is None else record.get("role")


def _train(c: OpCtx, acc: int, eid: int, kind: str, mailbox: int) -> None:
    email = c.load(keys.email(acc, eid))
    if email is None:
        return
    event = c.meta_counter("junk_event", 1)
    _ref_blob(c, email["blob"])
    c.store(junk_key(event), {"account": acc, "email": eid, "blob": email["blob"],
                              "size": email["size"], "class": kind, "time": c.now,
                              "mailbox": mailbox})


def _verdict(old_roles: set, new_roles: set) -> str | None:
    """spam when the message entered Junk; ham when it left Junk for a mailbox that is
    neither Junk nor Trash; None otherwise."""
    if "junk" in new_roles and "junk" not in old_roles:
        return "spam"
    if "junk" in old_roles and "junk" not in new_roles and (new_roles - {"trash"}):
        return "ham"
    return None


def _wrap(name: str):
    def decorate(hook):
        inner = OPERATIONS[name]

        @functools.wraps(inner)
        def run(c: OpCtx, **args: Any) -> Any:
            return hook(inner, c, **args)

        OPERATIONS[name] = run
        return run
    return decorate


@_wrap("move")
def _move_trains(inner, c: OpCtx, **args: Any) -> Any:
    result = inner(c, **args)
    acc, src, dst = args.get("account"), args.get("source"), args.get("mailbox")
    kind = _verdict({_role(c, acc, src)}, {_role(c, acc, dst)})
    if kind is not None:
        for moved in result:
            _train(c, acc, moved["id"], kind, dst)
    return result


@_wrap("copy")
def _copy_trains(inner, c: OpCtx, **args: Any) -> Any:
    result = inner(c, **args)
    acc, dst = args.get("account"), args.get("mailbox")
    dst_role = _role(c, acc, dst)
    for copied in result:
        source = c.load(keys.email(acc, copied["source"]))
        old_roles = {_role(c, acc, m) for m in (source or {}).get("mb", {})}
        kind = None
        if dst_role == "junk" and "junk" not in old_roles:
            kind = "spam"
        elif "junk" in old_roles and dst_role not in ("junk", "trash"):
            kind = "ham"
        if kind is not None:
            _train(c, acc, copied["id"], kind, dst)
    return result


@_wrap("set_mailboxes")
def _set_mailboxes_trains(inner, c: OpCtx, **args: Any) -> Any:
    acc, eid = args.get("account"), args.get("id")
    before = c.load(keys.email(acc, eid)) if isinstance(acc, int) and isinstance(eid, int) \
        else None
    old_roles = {_role(c, acc, m) for m in (before or {}).get("mb", {})}
    result = inner(c, **args)
    new_roles = {_role(c, acc, m) for m in result["mailboxes"]}
    kind = _verdict(old_roles, new_roles)
    if kind is not None:
        wanted = (lambda r: r == "junk") if kind == "spam" else \
            (lambda r: r not in ("junk", "trash"))
        target = next((m for m in sorted(result["mailboxes"]) if wanted(_role(c, acc, m))), 0)
        _train(c, acc, eid, kind, target)
    return result


@_wrap("delete_mailbox")
def _delete_mailbox_forgets(inner, c: OpCtx, **args: Any) -> Any:
    """A deleted mailbox takes its METADATA entries and \\Recent watermark along."""
    result = inner(c, **args)
    acc, mbox = args.get("account"), result["id"]
    prefix = keys.METADATA + struct.pack(">II", acc, mbox)
    for k, _ in list(c.txn.scan(prefix, keys.prefix_end(prefix))):
        c.txn.delete(k)
    c.txn.delete(recent_key(acc, mbox))
    return result


@operation
def consume_junk_events(c: OpCtx, ids: Any) -> dict:
    """The spam filter has learnt from these events: delete them, release their blobs."""
    _require(isinstance(ids, (list, tuple)), "ids must be a list")
    _require(len(ids) <= 100_000, "too many ids")
    consumed, missing = [], []
    for event in ids:
        event = _int(event, "event id", minimum=1)
        record = c.load(junk_key(event))
        if record is None:
            missing.append(event)
            continue
        c.txn.delete(junk_key(event))
        _unref_blob(c, record["blob"])
        consumed.append(event)
    return {"consumed": consumed, "missing": missing}


def list_junk_events(kv, limit: int = 100, after: int = 0) -> list[dict]:
    """Pending training events with id > ``after``, oldest first."""
    from ..engine import unpack

    out = []
    start = junk_key(after + 1)
    for k, v in kv.scan(start, keys.prefix_end(keys.JUNK_TRAIN)):
        out.append({"id": struct.unpack_from(">Q", k, 1)[0], **unpack(v)})
        if len(out) >= limit:
            break
    return out
