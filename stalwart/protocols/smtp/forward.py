"""Delivery of mail sent to forwarding aliases, and the hop limit.

A forwarding alias (``stalwart/store/ops/forward.py``) is accepted at RCPT like any local
address; ``StorePolicy`` puts its expansion in the recipient's target (``{"forward",
"address", "accounts": [[target, account]...], "remote": [addresses]}``).
``LocalDelivery.deliver`` hands a message with such recipients to ``deliver`` here, after
the inbound checks (SPF/DKIM/DMARC/ARC, ``stalwart.mailauth.inbound``), which:

1. Expands the recipients: each local target becomes a plain local recipient (one copy
   per account, deduplicated with the message's other recipients as usual); remote
   targets of mail from an authenticated client become relay recipients (the client's
   own mail: DKIM-signed with its domain's keys by the normal relay path); remote targets
   of any other mail are *forwarded*: they get one queue entry per forwarding domain.
2. Runs ``LocalDelivery.deliver_checked`` on the expanded recipients (one store commit).
3. Forwarded copies keep the original envelope sender (no SRS, as Stalwart and Postfix
   virtual aliases by default: the final receiver's SPF check of the sender fails, and
   ARC is what carries our verdict to it; SRS would need a signing secret and a bounce
   path of its own) and the DSN parameters of the recipient, ORCPT defaulting to the
   forwarding address (RFC 3461 4.2). They are **ARC-sealed** (RFC 8617) with the DKIM
   key of the forwarding address's domain (RSA preferred, as receivers verify ARC with
   RSA): the ARC-Authentication-Results carry our inbound Authentication-Results payload
   (or ``none`` when no check ran, e.g. LMTP), the instance follows the chain the message
   arrived with, and a chain that failed verification gets ``cv=fail``. A domain without
   DKIM keys forwards unsealed (logged once per domain and process). Forwarded copies are
   never DKIM-signed with the From domain's keys: the From is not ours.
4. Nothing is dropped silently: when the reply will be positive (SMTP: one reply for the
   message; LMTP: that recipient) but some local target or plain recipient failed, the
   failed ones join the forwarding queue entry (pending after a temporary failure, failed
   with the DSN owed after a permanent one), as ``LocalDelivery`` does for its own.
   If a forwarding entry cannot be committed, every recipient gets 451 4.3.0 and the
   client sends again (local copies are not duplicated while the dedup window is on).

The hop limit (RFC 5321 6.3, loop detection by counting ``Received`` fields): a message
with more than ``smtp.hop-limit`` of them is refused for every recipient with
``554 5.4.6`` before anything is stored or queued; a forwarding loop between servers ends
there.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Any

from stalwart.store.errors import StoreError

from . import codes
from .codes import Reply
from .events import Deliver, Recipient

log = logging.getLogger("stalwart.smtp")

__all__ = ["DEFAULT_HOP_LIMIT", "received_count", "hop_limit_reply", "has_forwards", "deliver",
           "seal_forwarded", "aar_payload"]

#: RFC 5321 6.3 asks for a configurable limit; RFC 2821 6.2 suggested at least 100.
DEFAULT_HOP_LIMIT = 100
TOO_MANY_HOPS = codes.reply(554, "5.4.6", "Too many hops (Received fields): mail loop?")

_RECEIVED = re.compile(rb"\nreceived[ \t]*:")          # on the lower-cased header
_unsealed_logged: set[str] = set()


# ---------------------------------------------------------------------- hop limit

def received_count(message: bytes) -> int:
    """The number of ``Received`` fields in the header section. Fields are matched as
    MTAs write them (``Received:``, any case) by one ``lower()`` and one ``count`` of the
    header section (about 5-10 us for a 1 KiB header here); only a header holding the
    obsolete form with white space before the colon (RFC 5322 4.5.3) is counted again
    with a regex."""
    end = message.find(b"\r\n\r\n")
    header = (b"\n" + message if end < 0 else b"\n" + message[:end + 2]).lower()
    count = header.count(b"\nreceived:")
    if b"\nreceived " in header or b"\nreceived\t" in header:
        count = len(_RECEIVED.findall(header))
    return count


def hop_limit_reply(message: bytes, limit: int) -> Reply | None:
    """554 5.4.6 when the message has more than ``limit`` Received fields, else None."""
    if limit > 0 and received_count(message) > limit:
        return TOO_MANY_HOPS.with_text(f"Too many hops: more than {limit} Received fields "
                                       f"(mail loop?)")
    return None


# ---------------------------------------------------------------------- forwarding

def has_forwards(recipients: list[Recipient]) -> bool:
    return any(isinstance(r.target, dict) and "forward" in r.target for r in recipients)


def _params(rcpt: Recipient) -> Any:
    """The recipient's DSN parameters, ORCPT defaulting to the forwarding address."""
    params = rcpt.params
    if getattr(params, "orcpt", None) is None and dataclasses.is_dataclass(params):
        params = dataclasses.replace(params, orcpt=("rfc822", rcpt.target["address"]))
    return params


