"""What the macro benches share: the daemon config's common tables and waiting for a port.

The config pieces are ``str.format`` templates, joined into each bench's ``CONFIG`` before
it is formatted: ``STATE`` takes ``{base}`` (the state directory), ``BENCH_USER`` takes
``{user}`` and ``{password}``.
"""

from __future__ import annotations

import socket
import time

#: Where the instance keeps its state, its administrator and quiet logging.
STATE = """[storage]
directory = "{base}"
[authentication.fallback-admin]
user = "admin"
secret = "bench-secret"
[tracer.main]
type = "stdout"
level = "warn"
"""

#: The one mailbox user of the IMAP benches, ``{user}@bench.test``.
BENCH_USER = """[directory.memory]
type = "memory"
[[directory.memory.principals]]
name = "{user}"
class = "individual"
secret = "{password}"
email = ["{user}@bench.test"]
"""


def wait_port(port: int, timeout: float = 60.0) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection (RuntimeError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")
