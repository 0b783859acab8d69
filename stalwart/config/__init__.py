"""Configuration of stalwart-master: settings declared once, a TOML loader, macros, defaults.

Public interface (docs/architecture.md, "Config contract")::

    cfg = load("/etc/stalwart/config.toml")     # raises ConfigError ("FILE: KEY: problem")
    cfg = loads(text, source="inline.toml")     # the same from a string (tests, tools)
    cfg = embedded_default(Path("var"))          # loopback, unprivileged ports, data in var/
    warnings = check(path)                       # for ``stalwart-master --check-config``

    cfg.get("server.shutdown-timeout")           # typed (float seconds), default applied
    cfg.listeners, cfg.pool_size("imap"), cfg.store, cfg.certificates, cfg.tracers, ...

Every setting is declared in ``stalwart.config.settings`` (see ``registry``), and
``python -m stalwart.config.docs`` writes docs/configuration.md from the declarations.
"""

from __future__ import annotations

from . import settings as _settings  # noqa: F401  (fills the registry)
from .default import embedded_default
from .errors import ConfigError
from .loader import check, load, loads
from .model import PROTOCOLS, Certificate, Config, Listener, StoreSettings, Tracer
from .registry import REGISTRY, Setting, declare, section
from .secret import hash_secret, is_hashed, verify_secret

__all__ = [
    "ConfigError", "Config", "Listener", "Certificate", "StoreSettings", "Tracer", "PROTOCOLS",
    "load", "loads", "check", "embedded_default",
    "REGISTRY", "Setting", "declare", "section",
    "hash_secret", "is_hashed", "verify_secret",
]
