"""Delivery of an accepted message: local recipients into their mailboxes through
``Store.deliver``, remote recipients (relay, for authenticated clients) into the outbound
queue through ``Store.queue_put``.

- Trace headers first (RFC 5321 4.4): a ``Received:`` line with the RFC 3848 protocol
  keyword (SMTP/ESMTP/ESMTPS/ESMTPA/ESMTPSA/LMTP..., with the UTF8 prefixes of RFC 6531
  3.7.3 when SMTPUTF8 was used) on every copy, and ``Return-Path: <reverse-path>`` only on
  the copies delivered here (final delivery adds it; a relayed copy must not carry one,
  the last hop adds its own).
- One durable store commit for all local recipients of the message; a recipient whose
  account appears twice (two aliases of one account) gets one copy (no duplicate
  delivery) and both addresses get its result.
- Remote recipients become one queue entry (``stalwart.queue.QueuedMessage``) carrying the
  DSN parameters of MAIL (RET, ENVID) and RCPT (NOTIFY, ORCPT), REQUIRETLS, SMTPUTF8 and
  the declared BODY. Its blob is written (fsynced) before the entry; the queue process
  finds the entry by polling and fills in the expiry from ``queue.expire``.
- Mail from clients that did not authenticate first goes through
  ``stalwart.mailauth.inbound`` (SPF, DKIM, DMARC, when ``inbound`` is set): a DMARC
  reject refuses it for every recipient, a quarantine files it into Junk, and it gets
  Authentication-Results and Received-SPF; authenticated mail only loses forged
  Authentication-Results fields.
- Store error codes map to RFC 3463: ``over_quota`` 552 5.2.2, ``not_found`` 550 5.1.1,
  ``unavailable`` (and anything unexpected) 451 4.3.0 so the client retries.

Durability: a positive reply is returned only after every commit it stands for (local
deliveries first, then the queue entry) has returned, so the 250 after DATA means the
message is safe. SMTP has one reply for the whole message (``merge_replies``: accepted if
any recipient was), which makes two rules necessary:

- A recipient that must not be dropped silently: when some recipients succeeded and a
  local one failed, the failed one goes into the queue entry too: still pending after a
  temporary failure (the queue retries the local delivery), or failed already after a
  permanent one (the queue sends the failure DSN). Only when no recipient succeeded is the
  failure the reply itself, and the client keeps the message. LMTP replies per recipient
  (RFC 2033 4.2) and needs neither rule.
- If the queue entry cannot be committed, every recipient is answered 451 4.3.0, the ones
  delivered locally too: the client sends the message again. Those local recipients do
  not get it twice while ``smtp.deduplicate.window`` is on (the default): the store's
  ``deliver_once`` records Message-ID and content hash in the delivery's own commit and
  skips an account that already holds that exact message (the SMTP server wraps the store
  it hands this class). With the window at 0 they get it twice: duplicates over loss, as
  every MTA chooses (RFC 5321 6.1); the two commits are not one atomic store operation.

When the store offers no queue (``queue_put``), remote recipients get 451 4.3.2.

Before anything else a message with more than ``hop_limit`` Received fields is refused
(554 5.4.6, ``forward.hop_limit_reply``); recipients that are forwarding aliases are
expanded by ``forward.deliver``, which calls ``deliver_checked`` (everything after the
inbound checks) on the expanded recipients and queues the ARC-sealed remote copies.
"""

from __future__ import annotations

import email.utils
import logging
import time
from typing import Any

from stalwart.store.errors import StoreError

from . import codes, forward
from .codes import Reply
from .events import Deliver, Envelope, Recipient, Session

log = logging.getLogger("stalwart.smtp")

_ERRORS = {
    "over_quota": codes.MAILBOX_FULL,
    "not_found": codes.NO_SUCH_USER,
    "invalid": codes.TEMP_DELIVERY,
    "unavailable": codes.TEMP_DELIVERY,
}

NO_QUEUE = codes.reply(451, "4.3.2", "Relay queue not available, try later")


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


def received_header(session: Session, envelope: Envelope, hostname: str, queue_id: str,
                    now: float | None = None) -> bytes:
    """The ``Received`` field for one message (RFC 5321 4.4), CRLF-terminated."""
    when = email.utils.formatdate(now if now is not None else time.time(), localtime=True)
    rcpt = ""
    if len(envelope.recipients) == 1:
        rcpt = f"\r\n\tfor {envelope.recipients[0].path}"
    tls = f" ({session.tls_version} {session.tls_cipher})".rstrip() if session.tls else ""
    tls = tls if tls != " ()" else ""
    return (f"Received: from {_clean(session.helo) or 'unknown'} "
            f"([{session.remote_ip or 'unknown'}])\r\n"
            f"\tby {hostname} with {protocol_keyword(session, envelope)}{tls} "
            f"id {queue_id}{rcpt};\r\n\t{when}\r\n").encode("utf-8")


