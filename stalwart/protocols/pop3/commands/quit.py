"""QUIT (RFC 1939 6): in TRANSACTION, the UPDATE state removes the marked messages.

- AUTHORIZATION: ``+OK`` and close.
- TRANSACTION with no message marked: ``+OK`` and close, nothing written.
- TRANSACTION with marked messages: one ``Expunge`` of all their UIDs from the INBOX
  (a single durable store operation, so either all go or none). UIDs another session
  removed meanwhile are ignored by the store. ``+OK`` once it is durable; if the store
  cannot do it, ``-ERR [SYS/TEMP] Some deleted messages not removed`` (RFC 1939 6), and
  the messages stay. Either way the connection closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import codes
from ..events import TEMPFAIL, Expunge

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    from ..machine import TRANSACTION

    if m.state != TRANSACTION:
        m.close(codes.BYE)
        return
    m.enter_update()
    drop = m.maildrop
    uids = drop.deleted_uids() if drop is not None else []
    if not uids or drop.mailbox is None:
        m.close(codes.BYE)
        return

    def on_answer(value: Any) -> None:
        if value is TEMPFAIL:
            m.close(codes.UPDATE_FAILED)
        else:
            count = len(uids)
            m.close(codes.BYE.with_text(
                f"{codes.BYE.text} ({count} message{'s' if count != 1 else ''} deleted)"))

    m.request(Expunge(m.session, drop.account, drop.mailbox, uids), on_answer)
