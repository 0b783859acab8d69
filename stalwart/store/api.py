"""The mail-level store API: the one module every protocol uses to read and change mail.

    store = await Store.open(config)   # in a worker: writes go to the store process,
                                       # reads come from this process's RocksDB secondary
    store = Store.memory()             # in-process engine over memory, for unit tests

Writes are ``async`` and return only once the change is durable (group commit in the store
process, see server.py). Reads are plain calls that return at once from the local reader.

Read-your-writes: every reply carries the sequence number of its commit, and every change
event carries one too. The store remembers the highest it has heard of; a read first checks
the secondary's ``latest_sequence_number()`` and catches up only when it is behind. A read
method never catches up in the middle, so one call sees one consistent state.

Change events: ``store.subscribe(callback)`` calls ``callback(account, change, types)`` for
every committed change (IMAP IDLE, JMAP push, cache invalidation).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable

from . import reader
from .blobs import BlobStore, MemoryBlobStore
from .engine import Engine, normalize_address
from .errors import StoreError
from .kv import MemoryKV, Txn

EventCallback = Callable[[int, int, list], None]
#: Successful password checks remembered per process (seconds, entries): see authenticate.
AUTH_CACHE_TTL = 300.0
AUTH_CACHE_SIZE = 10000


def _password_hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_secret(password: str) -> str:
    """argon2id hash of a password (argon2-cffi's defaults: RFC 9106's second choice)."""
    if not isinstance(password, str) or not password:
        raise StoreError("invalid", "password must be a non-empty string")
    if len(password) > 1024:
        raise StoreError("invalid", "password is longer than 1024 characters")
    return _password_hasher().hash(password)


def password_secrets(password: str) -> tuple[str, str]:
    """Both stored forms of a password: the argon2id hash (PLAIN, LOGIN, HTTP Basic) and the
    RFC 5803 SCRAM-SHA-256 credentials (StoredKey/ServerKey; SCRAM cannot work from an
    argon2 hash). CPU-heavy: call it in a thread."""
    from ..sasl.scram import ScramCredentials

    return hash_secret(password), ScramCredentials.from_password(password).to_string()


def verify_secret(stored: str | None, password: str) -> bool:
    """Check a password against an argon2 hash. Never raises for a bad password or hash."""
    if not stored or not isinstance(password, str):
        return False
    if stored.startswith("$argon2"):
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return _password_hasher().verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return False


class _LocalWriter:
    """Runs operations in this process (memory backend): each one is durable at once."""

    def __init__(self, kv: MemoryKV, blobs, on_event: Callable[[dict, int], None]) -> None:
        self.kv = kv
        self.engine = Engine(blobs.exists)
        self.on_event = on_event

    async def call(self, op: str, args: dict) -> tuple[Any, int]:
        txn = Txn(self.kv)
        result, events = self.engine.execute(txn, op, args)
        seq = self.kv.apply(txn.writes)
        if events:
            self.on_event(events, seq)
        return result, seq

    async def close(self) -> None:
        pass


class Store:
    """Facade over a writer (store process or local engine) and a local reader."""

    def __init__(self, writer, kv, blobs, catch_up: Callable[[], int] | None = None) -> None:
        self._writer = writer
        self._kv = kv
        self.blobs = blobs
        self._catch_up = catch_up
        self._needed = 0
        self._subscribers: list[EventCallback] = []
        self._auth_cache: dict[bytes, float] = {}   # verified credentials -> expiry
        self._auth_pending: dict[bytes, asyncio.Future] = {}   # checks in progress

    # ------------------------------------------------------------------ construction
    @classmethod
    def memory(cls) -> "Store":
        kv = MemoryKV()
        blobs = MemoryBlobStore()
        store = cls(None, kv, blobs)
        store._writer = _LocalWriter(kv, blobs, store._on_event)
        return store

    @classmethod
    async def open(cls, config, *, name: str | None = None, subscribe: bool = True,
                   connect_timeout: float = 10.0) -> "Store":
        """Connect a worker to the store process and open its own secondary.

        With ``subscribe`` (the default) the connection receives every commit's sequence
        number, so reads in this process see every change committed anywhere before them
        (up to the IPC delay of the announcement); ``subscribe=False`` is for short-lived
        tools that only read their own writes.

        ``name`` identifies the secondary's directory (default: this process's pid); the
        directory is removed when the store is closed.
        """
        settings = config.store
        if settings.type != "rocksdb":
            raise StoreError("invalid", f"Store.open serves rocksdb stores, not {settings.type!r}")
        return await cls.connect(Path(settings.path), Path(settings.blob_path),
                                 Path(config.run_dir) / "store.sock",
                                 Path(config.run_dir) / "secondary" / (name or str(os.getpid())),
                                 subscribe=subscribe, connect_timeout=connect_timeout)

    @classmethod
    async def connect(cls, data_path: Path, blob_path: Path, socket_path: Path,
                      secondary_path: Path, *, subscribe: bool = True,
                      connect_timeout: float = 10.0) -> "Store":
        from .backends.rocksdb import RocksSecondary
        from .client import StoreClient

        store = cls(None, None, BlobStore(blob_path))
        client = StoreClient(socket_path, connect_timeout=connect_timeout,
                             on_event=store._on_event if subscribe else None)
        store._writer = client
        # The primary must exist before a secondary can open it: one round trip to the
        # store process guarantees that (and tells us how far it is).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_timeout
        while True:
            try:
                _, seq = await client.call("ping", {})
                break
            except StoreError as exc:
                # The store may be restarting (respawned after a crash): keep trying.
                if exc.code != "unavailable" or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        secondary = RocksSecondary(Path(data_path), Path(secondary_path))
        store._kv = secondary
        store._catch_up = secondary.catch_up
        store._secondary_path = Path(secondary_path)
        store._needed = seq
        return store

    async def close(self) -> None:
        await self._writer.close()
        close = getattr(self._kv, "close", None)
        if close is not None:
            close()
        path = getattr(self, "_secondary_path", None)
        if path is not None:
            import shutil

            shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ plumbing
    def _on_event(self, events: dict, seqno: int) -> None:
        if seqno > self._needed:
            self._needed = seqno
        for acc, event in events.items():
            for callback in list(self._subscribers):
                callback(int(acc), event["change"], event["types"])

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(account, change, types)`` after each committed change."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    async def _write(self, op: str, **args: Any) -> Any:
        result, seqno = await self._writer.call(op, args)
        if seqno > self._needed:
            self._needed = seqno
        return result

    @property
    def kv(self):
        """The reader, caught up to everything this process has heard was committed."""
        if self._catch_up is not None and self._kv.latest_sequence_number() < self._needed:
            self._catch_up()
        return self._kv

    def refresh(self) -> None:
        """Catch up with the writer now (at a request boundary), whatever we heard of."""
        if self._catch_up is not None:
            self._catch_up()

    # ------------------------------------------------------------------ domains
    async def create_domain(self, name: str, *, alias_of: str | None = None) -> dict:
        return await self._write("create_domain", name=name, alias_of=alias_of)

    def list_domains(self) -> list[dict]:
        return reader.list_domains(self.kv)

    def get_domain(self, name: str) -> dict | None:
        return reader.get_domain(self.kv, name)

    async def delete_domain(self, name: str) -> None:
        await self._write("delete_domain", name=name)

    async def set_catch_all(self, domain: str, account: str | None) -> dict:
        return await self._write("set_catch_all", domain=domain, account=account)

    # ------------------------------------------------------------------ accounts
    async def create_account(self, name: str, *, password: str | None = None, emails=(),
                             display_name: str = "", quota: int = 0, disabled: bool = False,
                             type: str = "individual") -> dict:
        secret = scram = None
        if password is not None:
            secret, scram = await asyncio.get_running_loop().run_in_executor(
                None, password_secrets, password)
        return await self._write("create_account", name=name, secret=secret, scram=scram,
                                 emails=list(emails), display_name=display_name, quota=quota,
                                 disabled=disabled, type=type)

    def get_account(self, name_or_id) -> dict | None:
        return reader.get_account(self.kv, name_or_id)

    def list_accounts(self, domain: str | None = None) -> list[dict]:
        return reader.list_accounts(self.kv, domain)

    async def update_account(self, name: str, **changes: Any) -> dict:
        if "password" in changes:
            password = changes.pop("password")
            if password is None:
                changes["secret"] = changes["scram"] = None
            else:
                changes["secret"], changes["scram"] = await asyncio.get_running_loop() \
                    .run_in_executor(None, password_secrets, password)
        for key in ("emails", "add_emails", "remove_emails"):
            if key in changes and changes[key] is not None:
                changes[key] = list(changes[key])
        return await self._write("update_account", name=name, **changes)

    async def delete_account(self, name: str) -> None:
        await self._write("delete_account", name=name)

    def resolve_address(self, address: str) -> int | None:
        return reader.resolve_address(self.kv, address)

    def is_local_domain(self, domain: str) -> bool:
        return reader.is_local_domain(self.kv, domain)

    # ------------------------------------------------------------------ forwarding aliases
    # Records and rules: stalwart/store/ops/forward.py.
    def resolve_recipient(self, address: str) -> dict | None:
        """``{"account": id}``, an expanded forward ``{"forward", "accounts", "remote"}``,
        or None (see ``reader.resolve_recipient``)."""
        return reader.resolve_recipient(self.kv, address)

    async def forward_create(self, address: str, targets: list[str]) -> dict:
        return await self._write("forward_create", address=address,
                                 targets=list(targets) if isinstance(targets, (list, tuple))
                                 else targets)

    async def forward_update(self, address: str, targets: list[str]) -> dict:
        return await self._write("forward_update", address=address,
                                 targets=list(targets) if isinstance(targets, (list, tuple))
                                 else targets)

    async def forward_delete(self, address: str) -> None:
        await self._write("forward_delete", address=address)

    def get_forward(self, address: str) -> dict | None:
        return reader.get_forward(self.kv, address)

    def list_forwards(self, domain: str | None = None) -> list[dict]:
        return reader.list_forwards(self.kv, domain)

    def expand_forward(self, address: str):
        return reader.expand_forward(self.kv, address)

    async def authenticate(self, login: str, password: str) -> dict | None:
        """The account for ``login`` (its name or any of its addresses) if ``password`` is
        right and the account is enabled; else None. Hash checking runs in a thread."""
        kv = self.kv
        acc = reader.account_id(kv, login)
        if acc is None:
            return None
        record = reader.get_principal(kv, acc)
        if record is None or record.get("disabled"):
            return None
        # Verified-credentials cache (like Dovecot's auth_cache): an argon2id check costs
        # about 0.5 s of CPU here, and clients log in over and over. The key binds the
        # stored hash too, so a password change or reset misses at once.
        secret = record.get("secret")
        key = None
        if isinstance(secret, str) and isinstance(password, str):
            key = hashlib.sha256(f"{acc}\0{secret}\0{password}".encode(
                "utf-8", "surrogatepass")).digest()
            now = time.monotonic()
            if self._auth_cache.get(key, 0.0) > now:
                return reader.get_account(kv, acc)
            # Logins with the same credentials at the same moment (a client opening many
            # connections) share one check rather than each paying for it.
            pending = self._auth_pending.get(key)
            if pending is not None:
                ok = await asyncio.shield(pending)
                return reader.get_account(self.kv, acc) if ok else None
        future = asyncio.get_running_loop().run_in_executor(None, verify_secret, secret, password)
        if key is not None:
            self._auth_pending[key] = future
        try:
            ok = await future
        finally:
            if key is not None:
                self._auth_pending.pop(key, None)
        if ok and key is not None:
            if len(self._auth_cache) >= AUTH_CACHE_SIZE:
                self._auth_cache.pop(next(iter(self._auth_cache)))
            self._auth_cache[key] = time.monotonic() + AUTH_CACHE_TTL
        return reader.get_account(self.kv, acc) if ok else None

    def get_scram_credentials(self, login: str) -> str | None:
        """RFC 5803 SCRAM-SHA-256 credentials of an enabled account, for SASL SCRAM."""
        kv = self.kv
        acc = reader.account_id(kv, login)
        record = None if acc is None else reader.get_principal(kv, acc)
        if record is None or record.get("disabled"):
            return None
        return record.get("scram")

    # ------------------------------------------------------------------ mailboxes
    def list_mailboxes(self, account: int) -> list[dict]:
        return reader.list_mailboxes(self.kv, account)

    def get_mailbox(self, account: int, mailbox: int) -> dict | None:
        return reader.get_mailbox(self.kv, account, mailbox)

    def find_mailbox(self, account: int, path: str, sep: str = "/") -> dict | None:
        return reader.find_mailbox(self.kv, account, path, sep)

    async def create_mailbox(self, account: int, name: str, *, parent: int = 0,
                             role: str | None = None, subscribed: bool = True) -> dict:
        return await self._write("create_mailbox", account=account, name=name, parent=parent,
                                 role=role, subscribed=subscribed)

    async def update_mailbox(self, account: int, mailbox: int, **changes: Any) -> dict:
        return await self._write("update_mailbox", account=account, mailbox=mailbox, **changes)

    async def delete_mailbox(self, account: int, mailbox: int, *, remove_emails: bool = True) -> dict:
        return await self._write("delete_mailbox", account=account, mailbox=mailbox,
                                 remove_emails=remove_emails)

    # ------------------------------------------------------------------ messages
    def mailbox_uids(self, account: int, mailbox: int) -> list[tuple[int, int]]:
        return reader.mailbox_uids(self.kv, account, mailbox)

    def mailbox_uids_after(self, account: int, mailbox: int,
                           uid: int) -> list[tuple[int, int]]:
        """[(uid, email id)] of the messages of ``mailbox`` with a UID above ``uid`` (IMAP:
        what arrived since the last UID a session knows)."""
        from . import keys

        prefix = keys.mailbox_uid_prefix(account, mailbox)
        start = keys.mailbox_uid(account, mailbox, uid + 1) if uid < 2**32 - 1 else \
            keys.prefix_end(prefix)
        return [(keys.uid_from_key(k), keys.read_u32(v))
                for k, v in self.kv.scan(start, keys.prefix_end(prefix))]

    def mailbox_messages(self, account: int, mailbox: int) -> list[tuple[int, int, list, int]]:
        """[(uid, email id, keywords, modseq)] in UID order, from one consistent read."""
        return reader.mailbox_messages(self.kv, account, mailbox)

    def get_email(self, account: int, email_id: int) -> dict | None:
        return reader.get_email(self.kv, account, email_id)

    def list_email_ids(self, account: int) -> list[int]:
        return reader.list_email_ids(self.kv, account)

    async def append(self, account: int, mailbox: int, message: bytes, *,
                     received: int | None = None, keywords=(), thread_keys: dict | None = None,
                     meta: Any = None) -> dict:
        """Store ``message`` (blob first, fsynced) and add it to ``mailbox``."""
        blob = await self.blobs.put_async(message)
        return await self._write("append", account=account, mailbox=mailbox, blob=blob,
                                 size=len(message), received=received, keywords=list(keywords),
                                 thread_keys=thread_keys, meta=meta)

    async def append_many(self, account: int, mailbox: int, items: list[dict], *,
                          actor: int | None = None) -> list[dict]:
        """MULTIAPPEND: ``items`` of {"message": bytes, "received", "keywords",
        "thread_keys", "meta"}; every blob is written first, then one atomic commit.
        An item may name a blob already written durably instead ({"blob": sha256,
        "size": octets}, e.g. an IMAP literal streamed to ``blobs.writer()``).
        ``actor``: the account doing it, when not the owner (ACL checked, see set_acl)."""
        wire = []
        for item in items:
            if "message" in item:
                message = item["message"]
                blob, size = await self.blobs.put_async(message), len(message)
            else:
                blob, size = item["blob"], item["size"]
            wire.append({"blob": blob, "size": size, "received": item.get("received"),
                         "keywords": list(item.get("keywords") or ()),
                         "thread_keys": item.get("thread_keys"), "meta": item.get("meta")})
        return await self._write_as(actor, mailbox, "append_many", account=account,
                                    mailbox=mailbox, items=wire)

    async def deliver(self, recipients: list[dict], message: bytes, *,
                      received: int | None = None, thread_keys: dict | None = None,
                      meta: Any = None) -> list[dict]:
        """Local delivery: one blob, one durable commit, a result per recipient."""
        blob = await self.blobs.put_async(message)
        return await self._write("deliver", recipients=recipients, blob=blob, size=len(message),
                                 received=received, thread_keys=thread_keys, meta=meta)

    async def deliver_once(self, recipients: list[dict], message: bytes, *, dedup: bytes,
                           window: int, received: int | None = None,
                           thread_keys: dict | None = None, meta: Any = None) -> list[dict]:
        """``deliver``, skipping accounts that received message key ``dedup`` within
        ``window`` seconds (``{"duplicate": True}``); recorded in the same commit
        (stalwart/store/ops/dedup.py)."""
        blob = await self.blobs.put_async(message)
        return await self._write("deliver_once", recipients=recipients, blob=blob,
                                 size=len(message), dedup=dedup, window=window,
                                 received=received, thread_keys=thread_keys, meta=meta)

    async def set_keywords(self, account: int, ids: list[int], *, add=(), remove=(),
                           replace=None, unchanged_since: int | None = None,
                           actor: int | None = None, mailbox: int | None = None) -> dict:
        """``actor`` and ``mailbox``: who does it and in which mailbox, when the actor is not
        the owner (every email must be in that mailbox; ACL checked, see set_acl)."""
        return await self._write_as(actor, mailbox, "set_keywords", account=account,
                                    ids=list(ids), add=list(add), remove=list(remove),
                                    replace=None if replace is None else list(replace),
                                    unchanged_since=unchanged_since)

    async def copy(self, account: int, ids: list[int], mailbox: int, *,
                   actor: int | None = None, source: int | None = None) -> list[dict]:
        """``actor``/``source``: who copies, from which mailbox, when not the owner."""
        return await self._write_as(actor, source, "copy", account=account, ids=list(ids),
                                    mailbox=mailbox)

    async def move(self, account: int, ids: list[int], source: int, mailbox: int, *,
                   actor: int | None = None) -> list[dict]:
        return await self._write_as(actor, source, "move", account=account, ids=list(ids),
                                    source=source, mailbox=mailbox)

    async def expunge(self, account: int, mailbox: int, uids: list[int], *,
                      actor: int | None = None) -> dict:
        return await self._write_as(actor, mailbox, "expunge", account=account,
                                    mailbox=mailbox, uids=list(uids))

    async def set_mailboxes(self, account: int, email_id: int, mailboxes: list[int]) -> dict:
        return await self._write("set_mailboxes", account=account, id=email_id,
                                 mailboxes=list(mailboxes))

    async def destroy(self, account: int, ids: list[int]) -> dict:
        return await self._write("destroy", account=account, ids=list(ids))

    def read_message(self, account: int, email_id: int) -> bytes:
        email = self.get_email(account, email_id)
        if email is None:
            raise StoreError("not_found", f"email {email_id} does not exist")
        return self.blobs.get(email["blob"])

    # ------------------------------------------------------------------ ACL (RFC 4314)
    # Rules and rights in stalwart/store/ops/acl.py. Writes by an account in another
    # account's mailbox pass ``actor=`` (append_many, set_keywords, copy, move, expunge) and
    # are checked by the store; StoreError("forbidden") when a right is missing.
    async def _write_as(self, actor: int | None, checked: int | None, op: str, /,
                        **args: Any) -> Any:
        """``op`` as the owner, or for ``actor`` with the rights on mailbox ``checked``."""
        if actor is None or actor == args["account"]:
            return await self._write(op, **args)
        return await self._write("as_user", actor=actor, operation=op, mailbox=checked,
                                 args=args)

    def rights(self, actor: int, account: int, mailbox: dict) -> str:
        """The rights (sorted letters) ``actor`` has on ``mailbox`` (a record of
        ``account``): all of them for the owner."""
        from .ops.acl import rights_in

        return rights_in(account, mailbox, actor)

    def shared_with(self, actor: int) -> list[tuple[int, dict, str]]:
        """Other accounts' mailboxes ``actor`` has rights on: [(owner, record, rights)]."""
        from .ops.acl import shared_with

        return shared_with(self.kv, actor)

    async def set_acl(self, account: int, mailbox: int, *, actor: int, grantee: int,
                      rights: str, mode: str = "replace") -> dict:
        """Set (``replace``), extend (``add``) or reduce (``remove``) ``grantee``'s rights on
        a mailbox; grantee 0 is "anyone". ``actor`` needs the "a" right."""
        return await self._write("set_acl", account=account, mailbox=mailbox, actor=actor,
                                 grantee=grantee, rights=rights, mode=mode)

    async def create_mailbox_as(self, actor: int, account: int, name: str, *, parent: int,
                                subscribed: bool = False) -> dict:
        """CREATE below a mailbox of another account ("k" on ``parent``)."""
        return await self._write_as(actor, parent, "create_mailbox", account=account,
                                    name=name, parent=parent, role=None, subscribed=subscribed)

    async def delete_mailbox_as(self, actor: int, account: int, mailbox: int) -> dict:
        """DELETE of another account's mailbox ("x" on it)."""
        return await self._write_as(actor, mailbox, "delete_mailbox", account=account,
                                    mailbox=mailbox, remove_emails=True)

    async def copy_across(self, actor: int, account: int, mailbox: int, ids: list[int],
                          dest_account: int, dest_mailbox: int) -> list[dict]:
        """COPY from a mailbox of ``account`` into one of ``dest_account`` ("r" on the
        source, "i" on the target, for whichever is not the actor's own)."""
        return await self._write("copy_across", actor=actor, account=account,
                                 mailbox=mailbox, ids=list(ids), dest_account=dest_account,
                                 dest_mailbox=dest_mailbox)

    # ------------------------------------------------------------------ queue
    # The contract is written out in stalwart/queue/store.py.
    async def queue_put(self, record: dict) -> int:
        return await self._write("queue_put", record=record)

    async def queue_update(self, id: int, record: dict) -> None:
        await self._write("queue_update", id=id, record=record)

    async def queue_delete(self, id: int) -> None:
        await self._write("queue_delete", id=id)

    def queue_get(self, id: int) -> dict | None:
        return reader.queue_get(self.kv, id)

    def queue_due(self, now: float, limit: int) -> list[dict]:
        return reader.queue_due(self.kv, now, limit)

    def queue_next_due(self) -> float | None:
        return reader.queue_next_due(self.kv)

    def queue_list(self, limit: int = 1000, after: int = 0) -> list[dict]:
        return reader.queue_list(self.kv, limit, after)

    # ------------------------------------------------------------------ DKIM keys
    # Records and rules: stalwart/store/ops/dkim.py; key material: stalwart/mailauth/keys.py.
    async def dkim_key_put(self, domain: str, selector: str, algorithm: str, private_key: str,
                           created: float | None = None) -> dict:
        return await self._write("dkim_key_put", domain=domain, selector=selector,
                                 algorithm=algorithm, private_key=private_key, created=created)

    async def dkim_key_delete(self, domain: str, selector: str) -> None:
        await self._write("dkim_key_delete", domain=domain, selector=selector)

    def dkim_keys(self, domain: str | None = None) -> list[dict]:
        """Every key record of ``domain`` (all domains when None), private keys included:
        for signing only, never for display."""
        from . import keys as _keys
        from .engine import normalize_domain, unpack
        from .ops.dkim import key_name

        if domain is None:
            prefix = key_name("")[:-1]
        else:
            try:
                prefix = key_name(normalize_domain(domain))
            except StoreError:
                return []
        kv = self.kv
        return [unpack(v) for _, v in kv.scan(prefix, _keys.prefix_end(prefix))]

    # ------------------------------------------------------------------ changes
    def account_state(self, account: int) -> dict | None:
        return reader.account_state(self.kv, account)

    def changes_since(self, account: int, collection: str, since: int,
                      max_changes: int = 0) -> dict:
        return reader.changes_since(self.kv, account, collection, since, max_changes)

    def vanished_since(self, account: int, mailbox: int, modseq: int) -> list[int]:
        return reader.vanished_since(self.kv, account, mailbox, modseq)

    # ------------------------------------------------------------------ METADATA, \\Recent, junk
    # Rules in stalwart/store/ops/metadata.py.
    async def set_metadata(self, account: int, mailbox: int, entries: list, *,
                           user: int = 0, role: Any = "unchanged") -> dict:
        """RFC 5464 SETMETADATA, all or nothing: ``entries`` [(name, bytes | None)].
        ``account``/``mailbox`` 0/0 are the server's entries; ``user`` owns /private ones.
        ``role`` (a mailbox role or None), unless "unchanged", also sets the mailbox's
        special use (RFC 6154 4) in the same commit."""
        extra = {} if role == "unchanged" else {"set_role": True, "role": role}
        return await self._write("set_metadata", account=account, mailbox=mailbox, user=user,
                                 entries=[[n, v] for n, v in entries], **extra)

    def get_metadata(self, account: int, mailbox: int, names: list[str], *, user: int = 0,
                     depth: int | None = 0) -> list[tuple[str, bytes]]:
        """Entries (canonical lower-case names) and their descendants down to ``depth``
        levels (None: every level), as sorted (name, value)."""
        from .ops.metadata import read_metadata

        return read_metadata(self.kv, account, mailbox, user, list(names), depth)

    async def claim_recent(self, account: int, mailbox: int) -> tuple[int, int]:
        """Claim the mailbox's new messages as \\Recent for one session: (first, last) UID;
        no other claim ever returns them."""
        result = await self._write("claim_recent", account=account, mailbox=mailbox)
        return result["first"], result["last"]

    def recent_mark(self, account: int, mailbox: int) -> int:
        """The highest UID of ``mailbox`` already claimed as \\Recent by some session."""
        from .ops.metadata import recent_mark

        return recent_mark(self.kv, account, mailbox)

    def junk_events(self, limit: int = 100, after: int = 0) -> list[dict]:
        """Pending spam-filter training events, oldest first: {"id", "account", "email",
        "blob", "size", "class" ("spam" | "ham"), "time", "mailbox"}; the blob stays
        readable (``store.blobs.get``) until the event is consumed."""
        from .ops.metadata import list_junk_events

        return list_junk_events(self.kv, limit, after)

    async def consume_junk_events(self, ids: list[int]) -> dict:
        """Drop events the filter has learnt from: {"consumed": [...], "missing": [...]}."""
        return await self._write("consume_junk_events", ids=list(ids))

    # ------------------------------------------------------------------ full-text index
    # Keys and rules in stalwart/store/ops/fts.py; filled by stalwart.fts.run_indexer.
    async def fts_apply(self, account: int, docs: list[dict], next: int) -> dict:
        """Add documents ({"email", "lang", "terms": {"field:term": [positions]}}) to the
        index and raise its watermark to ``next``."""
        return await self._write("fts_apply", account=account, docs=docs, next=next)

    async def fts_purge(self, account: int, emails: list[int]) -> dict:
        """Drop destroyed emails from the index: {"purged": [...]}."""
        return await self._write("fts_purge", account=account, emails=list(emails))

    def fts_postings(self, account: int, term_key: str) -> dict[int, bytes]:
        """{block: posting list} of ``"field:term"`` (stalwart.fts decodes them)."""
        from .ops.fts import postings

        return postings(self.kv, account, term_key)

    def fts_state(self, account: int) -> dict:
        """{"next": n}: every email id below n is in the index (or was gone)."""
        from .ops.fts import state

        return state(self.kv, account)

    def fts_indexed_ids(self, account: int) -> list[int]:
        from .ops.fts import indexed_ids

        return indexed_ids(self.kv, account)

    # ------------------------------------------------------------------ DMARC/TLS reports
    # stalwart/store/ops/reports.py; used by stalwart.mailauth (inbound, reports).
    async def dmarc_record(self, row: dict) -> int:
        return await self._write("dmarc_record", row=row)

    async def dmarc_pending(self, until: int, limit: int = 100_000) -> list:
        return await self._write("dmarc_pending", until=until, limit=limit)

    async def dmarc_delete(self, ids: list[int]) -> int:
        return await self._write("dmarc_delete", ids=list(ids))

    async def report_store(self, report: dict) -> int:
        return await self._write("report_store", report=report)

    async def report_delete(self, id: int) -> bool:
        return await self._write("report_delete", id=id)

    def list_reports(self, kind: str | None = None, limit: int = 1000) -> list[dict]:
        """Received reports (newest last), each with its ``id``; ``kind``: dmarc|tlsrpt."""
        from .ops.reports import list_reports

        return list_reports(self.kv, kind, limit)

__all__ = ["Store", "StoreError", "hash_secret", "verify_secret", "normalize_address"]