def trace_headers(session: Session, envelope: Envelope, hostname: str, queue_id: str,
                  now: float | None = None) -> bytes:
    """``Return-Path`` and ``Received`` for one final delivery, CRLF-terminated."""
    return (f"Return-Path: {envelope.mail_from}\r\n".encode("utf-8")
            + received_header(session, envelope, hostname, queue_id, now))


def _relay_address(rcpt: Recipient) -> str | None:
    target = rcpt.target
    if isinstance(target, dict) and isinstance(target.get("relay"), str):
        return target["relay"]
    return None


def _local_address(rcpt: Recipient) -> str | None:
    """The resolved address of a local recipient (bare ``<Postmaster>`` has none)."""
    target = rcpt.target
    address = target.get("address") if isinstance(target, dict) else None
    return address if isinstance(address, str) and "@" in address else None


def _signing_domains(session: Session) -> set[str] | None:
    """The domains whose DKIM keys may sign this session's relayed mail: those of the
    authenticated account's own addresses (None: a trusted relay network, any domain)."""
    if not session.authenticated:
        return None
    from .policy import identity_emails

    domains = set()
    for address in identity_emails(session.identity):
        try:
            domains.add(address.rpartition("@")[2].encode("idna").decode("ascii").lower())
        except UnicodeError:
            continue
    return domains


