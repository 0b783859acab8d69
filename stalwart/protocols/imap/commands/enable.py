"""ENABLE (RFC 5161, RFC 9051 6.3.1): switch on CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2.

Unknown capabilities are ignored, as the RFC requires; ``* ENABLED`` lists only those
newly enabled. QRESYNC implies CONDSTORE (RFC 7162 3.2.3). UTF8=ACCEPT and IMAP4rev2 make
mailbox names UTF-8 in both directions (RFC 6855 3, RFC 9051 5.1).
"""

from __future__ import annotations


async def run(s, cmd):
    enabled = []
    for cap in cmd.args.capabilities:
        if cap == "CONDSTORE" and not s.condstore:
            s.condstore = True
            enabled.append("CONDSTORE")
        elif cap == "QRESYNC" and not s.qresync:
            s.qresync = s.condstore = True
            enabled.append("QRESYNC")
        elif cap == "UTF8=ACCEPT" and not s.utf8:
            s.utf8 = s.parser.utf8 = True
            enabled.append("UTF8=ACCEPT")
        elif cap == "IMAP4REV2" and not s.rev2:
            s.rev2 = True
            s.utf8 = s.parser.utf8 = True
            enabled.append("IMAP4rev2")
    s.untagged(" ".join(["ENABLED"] + enabled))
    return "ENABLE completed"
