"""A small client of systemd's notification protocol (sd_notify), written for the master.

The service manager passes a datagram socket in ``NOTIFY_SOCKET``: a path, or an abstract
socket name written with a leading ``@``. Each message is one datagram of newline-separated
``VARIABLE=value`` assignments. The master sends:

- ``READY=1`` once every pool and singleton is up, and again after each reload;
- ``RELOADING=1`` with ``MONOTONIC_USEC=<CLOCK_MONOTONIC in microseconds>`` when a reload
  begins (what ``Type=notify-reload`` requires);
- ``STOPPING=1`` when a shutdown begins;
- ``STATUS=...`` with a one-line summary; ``MAINPID=`` is not needed (the master is the
  process systemd started).

Without ``NOTIFY_SOCKET`` every call does nothing. The variable is removed from the
environment so that worker processes do not inherit it. Failures to send are logged at
debug level and otherwise ignored: notification is advisory and must never stop the
server.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["Notifier"]

log = logging.getLogger("stalwart.master")


class Notifier:
    def __init__(self, address: str | None = None, *, take_from_env: bool = True) -> None:
        if address is None and take_from_env:
            address = os.environ.pop("NOTIFY_SOCKET", None)
        self.address: str | None = None
        self.sock: socket.socket | None = None
        if not address:
            return
        if address.startswith("@"):
            address = "\0" + address[1:]
        elif not address.startswith("/"):
            log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract name; ignored",
                        address)
            return
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def send(self, *assignments: str) -> bool:
        """Send one datagram of ``VAR=value`` lines; True when it was sent."""
        if self.sock is None:
            return False
        payload = "\n".join(a.replace("\n", " ") for a in assignments).encode("utf-8")
        try:
            self.sock.sendto(payload, self.address)
            return True
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self.address, exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self, status: str = "Reloading the configuration") -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def stopping(self, status: str = "Stopping: draining connections") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
