"""APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), UIDPLUS (RFC 4315), BINARY
literal8 (RFC 3516) and APPENDLIMIT (RFC 7889, enforced by the parser before "+").

- A missing mailbox is NO [TRYCREATE]; an empty message is NO; over quota NO [OVERQUOTA].
- The tagged OK carries [APPENDUID uidvalidity uid-set] and is sent only once the store
  has acknowledged the durable write.
- MULTIAPPEND is all or nothing: every message goes to the store in one atomic
  ``append_many`` (blobs first, then one commit), so a failure leaves nothing behind.
- Thread keys (Message-ID, In-Reply-To, References) go to the store for threading.

Streamed literals: the session's parser hands APPEND literals out in chunks as they
arrive (``Parser.stream_append``) and the session writes each into a ``Spool``: a blob
writer of the store (``BlobStore.writer``: a temp file under the blob root, hashed as it
is written), so a message of any size costs the session one input burst of memory plus
``HEAD_LIMIT`` octets kept for the header fields. The command then carries empty literals
in their place and finds its spools in ``s.spools``, in order. At APPEND the spools are
committed (fsync of the file and its directory, in a thread: docs/architecture.md,
"Blobs") before the one metadata commit; a spool not committed (the command failed, the
client left in the middle of a literal) is deleted by the session
(``ImapSession.drop_spools``), so nothing is left behind. A store without blob files
(``Store.memory()``) spools into memory.
"""

from __future__ import annotations

import asyncio
import logging

from .. import encode
from ..flags import to_keywords
from ..message import ImapMessage
from ..session import No
from . import acl

log = logging.getLogger("stalwart.imap")

#: Octets of a streamed message kept in memory for its header fields (thread keys).
HEAD_LIMIT = 64 * 1024


class Spool:
    """One APPEND literal on its way to the store's blobs (see the module docstring)."""

    __slots__ = ("_writer", "_chunks", "_blobs", "head", "size", "error")

    def __init__(self, store) -> None:
        self._blobs = store.blobs
        self._writer = None
        self._chunks: list[bytes] | None = None
        self.head = bytearray()
        self.size = 0
        self.error: OSError | None = None
        make = getattr(self._blobs, "writer", None)
        if make is None:
            self._chunks = []
            return
        try:
            self._writer = make()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            log.error("IMAP APPEND cannot spool a message: %s", exc)
        self.error = exc
        self.abort()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if len(self.head) < HEAD_LIMIT:
            self.head += data[:HEAD_LIMIT - len(self.head)]
        if self.error is not None:
            return                     # keep reading the literal, drop its octets
        if self._chunks is not None:
            self._chunks.append(data)
            return
        try:
            self._writer.write(data)
        except OSError as exc:
            self._fail(exc)

    async def commit(self) -> bytes:
        """Make the blob durable; its SHA-256 (the store's blob name)."""
        if self.error is not None:
            raise No("The message could not be stored, try again later", "UNAVAILABLE")
        if self._chunks is not None:
            data, self._chunks = b"".join(self._chunks), []
            return await self._blobs.put_async(data)
        writer = self._writer
        try:
            digest = await asyncio.get_running_loop().run_in_executor(None, writer.commit)
        except OSError as exc:
            self._fail(exc)
            raise No("The message could not be stored, try again later",
                     "UNAVAILABLE") from None
        self._writer = None            # installed: nothing left to delete
        return digest

    def abort(self) -> None:
        """Delete what was spooled (idempotent; nothing once committed)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._chunks = None if self._chunks is None else []


def thread_keys(data: bytes) -> dict:
    msg = ImapMessage(bytes(data)).msg
    refs = list(msg.references) + list(msg.in_reply_to)
    return {"message_id": msg.message_id or "", "refs": refs}


def _header(head: bytes) -> bytes:
    """The header section of a message's first octets (all of them when no end is seen)."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
        return head if end < 0 else head[:end + 2]
    return head[:end + 4]


def store_item(message) -> dict:
    """One parsed ``AppendMessage`` (literal held in memory) as an ``append_many`` item."""
    if not message.data:
        raise No("Empty messages cannot be appended")
    return {"message": message.data,
            "received": int(message.date.timestamp()) if message.date else None,
            "keywords": to_keywords(message.flags), "thread_keys": thread_keys(message.data)}


async def spooled_item(message, spool: Spool) -> dict:
    """One ``AppendMessage`` whose literal was streamed into ``spool``: the blob committed,
    the item naming it."""
    blob = await spool.commit()
    return {"blob": blob, "size": spool.size,
            "received": int(message.date.timestamp()) if message.date else None,
            "keywords": to_keywords(message.flags),
            "thread_keys": thread_keys(_header(bytes(spool.head)))}


def target(s, name: str) -> dict:
    """The mailbox to append to: the record, with "owner" (another account's mailbox is
    reached through ACL; the store checks the "i" right)."""
    found = acl.resolve(s, name)
    if found is None:
        raise No("Mailbox does not exist", "TRYCREATE")
    return {**found.record, "owner": found.owner}


async def items_for(s, messages) -> list[dict]:
    """``append_many`` items for the command's messages, streamed ones paired with the
    session's spools in order (a streamed literal is never empty, so an empty literal
    among them leaves the counts unequal: that message is refused)."""
    streamed = [m for m in messages if not m.data]
    if not streamed:
        return [store_item(m) for m in messages]
    if len(streamed) != len(s.spools):
        raise No("Empty messages cannot be appended")
    spools = iter(s.spools)
    items = []
    for m in messages:
        items.append(store_item(m) if m.data else await spooled_item(m, next(spools)))
    return items


async def run(s, cmd):
    record = target(s, cmd.args.name)
    items = await items_for(s, cmd.args.messages)
    done = await s.store.append_many(record["owner"], record["id"], items,
                                     actor=s.account["id"])
    uids = encode.number_set(d["uid"] for d in done)
    return "APPEND completed", f"APPENDUID {done[0]['uidvalidity']} {uids}"