def aar_payload(hostname: str, verdict: Any) -> str:
    """What ARC-Authentication-Results carries: our Authentication-Results payload from
    the inbound verdict (``authserv-id; method=result ...``), or ``hostname; none``."""
    headers = getattr(verdict, "headers", b"") or b""
    text = headers.decode("utf-8", "replace")
    match = re.search(r"(?im)^authentication-results:[ \t]*((?:[^\r\n]|\r\n[ \t])*)", text)
    if match and match.group(1).strip():
        return match.group(1).strip()
    return f"{hostname}; none"


async def _chain(message: bytes, verdict: Any, resolver: Any) -> Any:
    """The ARC verification of the message as it arrived: the inbound verdict's, else
    verified here (the inbound checks did not run, or ARC verification is disabled)."""
    from stalwart.mailauth import arc

    chain = getattr(verdict, "arc", None)
    if chain is not None:
        return chain
    if b"arc-" not in message[:message.find(b"\r\n\r\n") + 2].lower():
        return arc.ArcResult("none")
    if resolver is None:
        from stalwart.dns import default_resolver
        resolver = default_resolver()
    return await arc.verify(message, resolver)


def _signer(store: Any, domain: str) -> Any:
    from stalwart.mailauth.keys import RSA_SHA256, signers_for

    reader = getattr(store, "dkim_keys", None)
    records = reader(domain) if reader is not None else []
    signers = signers_for(records or [])
    if not signers:
        return None
    rsa = [s for s in signers if s.algorithm == RSA_SHA256]
    return (rsa or signers)[0]


async def seal_forwarded(store: Any, domain: str, message: bytes, auth_results: str,
                         verdict: Any = None, resolver: Any = None,
                         now: float | None = None) -> bytes:
    """``message`` with an ARC set of ``domain`` prepended, or unchanged (logged once per
    domain) when the domain has no DKIM key or the chain cannot take another set."""
    from stalwart.mailauth import arc

    signer = _signer(store, domain)
    if signer is None:
        if domain not in _unsealed_logged:
            _unsealed_logged.add(domain)
            log.warning("forwarding: domain %s has no DKIM key; forwarded mail leaves without "
                        "an ARC seal (create one with stalwart-cli dkim create %s)",
                        domain, domain)
        return message
    chain = await _chain(message, verdict, resolver)
    try:
        return arc.seal(message, signer, auth_results, chain, now=now) + message
    except ValueError as exc:                # instance 50 reached, bad chain description
        log.warning("forwarding: cannot ARC-seal for %s (%s); forwarded unsealed", domain, exc)
        return message


