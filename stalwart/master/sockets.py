"""Listening sockets owned by the master: one ``SO_REUSEPORT`` socket per address and slot.

Why the master creates them: it binds privileged ports before any process gives up root;
and it keeps its own descriptor of every socket. A worker in slot *k* gets the sockets of
slot *k* by ``fork``; when it dies, its replacement in the same slot inherits the very same
sockets, so connections the kernel queued meanwhile are served rather than reset, and a
reload that keeps a listener keeps its sockets. The master never calls ``accept``.

With one socket per worker the kernel's ``SO_REUSEPORT`` hash spreads connections evenly
(one shared socket lets the busiest worker win the accept race). A socket closed for good
(its listener removed, its slot gone after a pool shrank) resets the connections still in
its queue unless ``net.ipv4.tcp_migrate_req = 1`` lets the kernel move them to a sibling;
set it where allowed (the master does not change system settings).

IPv6 sockets are ``IPV6_V6ONLY`` so that ``0.0.0.0:25`` and ``[::]:25`` can be listed side
by side.

The admin socket (``run/admin.sock``, mode 0600, owned by the account workers run as) is
one Unix socket shared by every http worker; the API trusts the peer's SO_PEERCRED uid.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

__all__ = ["SocketTable", "listen_tcp", "listen_unix", "describe"]


def describe(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_tcp(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket with SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_unix(path: Path, *, uid: int | None = None, gid: int | None = None,
                mode: int = 0o600, backlog: int = 128) -> socket.socket:
    """A listening Unix socket at ``path``, never reachable with looser permissions."""
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket")
        path.unlink()                 # left by a previous run (the master holds no lock on it)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    try:
        os.chmod(path, mode)
        if uid is not None:
            os.chown(path, uid, gid if gid is not None else -1)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class SocketTable:
    """The master's listening sockets, keyed by ``(host, port, slot)``.

    ``begin()`` starts a new layout; ``take(...)`` returns the socket of the old layout
    for that key when there is one (adjusting its backlog), else binds a new one;
    ``commit()`` closes the master's copies of the sockets the new layout no longer uses,
    ``rollback()`` closes the ones this layout bound and restores the previous one.
    """

    def __init__(self) -> None:
        self.sockets: dict[tuple[str, int, int], socket.socket] = {}
        self._next: dict[tuple[str, int, int], socket.socket] | None = None
        self._created: list[socket.socket] = []

    def begin(self) -> None:
        self._next, self._created = {}, []

    def take(self, host: str, port: int, slot: int, backlog: int) -> socket.socket:
        assert self._next is not None, "take() outside begin()/commit()"
        key = (host, port, slot)
        sock = self._next.get(key)
        if sock is not None:
            return sock
        sock = self.sockets.get(key)
        if sock is not None:
            sock.listen(backlog)      # Linux applies a new backlog to a listening socket
        else:
            sock = listen_tcp(host, port, backlog)
            self._created.append(sock)
        self._next[key] = sock
        return sock

    def commit(self) -> int:
        """Adopt the new layout; return how many old sockets were closed."""
        assert self._next is not None
        keep = {id(s) for s in self._next.values()}
        closed = 0
        for sock in self.sockets.values():
            if id(sock) not in keep:
                sock.close()
                closed += 1
        self.sockets, self._next, self._created = self._next, None, []
        return closed

    def rollback(self) -> None:
        for sock in self._created:
            sock.close()
        self._next, self._created = None, []

    def all(self) -> list[socket.socket]:
        return list(self.sockets.values())

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
