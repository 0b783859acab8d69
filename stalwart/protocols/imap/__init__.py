"""IMAP4rev2 (RFC 9051) with IMAP4rev1 (RFC 3501) compatibility: the sans-IO core.

- ``grammar_ref``: the incremental command parser (pure-Python reference of the grammar
  the Rust parser will implement); ``types``: the values every parser produces.
- ``session``: the state machine over the store (``ImapSession``); ``commands/``: one
  module per command; ``selected``: the selected mailbox view (sequence numbers, UIDs,
  unsolicited updates); ``mailboxes``: IMAP names of the store's mailbox tree.
- ``encode``, ``message``, ``flags``, ``mutf7``: response encoding, ENVELOPE /
  BODYSTRUCTURE / sections over the Rust MIME parser, flag mapping, modified UTF-7.
- ``sorting``: SORT keys, base subjects and THREAD algorithms (RFC 5256, RFC 5957).
- ``server``: ``serve(ctx)`` for the imap pool and the asyncio adapter (TLS, STARTTLS,
  backpressure, timeouts, drain, store change events driving IDLE).
- ``testing``: the transcript harness used by tests/protocol/test_imap_*.py.
"""
