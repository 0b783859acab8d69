"""TOML tables the integration tests put in the daemon's config (``daemon.configure(extra=)``).

Each returns the table's text without a final newline, for use inside an f-string.
"""

from __future__ import annotations

from pathlib import Path


def certificate(root: Path) -> str:
    """``[certificate.default]`` from ``cert.pem`` and ``key.pem`` in ``root``
    (``certs.daemon_certificate`` writes them)."""
    return (f'[certificate.default]\n'
            f'cert = "%{{file:{root}/cert.pem}}%"\n'
            f'private-key = "%{{file:{root}/key.pem}}%"')


def smarthost(port: int, *, tls: str = "none") -> str:
    """A queue route sending every domain to 127.0.0.1:``port``."""
    return (f'[queue.route.smarthost]\ntype = "relay"\ndomains = ["*"]\n'
            f'host = "127.0.0.1"\nport = {port}\ntls = "{tls}"')
