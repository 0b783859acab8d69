"""Settings of the master process: identity, listeners, worker pools, supervision timing."""

from __future__ import annotations

import os
import socket

from ..model import PROTOCOLS
from ..registry import declare, section
from ..types import Bool, Duration, Enum, Int, List, SocketAddress, String

section("server", """
The master process: the host name the server announces, the sockets it listens on, the
size of each worker pool, the account it runs as, and how it supervises its workers.
Listeners may be written as an array (`[[server.listener]]` with an `id` field) or as
tables keyed by id (`[server.listener.<id>]`); both forms load the same way.
""")

#: Pools sized by CPU count by default; the others default to one worker.
CPU_POOLS = ("smtp", "imap", "http")


def cpu_count() -> int:
    """CPUs this process may run on (honours affinity masks and container cpusets)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _default_pool_size(params: dict[str, str]) -> int:
    return cpu_count() if params["protocol"] in CPU_POOLS else 1


def _known_protocol(_value: object, params: dict[str, str]) -> None:
    if params["protocol"] not in PROTOCOLS:
        raise ValueError(f"unknown protocol {params['protocol']!r}; pools are "
                         f"{', '.join(PROTOCOLS)}")


declare("server.hostname", String(), """
    The fully qualified host name of this server: used in the SMTP greeting and EHLO,
    in Received headers, DSNs and Message-IDs it generates.""",
    section="server", default=lambda _p: socket.getfqdn(),
    default_doc="the machine's FQDN (`socket.getfqdn()`)")

declare("server.listener.<id>.bind", List(SocketAddress(), min_items=1), """
    Addresses the listener binds, `"IP:PORT"` or `"[IPv6]:PORT"` (one string or a list).
    No two listeners may bind the same address and port, and a wildcard address
    (`0.0.0.0`, `[::]`) overlaps every specific address of its family on that port.""",
    section="server", required=True)

declare("server.listener.<id>.protocol", Enum(PROTOCOLS), """
    The protocol spoken on the listener; it also selects the worker pool that serves it.
    `http` carries JMAP, the management API and the web admin.""",
    section="server", required=True)

declare("server.listener.<id>.tls.implicit", Bool(), """
    Start TLS as soon as a client connects (ports 465, 993, 995, 443). When false, the
    protocol's STARTTLS/STLS command is offered if a certificate is configured. An
    implicit-TLS listener needs at least one `[certificate.<id>]`.""",
    section="server", default=False)

declare("server.listener.<id>.socket.backlog", Int(min=1, max=65535), """
    Length of the kernel's queue of connections not yet accepted, per worker socket
    (the kernel caps it at `net.core.somaxconn`).""",
    section="server", default=1024)

declare("server.workers.<protocol>", Int(min=1, max=4096), """
    Number of pre-forked worker processes serving a protocol (`smtp`, `lmtp`, `imap`,
    `pop3`, `managesieve`, `http`). Each worker owns its own `SO_REUSEPORT` socket on
    every listener of that protocol and handles many connections concurrently.""",
    section="server", default=_default_pool_size,
    default_doc="the number of CPUs for `smtp`, `imap` and `http`; 1 for `lmtp`, `pop3` "
                "and `managesieve`",
    validator=_known_protocol)

declare("server.on-demand", Bool(), """
    Start protocol workers when connections arrive instead of keeping every pool slot
    filled. The master watches the listening sockets of an empty slot and forks its worker
    when a client connects (the connection waits in the socket's queue meanwhile: a few
    milliseconds, the master has every module loaded); a worker that has had no connection
    for `server.idle-exit` exits and its slot waits again. Postfix and Dovecot work this way
    by default. It keeps an idle server small (the embedded default turns it on); pools of
    a busy server stay full either way. The queue and the scheduler are started on demand
    too: they start at boot, leave once idle with nothing due soon, and the master starts
    them again when a process connects to their control socket (new mail to send or to
    index, a `stalwart-cli queue` command) or when their next queue entry or periodic job
    is due. The store always runs.""",
    section="server", default=False)

declare("server.idle-exit", Duration(min=1.0), """
    With `server.on-demand`, how long a protocol worker stays without any connection
    before it exits, and the queue or the scheduler without work (when nothing is due
    within that time either).""",
    section="server", default="2m")

declare("server.run-as.user", String(), """
    Unprivileged user the master switches to once it has bound its sockets (requires
    starting as root). Unset: keep the user the server was started as.""",
    section="server")

declare("server.run-as.group", String(), """
    Group to switch to together with `server.run-as.user`. Unset: the user's primary
    group.""",
    section="server")

declare("server.heartbeat-timeout", Duration(min=1.0), """
    A worker that has not reported to the master for this long is considered hung: the
    master kills it (SIGKILL) and starts a replacement in the same slot.""",
    section="server", default="30s")

declare("server.shutdown-timeout", Duration(), """
    On a graceful stop or restart, how long workers may keep serving open connections
    after they stop accepting new ones; the master kills what is left after that.""",
    section="server", default="30s")

declare("server.reload-drain-timeout", Duration(), """
    After a reload (SIGHUP), how long a replaced protocol worker may keep serving the
    connections it had open (it accepts no new ones: its successor does). An IMAP client
    in IDLE stays connected through a reload; after this time the old worker drains like
    on a stop (`server.shutdown-timeout`).""",
    section="server", default="1h")

declare("server.respawn-throttle", Duration(), """
    Delay before the master restarts a worker that exited unexpectedly. When a slot
    crashes again within a minute of being started, its delay doubles on each crash up
    to `server.respawn-throttle-max`; it falls back to this value once a worker of the
    slot has run for a minute. This keeps a crash loop from burning the CPU.""",
    section="server", default="1s")

declare("server.respawn-throttle-max", Duration(), """
    Upper bound of the growing respawn delay of a crash-looping worker slot (see
    `server.respawn-throttle`).""",
    section="server", default="1m")
