"""The embedded default: what ``stalwart-master`` runs with no config file, for local use.

Loopback listeners on unprivileged ports (SMTP 2525, submission 2587, IMAP 2143, POP3
2110, ManageSieve 4190, HTTP 8080), one worker per pool (an idle local instance should
stay small), RocksDB under ``<base_dir>/data``, logs to standard output as text at
``info``, and a fallback administrator ``admin``.

The admin secret is generated on first use and only its argon2 hash is kept, in
``<base_dir>/etc/admin-secret`` (mode 0600). The call that generated it returns the
plaintext in ``Config.first_run_secret`` so the master can print it once; every later
call reads the hash and sets ``first_run_secret`` to None. Delete the file to get a new
secret. The default goes through the same validation as a config file.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import secret
from .errors import ConfigError
from .loader import build
from .model import PROTOCOLS, Config

__all__ = ["embedded_default", "SOURCE", "ADMIN_USER", "LISTENERS"]

SOURCE = "<embedded default>"
ADMIN_USER = "admin"

#: (id, protocol, port) of the embedded default's loopback listeners.
LISTENERS = (
    ("smtp", "smtp", 2525),
    ("submission", "smtp", 2587),
    ("imap", "imap", 2143),
    ("pop3", "pop3", 2110),
    ("managesieve", "managesieve", 4190),
    ("http", "http", 8080),
)


def embedded_default(base_dir: Path = Path("var")) -> Config:
    """The built-in local configuration with its state under ``base_dir`` (made absolute)."""
    base = Path(os.path.normpath(Path(base_dir).expanduser().absolute()))
    secret_file = base / "etc" / "admin-secret"
    try:
        hashed, plaintext = secret.load_or_create(secret_file)
    except ValueError as exc:
        raise ConfigError(str(exc), file=str(secret_file)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read or create the admin secret: {exc.strerror or exc}",
                          file=str(secret_file)) from None

    data = {
        "server": {
            "listener": [
                {"id": ident, "protocol": protocol, "bind": [f"127.0.0.1:{port}"],
                 "tls": {"implicit": False}}
                for ident, protocol, port in LISTENERS
            ],
            "workers": {protocol: 1 for protocol in PROTOCOLS},
            # A local instance is idle most of the time: protocol workers start with the
            # first connection and leave after server.idle-exit without one.
            "on-demand": True,
        },
        "storage": {"directory": str(base), "data": "rocksdb", "blob": "rocksdb",
                    "lookup": "rocksdb", "fts": "rocksdb"},
        "tracer": {"stdout": {"type": "stdout", "level": "info", "format": "text"}},
        "authentication": {"fallback-admin": {"user": ADMIN_USER, "secret": hashed}},
    }
    config = build(data, source=SOURCE, root=base, base_dir=base)
    config.first_run_secret = plaintext
    return config
