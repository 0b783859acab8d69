"""The IMAP commands, one module each; ``REGISTRY`` maps a command name to its handler.

Each module has ``async def run(session, command)`` returning the text of the tagged OK
(or ``(text, response code)``), or None when it answered itself; it raises
``session.Reply`` (``No``/``Bad``) to fail. ``allows_expunge`` is False for the commands
during which RFC 9051 section 7.5 forbids EXPUNGE responses (FETCH, STORE, SEARCH, and
SORT/THREAD which RFC 5256 4 treats like SEARCH; their UID forms allow them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from ..session import ANY, AUTH, NOT_AUTH, SELECTED
from . import (
    append, authenticate, capability, check, close, copy, create, delete, enable, expunge,
    fetch, idle, login, logout, lsub, move, namespace, noop, quota, rename, replace, search,
    select, sort, starttls, status, store, subscribe, thread, unselect,
)
from . import id as id_cmd, list as list_cmd
from . import acl


@dataclass(frozen=True)
class Spec:
    run: Callable[..., Awaitable[object]]
    states: frozenset
    allows_expunge: bool = True


REGISTRY: dict[str, Spec] = {
    "CAPABILITY": Spec(capability.run, ANY),
    "NOOP": Spec(noop.run, ANY),
    "LOGOUT": Spec(logout.run, ANY),
    "ID": Spec(id_cmd.run, ANY),
    "STARTTLS": Spec(starttls.run, NOT_AUTH),
    "LOGIN": Spec(login.run, NOT_AUTH),
    "AUTHENTICATE": Spec(authenticate.run, NOT_AUTH),
    "ENABLE": Spec(enable.run, AUTH),
    "NAMESPACE": Spec(namespace.run, AUTH),
    "SELECT": Spec(select.run, AUTH),
    "EXAMINE": Spec(select.run, AUTH),
    "CREATE": Spec(create.run, AUTH),
    "DELETE": Spec(delete.run, AUTH),
    "RENAME": Spec(rename.run, AUTH),
    "SUBSCRIBE": Spec(subscribe.run, AUTH),
    "UNSUBSCRIBE": Spec(subscribe.run, AUTH),
    "LIST": Spec(list_cmd.run, AUTH),
    "LSUB": Spec(lsub.run, AUTH),
    "STATUS": Spec(status.run, AUTH),
    "APPEND": Spec(append.run, AUTH),
    "IDLE": Spec(idle.run, AUTH),
    "CHECK": Spec(check.run, SELECTED),
    "CLOSE": Spec(close.run, SELECTED),
    "UNSELECT": Spec(unselect.run, SELECTED),
    "EXPUNGE": Spec(expunge.run, SELECTED),
    "UID EXPUNGE": Spec(expunge.run, SELECTED),
    "SEARCH": Spec(search.run, SELECTED, allows_expunge=False),
    "UID SEARCH": Spec(search.run, SELECTED),
    "FETCH": Spec(fetch.run, SELECTED, allows_expunge=False),
    "UID FETCH": Spec(fetch.run, SELECTED),
    "STORE": Spec(store.run, SELECTED, allows_expunge=False),
    "UID STORE": Spec(store.run, SELECTED),
    "COPY": Spec(copy.run, SELECTED),
    "UID COPY": Spec(copy.run, SELECTED),
    "MOVE": Spec(move.run, SELECTED),
    "UID MOVE": Spec(move.run, SELECTED),
    "SORT": Spec(sort.run, SELECTED, allows_expunge=False),
    "UID SORT": Spec(sort.run, SELECTED),
    "THREAD": Spec(thread.run, SELECTED, allows_expunge=False),
    "UID THREAD": Spec(thread.run, SELECTED),
    "REPLACE": Spec(replace.run, SELECTED),
    "UID REPLACE": Spec(replace.run, SELECTED),
    "GETQUOTA": Spec(quota.getquota, AUTH),
    "GETQUOTAROOT": Spec(quota.getquotaroot, AUTH),
    "SETQUOTA": Spec(quota.setquota, AUTH),
    "SETACL": Spec(acl.setacl, AUTH),
    "DELETEACL": Spec(acl.deleteacl, AUTH),
    "GETACL": Spec(acl.getacl, AUTH),
    "LISTRIGHTS": Spec(acl.listrights, AUTH),
    "MYRIGHTS": Spec(acl.myrights, AUTH),
}

# COMPRESS (RFC 4978), METADATA (RFC 5464), NOTIFY (RFC 5465).
from . import compress, metadata, notify  # noqa: E402

REGISTRY.update({
    "COMPRESS": Spec(compress.run, AUTH),
    "GETMETADATA": Spec(metadata.getmetadata, AUTH),
    "SETMETADATA": Spec(metadata.setmetadata, AUTH),
    "NOTIFY": Spec(notify.run, AUTH),
})
