"""POP3 server (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), SASL (RFC 5034),
RESP-CODES and AUTH-RESP-CODE (RFC 2449, RFC 3206), PIPELINING, UIDL, TOP and UTF8
(RFC 6856), over the shared store.

Modules
- ``machine``   the sans-IO session (state table at the top), ``commands/`` one module
                per command
- ``codes``     named replies and extended response codes
- ``events``    what the machine asks of its adapter
- ``maildrop``  the INBOX snapshot taken at login, UIDL ids, message content sources
- ``encoder``   streaming dot-stuffing for RETR/TOP
- ``services``  answers to the machine's requests from the store
- ``session``   the asyncio adapter; ``server`` the pop3 pool's ``serve(ctx)``
- ``testing``   transcript driver for tests
"""

from .machine import Pop3Config, Pop3Machine

__all__ = ["Pop3Config", "Pop3Machine"]
