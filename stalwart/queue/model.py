"""The queued message: envelope, per-recipient state, schedule and attempt history.

A ``QueuedMessage`` is what the store keeps for each message waiting for remote delivery.
The bytes live in the blob store (``blob`` is their SHA-256), written durably *before* the
queue entry that points at them. The record converts to and from a plain dict
(``to_record``/``from_record``) of msgpack-friendly values; that dict is what the store
persists, so its keys are a stored format: add keys, never rename them.

Recipient states (``RcptStatus``)::

    PENDING ---- 2xx ----> DELIVERED   (final; success DSN "relayed" when asked and the
       |                                next hop does not speak DSN, RFC 3461 5.2.2)
       |------ 5xx ----> FAILED       (final; failure DSN)
       |------ expiry --> FAILED       (4.4.7 with the last temporary error, RFC 3463)
       '------ 4xx ----> PENDING      (retry at ``due``; delay DSN once, when due)

Invariants
- ``return_path == ""`` is the null reverse-path: no DSN is ever generated for it
  (RFC 5321 4.5.5, RFC 3461 6.2), which also keeps DSNs from looping.
- A message is deleted from the queue once no recipient is PENDING and the DSNs it owes
  have been queued.
- ``history`` keeps the last ``MAX_HISTORY`` attempts; ``attempts`` counts all of them.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RcptStatus", "Reply", "QueuedRecipient", "Attempt", "QueuedMessage",
           "MAX_HISTORY", "domain_of"]

MAX_HISTORY = 20


class RcptStatus(str, enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Reply:
    """What happened to a recipient: an SMTP reply from a server, or one we made up
    (DNS failure, timeout) with ``remote=False``."""

    code: int
    status: str          # enhanced status code "x.y.z" (RFC 3463), "" if unknown
    text: str
    remote: bool = True  # the text came from the remote server (Diagnostic-Code smtp;)

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def enhanced(self) -> str:
        """The enhanced code to report: the server's, else derived from the basic code."""
        if self.status:
            return self.status
        return {2: "2.0.0", 4: "4.0.0", 5: "5.0.0"}.get(self.code // 100, "4.0.0")

    def __str__(self) -> str:
        return f"{self.code} {self.status + ' ' if self.status else ''}{self.text}".rstrip()

    def to_record(self) -> list:
        return [self.code, self.status, self.text, self.remote]

    @classmethod
    def from_record(cls, rec: list) -> "Reply":
        return cls(int(rec[0]), str(rec[1]), str(rec[2]), bool(rec[3]))


def domain_of(address: str) -> str:
    """The domain of ``local@domain`` in lower case (the key recipients are grouped by)."""
    return address.rpartition("@")[2].lower()


@dataclass(slots=True)
class QueuedRecipient:
    address: str
    notify: tuple[str, ...] | None = None     # RFC 3461 NOTIFY; None = not given
    orcpt: tuple[str, str] | None = None      # (addr-type, address)
    status: RcptStatus = RcptStatus.PENDING
    reply: Reply | None = None                # the latest outcome
    remote_mta: str = ""                      # host that gave ``reply``
    relayed: bool = False                     # delivered to a host without DSN support
    notified: tuple[str, ...] = ()            # DSN kinds already sent: delay, failure, success

    @property
    def domain(self) -> str:
        return domain_of(self.address)

    def wants(self, kind: str) -> bool:
        """Whether NOTIFY asks for a DSN of ``kind`` ("success", "failure", "delay").

        Without NOTIFY, RFC 3461 4.1 leaves FAILURE or FAILURE,DELAY to the MTA: we send
        both (a delay notice is sent only when the delay-DSN timer is configured).
        """
        if self.notify is None:
            return kind in ("failure", "delay")
        return kind.upper() in self.notify

    def to_record(self) -> dict:
        return {"a": self.address, "n": list(self.notify) if self.notify is not None else None,
                "o": list(self.orcpt) if self.orcpt else None, "s": self.status.value,
                "r": self.reply.to_record() if self.reply else None, "m": self.remote_mta,
                "rl": self.relayed, "nf": list(self.notified)}

    @classmethod
    def from_record(cls, rec: dict) -> "QueuedRecipient":
        return cls(address=rec["a"],
                   notify=tuple(rec["n"]) if rec.get("n") is not None else None,
                   orcpt=(rec["o"][0], rec["o"][1]) if rec.get("o") else None,
                   status=RcptStatus(rec.get("s", "pending")),
                   reply=Reply.from_record(rec["r"]) if rec.get("r") else None,
                   remote_mta=rec.get("m", ""), relayed=bool(rec.get("rl", False)),
                   notified=tuple(rec.get("nf", ())))


@dataclass(frozen=True, slots=True)
class Attempt:
    at: float
    domain: str
    host: str                 # MX host or relay ("" when DNS failed before any host)
    ip: str
    reply: Reply

    def to_record(self) -> list:
        return [self.at, self.domain, self.host, self.ip, self.reply.to_record()]

    @classmethod
    def from_record(cls, rec: list) -> "Attempt":
        return cls(float(rec[0]), rec[1], rec[2], rec[3], Reply.from_record(rec[4]))


@dataclass(slots=True)
class QueuedMessage:
    return_path: str                          # "" = null reverse-path
    recipients: list[QueuedRecipient]
    blob: bytes                               # SHA-256 of the message bytes
    size: int
    created: float = field(default_factory=time.time)
    due: float = 0.0                          # next attempt (epoch seconds)
    expires: float = 0.0                      # give up on pending recipients after this
    attempts: int = 0
    env_id: str | None = None                 # RFC 3461 ENVID
    ret: str | None = None                    # RFC 3461 RET: "FULL" | "HDRS"
    requiretls: bool = False                  # RFC 8689
    smtputf8: bool = False                    # RFC 6531
    body: str = "7BIT"                        # "7BIT" | "8BITMIME" as declared
    is_dsn: bool = False                      # a notification we generated
    history: list[Attempt] = field(default_factory=list)
    id: int | None = None                     # assigned by the store

    @property
    def pending(self) -> list[QueuedRecipient]:
        return [r for r in self.recipients if r.status is RcptStatus.PENDING]

    @property
    def done(self) -> bool:
        return not self.pending

    def domains(self) -> dict[str, list[QueuedRecipient]]:
        """Pending recipients grouped by domain, in first-seen order."""
        out: dict[str, list[QueuedRecipient]] = {}
        for r in self.pending:
            out.setdefault(r.domain, []).append(r)
        return out

    def record_attempt(self, attempt: Attempt) -> None:
        self.history.append(attempt)
        del self.history[:-MAX_HISTORY]

    def copy(self) -> "QueuedMessage":
        return QueuedMessage.from_record(self.to_record())

    def to_record(self) -> dict[str, Any]:
        return {
            "v": 1, "id": self.id, "from": self.return_path,
            "rcpt": [r.to_record() for r in self.recipients],
            "blob": bytes(self.blob), "size": self.size, "created": self.created,
            "due": self.due, "expires": self.expires, "attempts": self.attempts,
            "envid": self.env_id, "ret": self.ret, "requiretls": self.requiretls,
            "smtputf8": self.smtputf8, "body": self.body, "dsn": self.is_dsn,
            "history": [a.to_record() for a in self.history],
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "QueuedMessage":
        return cls(return_path=rec["from"],
                   recipients=[QueuedRecipient.from_record(r) for r in rec["rcpt"]],
                   blob=bytes(rec["blob"]), size=int(rec["size"]),
                   created=float(rec["created"]), due=float(rec["due"]),
                   expires=float(rec["expires"]), attempts=int(rec.get("attempts", 0)),
                   env_id=rec.get("envid"), ret=rec.get("ret"),
                   requiretls=bool(rec.get("requiretls", False)),
                   smtputf8=bool(rec.get("smtputf8", False)), body=rec.get("body", "7BIT"),
                   is_dsn=bool(rec.get("dsn", False)),
                   history=[Attempt.from_record(a) for a in rec.get("history", ())],
                   id=rec.get("id"))

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view for ``stalwart-cli queue list|show`` and the REST API."""
        return {
            "id": self.id, "from": self.return_path, "size": self.size,
            "created": self.created, "due": self.due, "expires": self.expires,
            "attempts": self.attempts, "requiretls": self.requiretls, "dsn": self.is_dsn,
            "recipients": [{"address": r.address, "status": r.status.value,
                            "reply": str(r.reply) if r.reply else None,
                            "host": r.remote_mta} for r in self.recipients],
            "history": [{"at": a.at, "domain": a.domain, "host": a.host, "ip": a.ip,
                         "reply": str(a.reply)} for a in self.history],
        }