async def deliver(ld: Any, event: Deliver, *, junk: bool = False, verdict: Any = None) -> list[Reply]:
    """Deliver a message some of whose recipients are forwarding aliases (see the module
    docstring). ``ld`` is the ``LocalDelivery``; ``verdict`` the inbound verdict (None when
    the checks did not run)."""
    from stalwart.queue.model import QueuedMessage, QueuedRecipient, RcptStatus
    from stalwart.queue.model import Reply as QueueReply

    from .delivery import _local_address, _relay_address, received_header

    envelope, session = event.envelope, event.session
    rcpts = envelope.recipients
    expanded: list[Recipient] = []
    origin: list[int] = []
    forwarded: dict[str, list[tuple[str, int, Any]]] = {}     # domain -> (address, i, params)
    forwarded_for: set[int] = set()        # recipients with remote targets in ``forwarded``
    for i, rcpt in enumerate(rcpts):
        target = rcpt.target
        if not (isinstance(target, dict) and "forward" in target):
            expanded.append(rcpt)
            origin.append(i)
            continue
        params = _params(rcpt)
        for address, account in target["accounts"]:
            expanded.append(Recipient(rcpt.path, params, {"account": account,
                                                          "address": address}))
            origin.append(i)
        domain = target["forward"].rpartition("@")[2]
        for address in target["remote"]:
            if session.authenticated:
                expanded.append(Recipient(rcpt.path, params, {"relay": address}))
                origin.append(i)
            else:
                forwarded_for.add(i)
                group = forwarded.setdefault(domain, [])
                if all(address != a for a, _, _ in group):
                    group.append((address, i, params))

    queue_id = ld._queue_id()
    now = time.time()
    replies_x: list[Reply] = []
    if expanded:
        replies_x = await ld.deliver_checked(
            Deliver(session, dataclasses.replace(envelope, recipients=expanded), event.message),
            junk=junk, queue_id=queue_id, now=now)
    accepted_at = {origin[j] for j, r in enumerate(replies_x) if r.is_positive}
    forwarded_at = forwarded_for if ld.has_queue else set()

    def will_accept(i: int) -> bool:
        if session.lmtp:
            return i in accepted_at or i in forwarded_at
        return bool(accepted_at or forwarded_at)

    handed = [j for j, r in enumerate(replies_x)
              if not r.is_positive and will_accept(origin[j])
              and (_local_address(expanded[j]) or _relay_address(expanded[j]))]
    message = received_header(session, envelope, ld.hostname, queue_id, now) + event.message
    entries: list[tuple[bytes, list]] = []
    if ld.has_queue:
        auth_results = aar_payload(ld.hostname, verdict)
        resolver = getattr(ld.inbound, "resolver", None)
        for domain, group in forwarded.items():
            sealed = await seal_forwarded(ld.store, domain, message, auth_results, verdict,
                                          resolver, now)
            recipients = [QueuedRecipient(address=a, notify=p.notify, orcpt=p.orcpt)
                          for a, _, p in group]
            entries.append((sealed, recipients))
        if handed:
            recipients = []
            for j in handed:
                rcpt, failed = expanded[j], replies_x[j]
                entry = QueuedRecipient(address=_relay_address(rcpt) or _local_address(rcpt),
                                        notify=rcpt.params.notify, orcpt=rcpt.params.orcpt)
                if failed.is_permanent:
                    entry.status = RcptStatus.FAILED
                    entry.reply = QueueReply(failed.code, failed.status,
                                             " ".join(failed.lines), remote=False)
                recipients.append(entry)
            if entries:
                entries[0][1].extend(recipients)
            else:
                entries.append((message, recipients))
    else:
        handed = []
    mail_from = envelope.mail_from.address
    params = envelope.params
    try:
        for data, recipients in entries:
            blob = await ld.store.blobs.put_async(data)
            record = QueuedMessage(
                return_path=str(mail_from) if mail_from is not None else "",
                recipients=recipients, blob=blob, size=len(data), created=now, due=now,
                expires=0.0, env_id=params.envid, ret=params.ret,
                requiretls=params.requiretls, smtputf8=params.smtputf8,
                body=envelope.body or params.body).to_record()
            qid = await ld.store.queue_put(record)
            log.info("smtp %s: forwarded as %s to %d recipient(s)", queue_id, qid,
                     len(recipients))
    except StoreError as exc:
        log.warning("smtp %s: could not queue forwarded mail: %s", queue_id, exc)
        return [codes.TEMP_DELIVERY] * len(rcpts)
    if entries and ld.wake_queue is not None:
        ld.wake_queue()

    ok = codes.MESSAGE_ACCEPTED.with_text(f"Message accepted for delivery, id {queue_id}")
    handed_at = {origin[j] for j in handed}
    out: list[Reply] = []
    for i, rcpt in enumerate(rcpts):
        mine = [replies_x[j] for j in range(len(expanded)) if origin[j] == i]
        if i in accepted_at or i in forwarded_at or i in handed_at:
            positive = [r for r in mine if r.is_positive]
            out.append(positive[0] if positive else ok)
        elif mine:
            out.append(mine[0])
        elif i in forwarded_for:                      # no queue to take the remote copies
            out.append(codes.reply(451, "4.3.2", "Relay queue not available, try later"))
        else:
            out.append(codes.TEMP_DELIVERY)
    return out
