"""Who may send what to whom: the questions the SMTP machine asks, and the default
answers over the store's directory.

    policy = StorePolicy(store)
    verdict = await policy.check_sender(session, path, params)        # MAIL FROM
    verdict = await policy.check_recipient(session, envelope, path, params)  # RCPT TO
    account = await policy.authenticate(login, password)               # AUTH (PLAIN/LOGIN)
    creds   = await policy.scram_credentials(login)                    # AUTH SCRAM-SHA-256

The rules (never an open relay, RFC 5321 3.6.2 and 7.1)
1. A recipient in a local domain (``store.is_local_domain``, alias domains included) is
   accepted only if the directory resolves it (``store.resolve_address``: account
   addresses, aliases, alias domains, sub-addressing ``user+tag@``, the domain's
   catch-all); else 550 5.1.1.
2. A local part that carries sender-specified routing, ``user%remote@local`` (percent
   hack), ``remote!user@local`` (UUCP bang path), a quoted ``"user@remote"@local`` (or a
   quoted ``:`` / ``,`` / backslash), is an unknown user: 550 5.1.1, and it never reaches
   the catch-all. It is opaque text, not a forwarding instruction.
3. A source route ``<@hop:user@domain>`` was dropped by the parser: only ``user@domain``
   counts (RFC 5321 4.1.1.3, App. C).
4. Any other recipient is a relay. Relaying needs an authenticated client (or one from
   ``relay_networks``, empty by default); otherwise 550 5.7.1. An accepted relay recipient
   (target ``{"relay": address}``) goes to the outbound queue (``delivery``); a store
   without a queue answers 451 4.3.2. An address literal (``user@[192.0.2.1]``, even our
   own IP) is never local: it is a relay too.
5. Domains are compared as IDNA A-labels in lower case; the parser already refused
   U-labels that IDNA maps (width, compatibility forms), so a look-alike such as a
   Cyrillic "а" encodes to a different A-label and is simply not local.
6. LMTP never relays: every recipient must be local (RFC 2033 is for final delivery).
7. On submission (an authenticated session), MAIL FROM must be one of the account's own
   addresses, via alias domains and sub-addressing, never through a catch-all; the null
   path is refused (553 5.7.1). Unauthenticated senders are accepted here (SPF, DKIM and
   DMARC judge them later).
8. A forwarding alias (``store.resolve_recipient``, ``stalwart/store/ops/forward.py``)
   is a local address: anyone may send to it, and the verdict's target is its expansion
   as the store made it (``{"forward", "address", "accounts": [[target, id]...],
   "remote": [addresses]}``). Only those targets are reached (remote ones through the
   queue, ARC-sealed: ``stalwart.protocols.smtp.forward``); the tricks of rule 2 on a
   forward's address are unknown users like any other, sub-addressing reaches the
   forward (``info+tag@``), and a forward whose every target is gone is 550 5.1.1.
   Remote targets need the queue (451 4.3.2 without one); LMTP accepts them too (they
   are the administrator's, not the client's).
A store that cannot be reached gives 451 4.3.0, never an accept.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Protocol

from stalwart.store.errors import StoreError

from . import codes
from .address import Address, Path
from .events import Envelope, Session, Verdict
from .params import MailParams, RcptParams


class Policy(Protocol):
    async def check_sender(self, session: Session, path: Path, params: MailParams) -> Verdict: ...

    async def check_recipient(self, session: Session, envelope: Envelope, path: Path,
                              params: RcptParams) -> Verdict: ...


def identity_account(identity: Any) -> int | None:
    """Account id of an authenticated identity (store account dict or directory Principal)."""
    if isinstance(identity, dict):
        value = identity.get("id")
    else:
        value = getattr(identity, "id", None)
    return value if isinstance(value, int) else None


def identity_emails(identity: Any) -> tuple[str, ...]:
    emails = identity.get("emails") if isinstance(identity, dict) else getattr(identity, "emails", ())
    return tuple(e.lower() for e in (emails or ()) if isinstance(e, str))


class StorePolicy:
    """The default policy over ``stalwart.store.api.Store``."""

    def __init__(self, store: Any, *, relay_networks: Iterable[str] = (),
                 relay_enabled: bool | None = None, postmaster: str | None = None) -> None:
        self.store = store
        self.relay_networks = tuple(ipaddress.ip_network(n, strict=False) for n in relay_networks)
        #: Whether a relay queue exists to take remote recipients; by default, whether
        #: the store keeps queue entries (``queue_put``, which the delivery uses).
        self.relay_enabled = (callable(getattr(store, "queue_put", None))
                              if relay_enabled is None else relay_enabled)
        self.postmaster = postmaster

    # ------------------------------------------------------------------ relay rights
    def may_relay(self, session: Session) -> bool:
        if session.lmtp:
            return False
        if session.authenticated:
            return True
        try:
            ip = ipaddress.ip_address(session.remote_ip)
        except ValueError:
            return False
        return any(ip in net for net in self.relay_networks)

    # ------------------------------------------------------------------ MAIL FROM
    async def check_sender(self, session: Session, path: Path, params: MailParams) -> Verdict:
        if not session.authenticated:
            return Verdict(codes.SENDER_OK)
        if path.address is None:
            return Verdict(codes.BAD_SENDER.with_text("Null sender not allowed for authenticated clients"))
        try:
            owned = self._owns(session.identity, path.address)
        except StoreError as exc:
            return Verdict(codes.TEMP_LOOKUP if exc.code == "unavailable" else codes.BAD_SENDER)
        return Verdict(codes.SENDER_OK if owned else codes.BAD_SENDER)

    def _owns(self, identity: Any, address: Address) -> bool:
        if address.literal or address.has_routing:
            return False
        emails = set(identity_emails(identity))
        local, domain = address.local.lower(), address.domain_key
        record = self.store.get_domain(domain)
        if record is not None and record.get("alias_of"):
            domain = record["alias_of"]
        candidates = {f"{local}@{domain}"}
        if "+" in local and not local.startswith("+"):
            candidates.add(f"{local.split('+', 1)[0]}@{domain}")
        return bool(candidates & emails)

    # ------------------------------------------------------------------ RCPT TO
    async def check_recipient(self, session: Session, envelope: Envelope, path: Path,
                              params: RcptParams) -> Verdict:
        try:
            return self._recipient(session, path)
        except StoreError as exc:
            if exc.code == "unavailable":
                return Verdict(codes.TEMP_LOOKUP)
            return Verdict(codes.NO_SUCH_USER)

    def _recipient(self, session: Session, path: Path) -> Verdict:
        if path.postmaster:
            # RFC 5321 4.1.1.3: <Postmaster> must be accepted; it is ours.
            account = self._postmaster()
            if account is None:
                return Verdict(codes.NO_SUCH_USER)
            return Verdict(codes.RECIPIENT_OK, {"account": account, "address": "postmaster"})
        address = path.address
        assert address is not None
        if not address.literal and self.store.is_local_domain(address.domain_key):
            if address.has_routing:
                return Verdict(codes.NO_SUCH_USER)
            resolve = getattr(self.store, "resolve_recipient", None)
            if resolve is None:                 # a store without forwarding aliases
                account = self.store.resolve_address(address.key())
                found = None if account is None else {"account": account}
            else:
                found = resolve(address.key())
            if found is None:
                return Verdict(codes.NO_SUCH_USER)
            if "forward" in found:
                return self._forward(session, address, found)
            return Verdict(codes.RECIPIENT_OK, {"account": found["account"],
                                                "address": address.key()})
        if session.lmtp:
            return Verdict(codes.NO_SUCH_USER)
        if not self.may_relay(session):
            return Verdict(codes.RELAY_DENIED)
        if not self.relay_enabled:
            return Verdict(codes.reply(451, "4.3.2", "Relay queue not available, try later"))
        return Verdict(codes.RECIPIENT_OK, {"relay": str(address)})

    def _forward(self, session: Session, address: Address, found: dict) -> Verdict:
        """A forwarding alias (rule 8): accepted from anyone, as a local address; the
        target carries the expansion the store made, so delivery reaches exactly the
        configured targets and nothing the client wrote."""
        if found["remote"] and not self.relay_enabled:
            return Verdict(codes.reply(451, "4.3.2", "Forwarding queue not available, "
                                                     "try later"))
        return Verdict(codes.RECIPIENT_OK, {"forward": found["forward"],
                                            "address": address.key(),
                                            "accounts": found["accounts"],
                                            "remote": found["remote"]})

    def _postmaster(self) -> int | None:
        if self.postmaster:
            return self.store.resolve_address(self.postmaster)
        # The first domain (by name) with a real postmaster@ address: exact addresses
        # only, so a catch-all never silently becomes the postmaster.
        for domain in sorted(d["name"] for d in self.store.list_domains() if not d.get("alias_of")):
            account = self.store.get_account(f"postmaster@{domain}")
            if account is not None:
                return account["id"]
        return None


class StoreAuthenticator:
    """Answers the SASL requests of AUTH from the store's directory.

    - ``verify_password``: ``store.authenticate`` (argon2 in a thread). An authorization
      identity other than the login is allowed only when it names the same account (no
      proxy authentication for now).
    - ``scram_credentials``: the account's stored SCRAM-SHA-256 secret (RFC 5803 text) if
      the store keeps one (``store.get_scram_credentials(login)``; see the SASL notes in
      ``stalwart.sasl.scram``), else None, and SCRAM then fails like a wrong password.
    Both raise ``StoreError("unavailable")`` when the store cannot be reached.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def _same_account(self, account: dict, authzid: str) -> bool:
        if not authzid:
            return True
        other = self.store.get_account(authzid)
        return other is not None and other.get("id") == account.get("id")

    async def verify_password(self, authcid: str, password: str, authzid: str = "") -> Any:
        account = await self.store.authenticate(authcid, password)
        if account is None or not self._same_account(account, authzid):
            return None
        return account

    async def scram_credentials(self, authcid: str, authzid: str = "") -> Any:
        lookup = getattr(self.store, "get_scram_credentials", None)
        if lookup is None:
            return None
        account = self.store.get_account(authcid)
        if account is None or account.get("disabled") or not self._same_account(account, authzid):
            return None
        secret = lookup(authcid)
        return None if secret is None else (secret, account)
