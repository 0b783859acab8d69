"""SMTP and LMTP (RFC 5321, RFC 2033) with their service extensions.

Modules:

- ``_data`` (Cython): the receivers of the message content, ``DataReceiver`` for DATA
  (RFC 5321 4.5.2 dot-stuffing, end at ``<CRLF>.<CRLF>`` only) and ``BdatReceiver`` for
  BDAT chunks (RFC 3030), with the SMTP smuggling defences and the size limit.
- ``data_ref``: the same behaviour in plain Python, for differential tests and
  ``bench.micro.data_receiver`` only; it is never used as a run-time fallback.

Import the compiled module explicitly (``from stalwart.protocols.smtp._data import
DataReceiver``); this package does not import it, so a missing build fails where it is used.
"""
