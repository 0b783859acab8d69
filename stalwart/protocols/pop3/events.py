"""What the POP3 machine asks of its adapter, and the session facts it shares.

``Pop3Machine.next_event()`` returns ``NEED_DATA``, ``SEND``, ``CLOSE`` or one of the
requests below. A request that needs an answer blocks the machine: it processes no input
until the adapter calls ``machine.answer(value)``. Replies never travel in events: the
machine queues them, in order, in its output buffer (``data_to_send()``).

Request          answer(...) with
---------------  -------------------------------------------------------------------------
Authenticate     what the SASL step asks for (identity / credentials / None), or
                 ``TEMPFAIL`` when the directory cannot be reached
OpenMaildrop     a ``Maildrop`` snapshot of the account's INBOX, or ``TEMPFAIL``
FetchMessage     an iterable of byte chunks holding the raw message (``close()`` is
                 called on it when done, if it has one), None when the message no longer
                 exists, or ``TEMPFAIL``
Expunge          anything but ``TEMPFAIL`` once the UIDs are removed durably
StartTls         True once TLS is up, False if the handshake failed (the session closes)
AuthOutcome      nothing: informational (log the failure, slow the client down)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stalwart.protocols.base import Sentinel
from stalwart.sasl import LookupCredentials, VerifyPassword

from .maildrop import Maildrop, MaildropMessage

CLOSE = Sentinel("CLOSE")
"""The session is over: flush ``data_to_send()`` and close the connection."""

SEND = Sentinel("SEND")
"""Output piled up (a message being streamed, a long listing): flush ``data_to_send()``,
wait for the transport to drain (backpressure), then call ``next_event()`` again."""

TEMPFAIL = Sentinel("TEMPFAIL")
"""The answer to a request when the store or directory cannot be reached."""


@dataclass
class Session:
    """Facts about the connection. The adapter fills the network fields; the machine
    keeps the rest up to date. Services must treat it as read-only."""

    remote_ip: str = ""
    remote_port: int = 0
    loopback: bool = False            # peer on a loopback address: cannot be sniffed
    tls: bool = False
    tls_version: str = ""
    identity: Any = None              # what the directory returned (an account dict)
    authcid: str = ""                 # the login used
    auth_mechanism: str = ""          # "USER" for USER/PASS, else the SASL name
    utf8: bool = False                # RFC 6856 UTF8 mode

    @property
    def authenticated(self) -> bool:
        return self.identity is not None

    @property
    def account_id(self) -> int:
        identity = self.identity
        return int(identity["id"]) if isinstance(identity, dict) else int(identity)


@dataclass(frozen=True)
class Authenticate:
    session: Session
    mechanism: str
    request: VerifyPassword | LookupCredentials


@dataclass(frozen=True)
class AuthOutcome:
    session: Session
    mechanism: str
    authcid: str
    success: bool
    reason: str = ""                  # for logs only
    failures: int = 0                 # failures so far in this session


@dataclass(frozen=True)
class OpenMaildrop:
    session: Session


@dataclass(frozen=True)
class FetchMessage:
    session: Session
    maildrop: Maildrop
    message: MaildropMessage
    top_lines: int | None = None      # TOP: body lines wanted; None for RETR


@dataclass(frozen=True)
class Expunge:
    session: Session
    account: int
    mailbox: int
    uids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class StartTls:
    session: Session


Event = Authenticate | AuthOutcome | OpenMaildrop | FetchMessage | Expunge | StartTls
