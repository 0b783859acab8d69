"""The sans-IO contract shared by every server-side SASL mechanism (RFC 4422).

A mechanism never does I/O and never looks anything up itself. The protocol (SMTP AUTH,
IMAP AUTHENTICATE, POP3 AUTH, ManageSieve AUTHENTICATE) drives it::

    mech = sasl.server_mechanism("PLAIN")
    step = mech.start(initial_response)          # bytes or None (no initial response)
    while True:
        if isinstance(step, Challenge):          # send step.data, read the client's answer
            step = mech.respond(answer_bytes)
        elif isinstance(step, VerifyPassword):   # await the directory: identity or None
            step = mech.resolve(await directory.verify(step.authcid, step.password, step.authzid))
        elif isinstance(step, LookupCredentials):  # await the SCRAM credentials or None
            step = mech.resolve(await directory.scram(step.authcid))
        elif isinstance(step, Success):          # step.identity; step.final = data to send
            break
        elif isinstance(step, Failure):
            break

Invariants
- Every method returns exactly one step and never raises for anything the client sent:
  malformed input is a ``Failure`` (the client broke the exchange), not an exception.
- A mechanism is single-use: after ``Success`` or ``Failure`` any further call raises
  ``RuntimeError`` (that is a bug in the protocol code, not in the client's input).
- Base64 is the protocol's business (RFC 4422 4 leaves the encoding to the protocol);
  mechanisms take and give raw octets.
- Identities are UTF-8 (RFC 4422 3.4.1); a NUL anywhere in one is a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Longest identity and password accepted (RFC 4616 3 requires at least 255 octets).
MAX_IDENTITY = 320
MAX_PASSWORD = 1024


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``data`` to the client and call ``respond`` with its answer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class VerifyPassword:
    """Check ``password`` for ``authcid``; ``resolve(identity or None)``.

    ``authzid`` is the identity to act as ("" for the same as authcid): the directory
    decides whether authcid may act as it, and returns None if not."""

    authcid: str
    password: str
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class LookupCredentials:
    """Fetch the stored SCRAM credentials of ``authcid``; ``resolve((creds, identity))``
    or ``resolve(None)`` when there are none (unknown user, or no SCRAM secret stored)."""

    authcid: str
    authzid: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class Success:
    """Authenticated as ``identity`` (what the directory returned). ``final``: additional
    data for the client with the outcome (SCRAM's server signature), or None."""

    identity: Any
    authcid: str
    authzid: str = ""
    final: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """The exchange failed. ``reason`` is for logs only, never for the client.
    ``malformed``: the client broke the mechanism's syntax (vs. wrong credentials).
    ``authcid``: who tried, when known (for the fail2ban line)."""

    reason: str
    authcid: str = ""
    malformed: bool = False


Step = Challenge | VerifyPassword | LookupCredentials | Success | Failure


def decode_identity(raw: bytes) -> str | None:
    """A UTF-8 identity without NUL or control characters, or None."""
    if len(raw) > MAX_IDENTITY:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    return text


class ServerMechanism:
    """Base class: tracks completion so a finished exchange cannot be driven again."""

    name: str = ""
    #: True when the mechanism sends the password itself (PLAIN, LOGIN): such mechanisms
    #: are offered only over TLS unless the configuration says otherwise (RFC 4954 4).
    plaintext: bool = True

    def __init__(self) -> None:
        self._done = False
        self._started = False

    def start(self, initial: bytes | None) -> Step:
        if self._started:
            raise RuntimeError("SASL exchange already started")
        self._started = True
        return self._finish(self._start(initial))

    def respond(self, data: bytes) -> Step:
        self._check()
        return self._finish(self._respond(data))

    def resolve(self, answer: Any) -> Step:
        self._check()
        return self._finish(self._resolve(answer))

    # ------------------------------------------------------------------ helpers
    def _check(self) -> None:
        if self._done or not self._started:
            raise RuntimeError("SASL exchange is not in progress")

    def _finish(self, step: Step) -> Step:
        if isinstance(step, (Success, Failure)):
            self._done = True
        return step

    def _start(self, initial: bytes | None) -> Step:  # pragma: no cover - abstract
        raise NotImplementedError

    def _respond(self, data: bytes) -> Step:  # pragma: no cover - abstract
        raise NotImplementedError

    def _resolve(self, answer: Any) -> Step:  # pragma: no cover - abstract
        raise NotImplementedError
