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



# The operations register themselves with @operation when their modules are imported.
from .ops import directory as _directory, mailboxes as _mailboxes, messages as _messages  # noqa: E402,F401
from .ops import queue as _queue  # noqa: E402,F401
from .ops import acl as _acl  # noqa: E402,F401
from .ops import metadata as _metadata  # noqa: E402,F401  (after messages: wraps move/copy)
from .ops import dedup as _dedup  # noqa: E402,F401  (deliver_once)
from .ops import fts as _fts  # noqa: E402,F401  (full-text index, stalwart/fts.py)
from .ops import reports as _reports  # noqa: E402,F401  (DMARC rows, received reports)
from .ops import dkim as _dkim  # noqa: E402,F401  (DKIM signing keys)
from .ops import forward as _forward  # noqa: E402,F401  (forwarding aliases)
