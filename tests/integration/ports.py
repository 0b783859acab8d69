"""Free loopback ports for the integration tests, from one range and one ledger.

``STALWART_TEST_PORTS=LOW-HIGH`` (default 20000-20999, below the ephemeral range) moves the
range, so that two test runs on one machine stay apart. A port is handed out once per test
process and only if it can be bound for TCP and UDP on every address asked for (the DNS
servers need both; the DANE and MTA-STS tests also listen on 127.0.0.2).
"""

from __future__ import annotations

import os
import random
import socket

_taken: set[int] = set()


def port_range() -> tuple[int, int]:
    text = os.environ.get("STALWART_TEST_PORTS", "20000-20999")
    low, _, high = text.partition("-")
    return int(low), int(high)


def free_port(hosts: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """A port free now on every one of ``hosts`` and never handed out before here."""
    low, high = port_range()
    candidates = [p for p in range(low, high + 1) if p not in _taken]
    random.shuffle(candidates)
    for port in candidates:
        try:
            for host in hosts:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((host, port))
        except OSError:
            continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")
