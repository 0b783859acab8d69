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


def resolver(address: str, *, lifetime: str = "6s") -> str:
    """``[resolver]`` pointing at a test DNS server (``dnsserver.py``)."""
    return f'[resolver]\nnameservers = ["{address}"]\ntimeout = "2s"\nlifetime = "{lifetime}"'


def memory_directory(*principals: tuple[str, str, list[str]]) -> str:
    """``[directory.memory]`` with one individual per ``(name, secret, emails)``."""
    tables = []
    for name, secret, emails in principals:
        quoted = ", ".join(f'"{e}"' for e in emails)
        tables.append(f'[[directory.memory.principals]]\nname = "{name}"\n'
                      f'class = "individual"\nsecret = "{secret}"\nemail = [{quoted}]')
    return '[directory.memory]\ntype = "memory"\n\n' + "\n\n".join(tables)
