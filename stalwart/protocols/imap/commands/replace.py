"""REPLACE and UID REPLACE (RFC 8508): append a new version, expunge the old one.

Typical use: a client saving a draft again. The new message goes to the named mailbox
(often the selected one) exactly as APPEND would put it there (APPENDLIMIT, TRYCREATE,
OVERQUOTA apply); only once that is durable is the old message expunged from the
selected mailbox. Responses (RFC 8508 3.4): ``* OK [APPENDUID v uid]``, then the
EXPUNGE (or VANISHED) of the old message, then the tagged OK.

Refused: a read-only mailbox (NO), a sequence number beyond the mailbox (BAD), a UID
not in the mailbox or a message another session already expunged (NO [EXPUNGEISSUED]).

The literal is streamed as APPEND's is (``commands/append.py``, "Streamed literals"): the
session spools its chunks into a blob writer as they arrive and the command carries an
empty literal; ``items_for`` pairs it with the spool, which is committed (fsync) only after
every check above passed and just before the store's append. A refused or failed REPLACE,
or a client gone mid-literal, leaves no spool behind (``ImapSession.drop_spools``).
"""

from __future__ import annotations

from ..session import Bad, No
from .append import items_for, target
from . import acl


async def run(s, cmd):
    view = s.selected
    args = cmd.args
    if view.readonly:
        raise No("Mailbox is read-only")
    if cmd.name.startswith("UID "):
        uid = args.number
        if uid not in view.eids:
            raise No("No message with that UID", "NONEXISTENT")
    else:
        if args.number > len(view):
            raise Bad(f"Invalid message sequence number {args.number} "
                      f"(the mailbox has {len(view)} messages)")
        uid = view.uids[args.number - 1]
    if uid in view.pending_expunge:
        raise No("The message was expunged by another session", "EXPUNGEISSUED")
    me = s.account["id"]
    if view.account != me and not all(r in acl.view_rights(view) for r in "te"):
        # RFC 8508 3.3: REPLACE needs what APPEND and EXPUNGE need; checked first so a
        # refused expunge cannot leave the new message behind.
        raise No("Permission denied (this needs the 'te' rights)", "NOPERM")
    record = target(s, args.name)
    [item] = await items_for(s, [args.message])
    [done] = await s.store.append_many(record["owner"], record["id"], [item], actor=me)
    s.untagged(f"OK [APPENDUID {done['uidvalidity']} {done['uid']}] Replacement stored")
    await s.store.expunge(view.account, view.id, [uid], actor=me)
    s.write_all(view.expunge_responses([uid], s.qresync))
    return "REPLACE completed"
