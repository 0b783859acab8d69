"""Delivery status notifications (RFC 3464, RFC 3461 6, RFC 6533 for UTF-8).

``build_dsn(kind, message, recipients, original, ...)`` returns the bytes of one report
to the message's return path:

    multipart/report; report-type=delivery-status
     ├─ text/plain                  what happened, for people
     ├─ message/delivery-status     per-message fields, then one block per recipient
     │                              (message/global-delivery-status when an address is UTF-8)
     └─ message/rfc822              the whole original (RET=FULL, or a failure without RET,
                                    within ``max_body``), else text/rfc822-headers
                                    (message/global and text/global-headers for SMTPUTF8 mail)

``kind`` is ``failure`` (Action: failed), ``delay`` (delayed, with Will-Retry-Until) or
``success`` (relayed: we handed the message to a host that does not speak DSN, RFC 3461
5.2.2; a DSN-capable next hop reports delivery itself).

Invariants
- The caller never builds a DSN for the null reverse-path; the DSN itself is sent from the
  null reverse-path (RFC 3461 6.2), which is what keeps reports from looping.
- Expired recipients (failed with a temporary last reply) get Status 4.4.7 with the last
  reply as Diagnostic-Code (RFC 3463 "delivery time expired").
- For REQUIRETLS mail only the headers are returned (RFC 8689 5: the body must not travel
  where TLS was not guaranteed); the DSN is itself sent with REQUIRETLS.
- Lines are CRLF; header fields stay under 998 octets (long diagnostics are cut).
"""

from __future__ import annotations

import email.utils
import os
import time

from .model import QueuedMessage, QueuedRecipient

__all__ = ["build_dsn", "split_headers", "KINDS"]

KINDS = ("failure", "delay", "success")
_SUBJECT = {"failure": "Undelivered Mail Returned to Sender",
            "delay": "Delayed Mail (still being retried)",
            "success": "Successful Mail Delivery Report"}
_ACTION = {"failure": "failed", "delay": "delayed", "success": "relayed"}


