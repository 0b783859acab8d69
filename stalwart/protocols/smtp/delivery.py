"""Local delivery of an accepted message through ``Store.deliver``.

- Trace headers first (RFC 5321 4.4): ``Return-Path: <reverse-path>`` (final delivery
  adds it, and removes none the client sent; we only prepend) and a ``Received:`` line
  with the RFC 3848 protocol keyword (SMTP/ESMTP/ESMTPS/ESMTPA/ESMTPSA/LMTP..., with
  UTF8 prefixes of RFC 6531 3.7.3 when SMTPUTF8 was used).
- One durable store commit for all local recipients of the message; a recipient whose
  account appears twice (two aliases of one account) gets one copy (no duplicate
  delivery) and both addresses get its result.
- Store error codes map to RFC 3463: ``over_quota`` 552 5.2.2, ``not_found`` 550 5.1.1,
  ``unavailable`` (and anything unexpected) 451 4.3.0 so the client retries.
- Remote recipients need the queue, which this module does not own: 451 4.3.2.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

from stalwart.store.errors import StoreError

from . import codes
from .codes import Reply
from .events import Deliver, Envelope, Session

_ERRORS = {
    "over_quota": codes.MAILBOX_FULL,
    "not_found": codes.NO_SUCH_USER,
    "invalid": codes.TEMP_DELIVERY,
    "unavailable": codes.TEMP_DELIVERY,
}


def protocol_keyword(session: Session, envelope: Envelope) -> str:
    """RFC 3848 / RFC 6531 3.7.3 ``with`` keyword."""
    if session.lmtp:
        base = "LMTP"
    elif not session.esmtp:
        base = "SMTP"
    else:
        base = "ESMTP" + ("S" if session.tls else "") + ("A" if session.authenticated else "")
    if envelope.params.smtputf8:
        base = "UTF8" + base if base != "SMTP" else "UTF8SMTP"
    if session.lmtp:
        base = base.replace("ESMTP", "LMTP")
    return base


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable() and ch not in "()\\")[:255]


def trace_headers(session: Session, envelope: Envelope, hostname: str, queue_id: str,
                  now: float | None = None) -> bytes:
    """``Return-Path`` and ``Received`` for one delivery, CRLF-terminated."""
    when = email.utils.formatdate(now if now is not None else time.time(), localtime=True)
    rcpt = ""
    if len(envelope.recipients) == 1:
        rcpt = f"\r\n\tfor {envelope.recipients[0].path}"
    tls = f" ({session.tls_version} {session.tls_cipher})".rstrip() if session.tls else ""
    tls = tls if tls != " ()" else ""
    received = (f"Received: from {_clean(session.helo) or 'unknown'} "
                f"([{session.remote_ip or 'unknown'}])\r\n"
                f"\tby {hostname} with {protocol_keyword(session, envelope)}{tls} "
                f"id {queue_id}{rcpt};\r\n\t{when}\r\n")
    return_path = f"Return-Path: {envelope.mail_from}\r\n"
    return (return_path + received).encode("utf-8")


class LocalDelivery:
    """Answers ``Deliver`` requests by storing the message in each account's INBOX."""

    def __init__(self, store: Any, hostname: str) -> None:
        self.store = store
        self.hostname = hostname
        self._counter = 0

    def _queue_id(self) -> str:
        self._counter += 1
        return f"{int(time.time() * 1000):x}{self._counter:04x}"

    async def deliver(self, event: Deliver) -> list[Reply]:
        envelope = event.envelope
        queue_id = self._queue_id()
        replies: list[Reply | None] = [None] * len(envelope.recipients)
        accounts: list[int] = []
        for i, rcpt in enumerate(envelope.recipients):
            target = rcpt.target if isinstance(rcpt.target, dict) else {}
            account = target.get("account")
            if isinstance(account, int):
                if account not in accounts:
                    accounts.append(account)
            else:
                replies[i] = codes.reply(451, "4.3.2", "Relay queue not available, try later")
        if accounts:
            message = trace_headers(event.session, envelope, self.hostname, queue_id) + event.message
            try:
                results = await self.store.deliver([{"account": a} for a in accounts], message)
            except StoreError as exc:
                results = [{"error": exc.code, "message": exc.message}] * len(accounts)
            by_account = {}
            for account, result in zip(accounts, results):
                if isinstance(result, dict) and "error" in result:
                    by_account[account] = _ERRORS.get(result["error"], codes.TEMP_DELIVERY)
                else:
                    by_account[account] = codes.MESSAGE_ACCEPTED.with_text(
                        f"Message accepted for delivery, id {queue_id}")
            for i, rcpt in enumerate(envelope.recipients):
                if replies[i] is None:
                    replies[i] = by_account[rcpt.target["account"]]
        return [r if r is not None else codes.TEMP_DELIVERY for r in replies]
