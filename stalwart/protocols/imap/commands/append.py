"""APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), UIDPLUS (RFC 4315), BINARY
literal8 (RFC 3516) and APPENDLIMIT (RFC 7889, enforced by the parser before "+").

- A missing mailbox is NO [TRYCREATE]; an empty message is NO; over quota NO [OVERQUOTA].
- The tagged OK carries [APPENDUID uidvalidity uid-set] and is sent only once the store
  has acknowledged the durable write.
- MULTIAPPEND is all or nothing: every message goes to the store in one atomic
  ``append_many`` (blobs first, then one commit), so a failure leaves nothing behind.
- Thread keys (Message-ID, In-Reply-To, References) go to the store for threading.
"""

from __future__ import annotations

from .. import encode
from ..flags import to_keywords
from ..message import ImapMessage
from ..session import No
from . import acl


def thread_keys(data: bytes) -> dict:
    msg = ImapMessage(data).msg
    refs = list(msg.references) + list(msg.in_reply_to)
    return {"message_id": msg.message_id or "", "refs": refs}


def store_item(message) -> dict:
    """One parsed ``AppendMessage`` as an ``append_many`` item."""
    if not message.data:
        raise No("Empty messages cannot be appended")
    return {"message": message.data,
            "received": int(message.date.timestamp()) if message.date else None,
            "keywords": to_keywords(message.flags), "thread_keys": thread_keys(message.data)}


def target(s, name: str) -> dict:
    """The mailbox to append to: the record, with "owner" (another account's mailbox is
    reached through ACL; the store checks the "i" right)."""
    found = acl.resolve(s, name)
    if found is None:
        raise No("Mailbox does not exist", "TRYCREATE")
    return {**found.record, "owner": found.owner}


async def run(s, cmd):
    record = target(s, cmd.args.name)
    items = [store_item(m) for m in cmd.args.messages]
    done = await s.store.append_many(record["owner"], record["id"], items,
                                     actor=s.account["id"])
    uids = encode.number_set(d["uid"] for d in done)
    return "APPEND completed", f"APPENDUID {done[0]['uidvalidity']} {uids}"
