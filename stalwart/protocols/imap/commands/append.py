"""APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), UIDPLUS (RFC 4315), BINARY
literal8 (RFC 3516) and APPENDLIMIT (RFC 7889, enforced by the parser before "+").

- A missing mailbox is NO [TRYCREATE]; an empty message is NO; over quota NO [OVERQUOTA].
- The tagged OK carries [APPENDUID uidvalidity uid-set] and is sent only once the store
  has acknowledged the durable write.
- MULTIAPPEND is all or nothing: when one message fails, those already stored by this
  command are expunged again before the NO (the store has no multi-message append yet).
- Thread keys (Message-ID, In-Reply-To, References) go to the store for threading.
"""

from __future__ import annotations

from ....store import StoreError
from .. import encode
from ..flags import to_keywords
from ..mailboxes import MailboxTree
from ..message import ImapMessage
from ..session import STORE_CODES, No


def _thread_keys(data: bytes) -> dict:
    msg = ImapMessage(data).msg
    refs = list(msg.references) + list(msg.in_reply_to)
    return {"message_id": msg.message_id or "", "refs": refs}


async def run(s, cmd):
    acc = s.account["id"]
    record = MailboxTree(s.store.list_mailboxes(acc)).find(cmd.args.name)
    if record is None:
        raise No("Mailbox does not exist", "TRYCREATE")
    done: list[dict] = []
    for message in cmd.args.messages:
        try:
            if not message.data:
                raise No("Empty messages cannot be appended")
            received = int(message.date.timestamp()) if message.date else None
            done.append(await s.store.append(acc, record["id"], message.data,
                                             received=received,
                                             keywords=to_keywords(message.flags),
                                             thread_keys=_thread_keys(message.data)))
        except (StoreError, No) as exc:
            if done:
                await s.store.expunge(acc, record["id"], [d["uid"] for d in done])
            if isinstance(exc, StoreError):
                raise No(exc.message, STORE_CODES.get(exc.code)) from None
            raise
    uids = encode.number_set(d["uid"] for d in done)
    return "APPEND completed", f"APPENDUID {done[0]['uidvalidity']} {uids}"