class LocalDelivery:
    """Answers ``Deliver`` requests: local recipients into each account's INBOX, remote
    ones (accepted by the policy only for clients allowed to relay) into the queue."""

    def __init__(self, store: Any, hostname: str, inbound: Any = None) -> None:
        self.store = store
        self.hostname = hostname
        self._counter = 0
        #: ``stalwart.mailauth.inbound.InboundAuth``: SPF/DKIM/DMARC for mail from
        #: clients that did not authenticate (None: no checks).
        self.inbound = inbound
        #: ``stalwart.mailauth.signopts.SignOptions`` of relayed mail (``auth.dkim.sign.*``;
        #: None: the defaults).
        self.dkim_sign: Any = None
        #: More ``Received`` fields than this refuse the message (``smtp.hop-limit``).
        self.hop_limit = forward.DEFAULT_HOP_LIMIT
        #: Called after a queue entry is committed (``stalwart.queue.control.QueueWaker``):
        #: the queue process starts its first attempt at once rather than at its next poll.
        self.wake_queue: Any = None

    @property
    def has_queue(self) -> bool:
        return callable(getattr(self.store, "queue_put", None))

    def _queue_id(self) -> str:
        self._counter += 1
        return f"{int(time.time() * 1000):x}{self._counter:04x}"

    async def deliver(self, event: Deliver) -> list[Reply]:
        envelope, session = event.envelope, event.session
        rcpts = envelope.recipients
        junk = False
        verdict = None
        hops = forward.hop_limit_reply(event.message, self.hop_limit)     # RFC 5321 6.3
        if hops is not None:
            return [hops] * len(rcpts)
        if self.inbound is not None and not session.authenticated and not session.lmtp:
            from stalwart.mailauth.inbound import run_inbound
            verdict = await run_inbound(self.inbound, self.store, event)
            if verdict.reply is not None:
                return [verdict.reply] * len(rcpts)
            event = Deliver(session, envelope, verdict.message)
            junk = verdict.action == "junk"
        elif self.inbound is not None and not session.lmtp:
            # Submission is not checked, but it may not forge our verdicts either.
            from stalwart.mailauth.inbound import strip_forged
            event = Deliver(session, envelope, strip_forged(self.inbound, event.message))
        if forward.has_forwards(rcpts):             # forwarding aliases: forward.py
            return await forward.deliver(self, event, junk=junk, verdict=verdict)
        return await self.deliver_checked(event, junk=junk)

    async def deliver_checked(self, event: Deliver, *, junk: bool = False,
                              queue_id: str | None = None,
                              now: float | None = None) -> list[Reply]:
        """Deliver a message that passed the checks of ``deliver`` (no forwarding
        aliases among its recipients: ``forward.deliver`` expands them first)."""
        envelope, session = event.envelope, event.session
        rcpts = envelope.recipients
        queue_id = queue_id or self._queue_id()
        now = now if now is not None else time.time()
        received = received_header(session, envelope, self.hostname, queue_id, now)
        replies: list[Reply | None] = [None] * len(rcpts)
        accepted = codes.MESSAGE_ACCEPTED.with_text(f"Message accepted for delivery, id {queue_id}")

        # 1. Local recipients: one commit, one copy per account.
        local: dict[int, list[int]] = {}            # account -> indexes of its recipients
        remote: list[int] = []
        for i, rcpt in enumerate(rcpts):
            target = rcpt.target if isinstance(rcpt.target, dict) else {}
            account = target.get("account")
            if isinstance(account, int) and not isinstance(account, bool):
                local.setdefault(account, []).append(i)
            elif _relay_address(rcpt) is not None:
                remote.append(i)
            else:
                replies[i] = codes.TEMP_DELIVERY
        if local:
            header = f"Return-Path: {envelope.mail_from}\r\n".encode("utf-8") + received
            accounts = list(local)
            targets = [{"account": a} for a in accounts]
            if junk:                                # DMARC quarantine: the Junk mailbox
                from stalwart.mailauth.inbound import junk_targets
                targets = junk_targets(self.store, accounts)
            try:
                results = await self.store.deliver(targets, header + event.message)
            except StoreError as exc:
                results = [{"error": exc.code, "message": exc.message}] * len(accounts)
            for account, result in zip(accounts, results):
                if isinstance(result, dict) and "error" in result:
                    reply = _ERRORS.get(result["error"], codes.TEMP_DELIVERY)
                else:
                    reply = accepted
                for i in local[account]:
                    replies[i] = reply

        # 2. What the queue takes: remote recipients, and (SMTP) local failures that
        #    would otherwise vanish behind the single positive reply.
        if not self.has_queue:
            for i in remote:
                replies[i] = NO_QUEUE
            return [r if r is not None else codes.TEMP_DELIVERY for r in replies]
        handed = list(remote)
        if not session.lmtp and (remote or any(r is not None and r.is_positive
                                               for r in replies)):
            handed += [i for i, r in enumerate(replies)
                       if i not in remote and r is not None and not r.is_positive
                       and _local_address(rcpts[i]) is not None]
        if handed:
            try:
                qid = await self._enqueue(envelope, received + event.message, handed, replies,
                                          now, signer_domains=_signing_domains(session))
            except StoreError as exc:
                log.warning("smtp %s: could not queue the message for %d recipient(s): %s",
                            queue_id, len(handed), exc)
                return [codes.TEMP_DELIVERY] * len(rcpts)
            log.info("smtp %s: queued as %s for %d recipient(s)", queue_id, qid, len(handed))
            if self.wake_queue is not None:
                self.wake_queue()
            for i in handed:
                replies[i] = accepted
        return [r if r is not None else codes.TEMP_DELIVERY for r in replies]

    async def _enqueue(self, envelope: Envelope, message: bytes, indexes: list[int],
                       replies: list[Reply | None], now: float, *,
                       signer_domains: set[str] | None = None) -> int:
        from stalwart.queue.model import QueuedMessage, QueuedRecipient, RcptStatus
        from stalwart.queue.model import Reply as QueueReply

        recipients = []
        for i in indexes:
            rcpt = envelope.recipients[i]
            address = _relay_address(rcpt) or _local_address(rcpt)
            assert address is not None
            entry = QueuedRecipient(address=address, notify=rcpt.params.notify,
                                    orcpt=rcpt.params.orcpt)
            failed = replies[i]
            if failed is not None and failed.is_permanent:
                # Refused for good here: the queue only owes the sender the DSN.
                entry.status = RcptStatus.FAILED
                entry.reply = QueueReply(failed.code, failed.status, " ".join(failed.lines),
                                         remote=False)
            recipients.append(entry)
        params = envelope.params
        if any(_relay_address(envelope.recipients[i]) is not None for i in indexes):
            # Relayed mail comes only from clients allowed to relay (submission): DKIM-sign
            # it with the From domain's keys. An entry that only carries DSNs for local
            # failures is not signed: a forged From must never come back signed by us.
            from stalwart.mailauth.keys import sign_outbound
            try:
                message = sign_outbound(self.store, message, now=now, allowed=signer_domains,
                                        options=self.dkim_sign)
            except Exception:               # never lose mail over a signature
                log.exception("smtp: DKIM signing failed; the message goes out unsigned")
        blob = await self.store.blobs.put_async(message)
        mail_from = envelope.mail_from.address
        record = QueuedMessage(
            return_path=str(mail_from) if mail_from is not None else "",
            recipients=recipients, blob=blob, size=len(message), created=now, due=now,
            expires=0.0, env_id=params.envid, ret=params.ret, requiretls=params.requiretls,
            smtputf8=params.smtputf8, body=envelope.body or params.body).to_record()
        return await self.store.queue_put(record)
