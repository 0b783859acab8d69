"""One module per POP3 command; ``HANDLERS`` maps each verb to ``handle(m, verb, arg)``.

The machine has already checked the state (``machine.STATES``) and the line's
characters; a handler parses its arguments, replies through the machine, and may ask the
adapter for something with ``m.request``. Shared argument parsing lives here.
"""

from __future__ import annotations

from typing import Callable

from . import auth, capa, dele, list as list_, noop, quit, retr, rset, stat, stls, uidl, user, utf8

HANDLERS: dict[str, Callable[..., None]] = {
    "USER": user.handle_user,
    "PASS": user.handle_pass,
    "AUTH": auth.handle,
    "STLS": stls.handle,
    "CAPA": capa.handle,
    "UTF8": utf8.handle,
    "QUIT": quit.handle,
    "STAT": stat.handle,
    "LIST": list_.handle,
    "UIDL": uidl.handle,
    "RETR": retr.handle,
    "TOP": retr.handle,
    "DELE": dele.handle,
    "RSET": rset.handle,
    "NOOP": noop.handle,
}
