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
import os
from pathlib import Path
from typing import Any, Callable

from . import reader
from .blobs import BlobStore, MemoryBlobStore
from .engine import Engine, normalize_address
from .errors import StoreError
from .kv import MemoryKV, Txn

EventCallback = Callable[[int, int, list], None]


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
        ok = await asyncio.get_running_loop().run_in_executor(
            None, verify_secret, record.get("secret"), password)
        return reader.get_account(kv, acc) if ok else None

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

    async def append_many(self, account: int, mailbox: int, items: list[dict]) -> list[dict]:
        """MULTIAPPEND: ``items`` of {"message": bytes, "received", "keywords",
        "thread_keys", "meta"}; every blob is written first, then one atomic commit."""
        wire = []
        for item in items:
            message = item["message"]
            blob = await self.blobs.put_async(message)
            wire.append({"blob": blob, "size": len(message), "received": item.get("received"),
                         "keywords": list(item.get("keywords") or ()),
                         "thread_keys": item.get("thread_keys"), "meta": item.get("meta")})
        return await self._write("append_many", account=account, mailbox=mailbox, items=wire)

    async def deliver(self, recipients: list[dict], message: bytes, *,
                      received: int | None = None, thread_keys: dict | None = None,
                      meta: Any = None) -> list[dict]:
        """Local delivery: one blob, one durable commit, a result per recipient."""
        blob = await self.blobs.put_async(message)
        return await self._write("deliver", recipients=recipients, blob=blob, size=len(message),
                                 received=received, thread_keys=thread_keys, meta=meta)

    async def set_keywords(self, account: int, ids: list[int], *, add=(), remove=(),
                           replace=None, unchanged_since: int | None = None) -> dict:
        return await self._write("set_keywords", account=account, ids=list(ids), add=list(add),
                                 remove=list(remove),
                                 replace=None if replace is None else list(replace),
                                 unchanged_since=unchanged_since)

    async def copy(self, account: int, ids: list[int], mailbox: int) -> list[dict]:
        return await self._write("copy", account=account, ids=list(ids), mailbox=mailbox)

    async def move(self, account: int, ids: list[int], source: int, mailbox: int) -> list[dict]:
        return await self._write("move", account=account, ids=list(ids), source=source,
                                 mailbox=mailbox)

    async def expunge(self, account: int, mailbox: int, uids: list[int]) -> dict:
        return await self._write("expunge", account=account, mailbox=mailbox, uids=list(uids))

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

    # ------------------------------------------------------------------ changes
    def account_state(self, account: int) -> dict | None:
        return reader.account_state(self.kv, account)

    def changes_since(self, account: int, collection: str, since: int,
                      max_changes: int = 0) -> dict:
        return reader.changes_since(self.kv, account, collection, since, max_changes)

    def vanished_since(self, account: int, mailbox: int, modseq: int) -> list[int]:
        return reader.vanished_since(self.kv, account, mailbox, modseq)


__all__ = ["Store", "StoreError", "hash_secret", "verify_secret", "normalize_address"]