def split_headers(message: bytes) -> bytes:
    """The header section of ``message`` including the blank line that ends it."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = message.find(sep)
        if end >= 0:
            return message[:end + len(sep)]
    return message if message.endswith(b"\r\n") else message + b"\r\n"


def _clean(text: str, limit: int = 900) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text[:limit]


def _date(ts: float) -> str:
    return email.utils.formatdate(ts, localtime=False, usegmt=True)


def _addr_field(address: str, addr_type: str = "rfc822") -> str:
    return f"{'utf-8' if not address.isascii() else addr_type};{address}"


def _status(kind: str, rcpt: QueuedRecipient) -> str:
    reply = rcpt.reply
    if kind == "failure" and reply is not None and not reply.permanent:
        return "4.4.7"
    if kind == "success":
        return reply.enhanced if reply is not None and reply.code < 300 else "2.0.0"
    if reply is None:
        return "4.0.0" if kind == "delay" else "5.0.0"
    return reply.enhanced


def _human(kind: str, hostname: str, recipients: list[QueuedRecipient],
           message: QueuedMessage, retry_until: float | None) -> str:
    lines = [f"This is the mail system at host {hostname}.", ""]
    if kind == "failure":
        lines += ["I'm sorry to have to inform you that your message could not",
                  "be delivered to one or more recipients. The details follow.", ""]
    elif kind == "delay":
        lines += ["Your message could not be delivered yet to one or more recipients.",
                  "It will be retried" + (f" until {_date(retry_until)}." if retry_until
                                          else "."),
                  "You do not need to send it again.", ""]
    else:
        lines += ["Your message was handed to a mail server that does not send",
                  "delivery notifications; this is the last report you will get", "for:", ""]
    for r in recipients:
        detail = ""
        if r.reply is not None:
            where = f"host {r.remote_mta} said: " if r.reply.remote and r.remote_mta else ""
            detail = f": {where}{_clean(str(r.reply), 400)}"
        lines.append(f"<{r.address}>{detail}")
    return "\r\n".join(lines) + "\r\n"


def build_dsn(kind: str, message: QueuedMessage, recipients: list[QueuedRecipient],
              original: bytes | None, *, hostname: str, now: float | None = None,
              max_body: int = 256 * 1024) -> bytes:
    """The report for ``recipients`` of ``message`` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown DSN kind {kind!r}")
    if not message.return_path:
        raise ValueError("no DSN is ever sent for the null reverse-path")
    now = time.time() if now is None else now
    boundary = f"{int(now)}.{os.urandom(8).hex()}/{hostname}"
    utf8 = not message.return_path.isascii() or any(not r.address.isascii()
                                                    for r in recipients)
    retry_until = message.expires if kind == "delay" else None

    # Per-message fields (RFC 3464 2.2).
    status_lines = [f"Reporting-MTA: dns; {hostname}"]
    if message.env_id:
        status_lines.append(f"Original-Envelope-Id: {_clean(message.env_id, 100)}")
    status_lines.append(f"Arrival-Date: {_date(message.created)}")
    for r in recipients:
        block = [""]
        if r.orcpt:
            block.append(f"Original-Recipient: {r.orcpt[0]};{_clean(r.orcpt[1], 500)}")
        block.append(f"Final-Recipient: {_addr_field(r.address)}")
        block.append(f"Action: {_ACTION[kind]}")
        block.append(f"Status: {_status(kind, r)}")
        if r.remote_mta and r.remote_mta != "local":
            block.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.reply is not None:
            prefix = "smtp" if r.reply.remote else "x-stalwart"
            block.append(f"Diagnostic-Code: {prefix}; {_clean(str(r.reply))}")
        if message.history:
            block.append(f"Last-Attempt-Date: {_date(message.history[-1].at)}")
        if retry_until is not None:
            block.append(f"Will-Retry-Until: {_date(retry_until)}")
        status_lines += block
    status = "\r\n".join(status_lines) + "\r\n"

    full = (original is not None and not message.requiretls and len(original) <= max_body
            and (message.ret == "FULL" or (message.ret is None and kind == "failure")))
    if original is None:
        returned, returned_type = b"", ""
    elif full:
        returned = original if original.endswith(b"\r\n") else original + b"\r\n"
        returned_type = "message/global" if message.smtputf8 else "message/rfc822"
    else:
        returned = split_headers(original)
        returned_type = "text/global-headers" if message.smtputf8 else "text/rfc822-headers"

    human = _human(kind, hostname, recipients, message, retry_until)
    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{message.return_path}>",
        f"Subject: {_SUBJECT[kind]}",
        f"Date: {_date(now)}",
        f"Message-ID: <{int(now * 1000)}.{os.urandom(6).hex()}@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    text_cte = "8bit" if not human.isascii() else "7bit"
    parts = [
        "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n",
        b"This is a MIME-encapsulated message.\r\n\r\n",
        f"--{boundary}\r\nContent-Description: Notification\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: {text_cte}\r\n\r\n".encode(),
        human.encode("utf-8"), b"\r\n",
        f"--{boundary}\r\nContent-Description: Delivery report\r\n"
        f"Content-Type: message/{'global-' if utf8 else ''}delivery-status\r\n\r\n".encode(),
        status.encode("utf-8"), b"\r\n",
    ]
    if returned_type:
        desc = "Undelivered Message" if full else "Undelivered Message Headers"
        if kind != "failure":
            desc = desc.replace("Undelivered", "Original")
        cte = "" if returned.isascii() else "Content-Transfer-Encoding: 8bit\r\n"
        parts += [f"--{boundary}\r\nContent-Description: {desc}\r\n"
                  f"Content-Type: {returned_type}\r\n{cte}\r\n".encode(),
                  returned, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)
