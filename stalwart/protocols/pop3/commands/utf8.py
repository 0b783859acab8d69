"""UTF8 (RFC 6856 2): enable UTF-8 mode.

Accepted in AUTHORIZATION and TRANSACTION, without arguments, and idempotent. In UTF-8
mode reply text may carry UTF-8 (the names we echo). Command lines are read as UTF-8 in
every mode (``UTF8 USER`` is announced, so names and passwords may be UTF-8 before the
command too), and message content is sent unchanged in every mode: messages with UTF-8
headers are not downgraded (RFC 6856 leaves that to the server; deployed servers send
them as stored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codes

if TYPE_CHECKING:
    from ..machine import Pop3Machine


def handle(m: "Pop3Machine", verb: str, arg: str) -> None:
    if arg.strip(" "):
        m.fail(codes.syntax("UTF8 takes no argument"))
        return
    m.session.utf8 = True
    m.reply(codes.UTF8_ON)
