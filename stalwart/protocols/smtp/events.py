"""What the SMTP/LMTP machine asks of its adapter, and the session facts it shares.

``SmtpMachine.next_event()`` returns ``NEED_DATA``, ``CLOSE`` or one of the requests
below. A request that needs an answer (``needs_answer``) blocks the machine: it processes
no further input until the adapter calls ``machine.answer(value)``. Informational events
(``AuthOutcome``) need no answer. Replies never travel in events: the machine puts them,
in order, in its output buffer (``data_to_send()``).

Request              answer(...) with
-------------------  -----------------------------------------------------------------
CheckSender          ``Verdict`` (or None to accept with the default reply)
CheckRecipient       ``Verdict``; a positive verdict's ``target`` is kept for delivery
Authenticate         what the SASL step asks for (identity / credentials / None), or
                     ``TEMPFAIL`` when the directory cannot be reached
StartTls             True once TLS is up, False if the handshake failed (we close)
Deliver              a list of ``Reply``, one per ``envelope.recipients`` entry, in order
AuthOutcome          nothing (log it, maybe sleep to slow down guessing)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stalwart.protocols.base import Sentinel
from stalwart.sasl import LookupCredentials, VerifyPassword

from .address import Path
from .codes import Reply
from .params import MailParams, RcptParams

CLOSE = Sentinel("CLOSE")
"""The session is over: flush ``data_to_send()`` and close the connection."""

TEMPFAIL = Sentinel("TEMPFAIL")
"""Answer to ``Authenticate`` (or a verdict) when the directory or store is unreachable."""


@dataclass
class Session:
    """Facts about the connection that policy and delivery need. The machine updates
    it; the adapter fills the network fields. Policies must treat it as read-only."""

    remote_ip: str = ""
    remote_port: int = 0
    local_ip: str = ""
    local_port: int = 0
    lmtp: bool = False
    submission: bool = False          # AUTH required before MAIL (RFC 6409 4.3)
    helo: str = ""
    esmtp: bool = False               # EHLO/LHLO (not HELO) was used
    tls: bool = False
    tls_version: str = ""
    tls_cipher: str = ""
    identity: Any = None              # whatever the directory returned on AUTH
    authcid: str = ""                 # the login used
    auth_mechanism: str = ""

    @property
    def authenticated(self) -> bool:
        return self.identity is not None


@dataclass(frozen=True)
class Verdict:
    """A policy answer: ``reply`` to send; ``target`` travels with an accepted recipient
    (e.g. the account id) to the ``Deliver`` request."""

    reply: Reply
    target: Any = None

    @property
    def accepted(self) -> bool:
        return self.reply.is_positive


@dataclass
class Recipient:
    path: Path
    params: RcptParams
    target: Any = None


@dataclass
class Envelope:
    """One mail transaction (RFC 5321 3.3)."""

    mail_from: Path
    params: MailParams
    recipients: list[Recipient] = field(default_factory=list)
    body: str = "7BIT"                # declared BODY (RFC 6152)
    chunked: bool = False             # received with BDAT (RFC 3030)


# ---------------------------------------------------------------------- requests
@dataclass(frozen=True)
class CheckSender:
    session: Session
    path: Path
    params: MailParams
    needs_answer = True


@dataclass(frozen=True)
class CheckRecipient:
    session: Session
    envelope: Envelope
    path: Path
    params: RcptParams
    needs_answer = True


@dataclass(frozen=True)
class Authenticate:
    session: Session
    mechanism: str
    request: VerifyPassword | LookupCredentials
    needs_answer = True


@dataclass(frozen=True)
class StartTls:
    session: Session
    needs_answer = True


@dataclass(frozen=True)
class Deliver:
    session: Session
    envelope: Envelope
    message: bytes
    needs_answer = True


@dataclass(frozen=True)
class AuthOutcome:
    """An AUTH exchange ended. ``failures`` counts failures in this session so far."""

    session: Session
    mechanism: str
    authcid: str
    success: bool
    reason: str = ""
    failures: int = 0
    needs_answer = False


Event = CheckSender | CheckRecipient | Authenticate | StartTls | Deliver | AuthOutcome
