"""Answers to the machine's requests from the shared store: the policy side of POP3.

``StoreServices.answer(event)`` is what both the asyncio adapter (session.py) and the
transcript driver (testing.py) call, so a transcript test exercises exactly the code
that serves clients:

- ``Authenticate``: the store's directory through ``StoreAuthenticator`` (argon2 check
  in a thread; SCRAM from the stored RFC 5803 credentials).
- ``OpenMaildrop``: a snapshot of the INBOX (``maildrop.load_maildrop``), after catching
  up with every commit announced so far (a login is a request boundary).
- ``FetchMessage``: the message's chunks (``maildrop.message_source``), or None when it
  was removed since the snapshot.
- ``Expunge``: ``store.expunge`` of the marked UIDs, one durable operation. An INBOX that
  no longer exists means there is nothing left to remove: that is success.

A store that cannot be reached (``StoreError``, or an I/O error reading the secondary)
answers ``TEMPFAIL``; the machine turns it into ``-ERR [SYS/TEMP]``.
"""

from __future__ import annotations

import logging
from typing import Any

from stalwart import sasl
from stalwart.protocols.smtp.policy import StoreAuthenticator
from stalwart.store.errors import StoreError

from .events import TEMPFAIL, Authenticate, Expunge, FetchMessage, OpenMaildrop
from .maildrop import load_maildrop, message_source

log = logging.getLogger("stalwart.pop3")


class StoreServices:
    def __init__(self, store: Any, authenticator: Any = None) -> None:
        self.store = store
        self.authenticator = authenticator if authenticator is not None \
            else StoreAuthenticator(store)

    async def answer(self, event: Any) -> Any:
        try:
            if isinstance(event, Authenticate):
                req = event.request
                if isinstance(req, sasl.VerifyPassword):
                    return await self.authenticator.verify_password(
                        req.authcid, req.password, req.authzid)
                return await self.authenticator.scram_credentials(req.authcid, req.authzid)
            if isinstance(event, OpenMaildrop):
                refresh = getattr(self.store, "refresh", None)
                if refresh is not None:
                    refresh()
                return load_maildrop(self.store, event.session.account_id)
            if isinstance(event, FetchMessage):
                return message_source(self.store, event.maildrop.account,
                                      event.message.email_id)
            if isinstance(event, Expunge):
                try:
                    return await self.store.expunge(event.account, event.mailbox, event.uids)
                except StoreError as exc:
                    if exc.code == "not_found":
                        return {"expunged": []}
                    raise
        except StoreError as exc:
            log.warning("pop3 %s failed: %s", type(event).__name__, exc)
            return TEMPFAIL
        except OSError as exc:
            log.error("pop3 %s failed reading the store: %s", type(event).__name__, exc)
            return TEMPFAIL
        raise TypeError(f"not a store request: {event!r}")
