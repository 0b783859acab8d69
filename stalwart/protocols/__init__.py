"""Protocol cores (sans-IO) and their asyncio adapters: one package per protocol.

``base`` holds what every core shares: the ``NEED_DATA`` sentinel, ``RemoteProtocolError``
(with the reply code to send) and ``LocalProtocolError``, and a bounded ``LineReader``.
Each protocol package (``smtp``, later ``imap``, ``pop3``, ``managesieve``) splits into a
parser, a sans-IO machine, a session adapter and one module per command.
"""
