"""``stalwart-master``: the command line of the daemon.

    stalwart-master [--config PATH] [--foreground]
    stalwart-master --check-config [PATH]

Without ``--config`` the server runs its embedded default (loopback listeners on
unprivileged ports, state under ``./var``; see stalwart.config.default) and prints, on the
first start, how to log in; on later starts, where the secret is kept.

``--check-config`` loads and validates the file (every problem, one ``FILE: KEY: message``
line each, on standard error), prints its warnings, and exits 0 when it is usable, 1 when
not. Starting with a broken config does the same and exits 1.

The master always runs in the foreground (``--foreground`` is accepted for clarity):
supervision belongs to systemd or the container runtime, which start it with
``Type=notify``. Before it forks, it imports the modules of the processes that run all
the time and freezes the garbage collector's view of them, so their pages stay shared:
with ``server.on-demand`` only the store's (uvloop, msgpack, rocksdict, the store code;
every other kind imports its own in its process), otherwise every kind's and the heavy
modules they use (orjson, h11, dnspython, the native extension, cryptography when
certificates are configured).

Exit status: 0 after a clean stop, 1 on a configuration or start-up error.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from stalwart import log as stalwart_log
from stalwart.config import Config, ConfigError, check, embedded_default, load
from stalwart.config.default import ADMIN_USER, SOURCE as EMBEDDED_SOURCE

__all__ = ["main", "PRELOAD"]

log = logging.getLogger("stalwart.master")

#: Modules imported by the master before the first fork (missing ones are skipped): what
#: the store process, which always runs, needs.
PRELOAD = ("uvloop", "msgpack", "rocksdict")
#: Preloaded too when the queue, the scheduler and the pools run all the time (no
#: ``server.on-demand``): loaded once here, shared, instead of a private copy in each.
#: On demand they are imported by the processes that use them, so the idle instance
#: (the master and the store) does not carry them.
PRELOAD_ALWAYS_ON = (
    "ssl", "orjson", "h11", "argon2", "dns.asyncresolver", "stalwart._native",
    # queue: MTA-STS, TLS reports; scheduler: DMARC reports, the full-text indexer;
    # the smtp workers too
    "email.policy", "email.headerregistry", "stalwart.mailauth.dmarc",
    "stalwart.mailauth.mtasts", "stalwart.mailauth.tlsrpt",
    "stalwart.mailauth.reports", "stalwart.fts")
#: Preloaded only when the config has certificates: the workers' TLS setup reads their
#: names with it; an instance without TLS never pays for it (about 10 MiB).
PRELOAD_TLS = ("cryptography.x509", "cryptography.hazmat.primitives.serialization")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stalwart-master",
        description="The Stalwart mail server: SMTP, IMAP, POP3, JMAP, ManageSieve.")
    p.add_argument("--config", "-c", metavar="PATH", type=Path,
                   help="the TOML config file (default: the embedded local configuration, "
                        "state under ./var)")
    p.add_argument("--check-config", nargs="?", const=True, metavar="PATH",
                   help="validate the config (PATH, else --config) and exit: 0 usable, 1 not")
    p.add_argument("--foreground", action="store_true", default=True,
                   help="run in the foreground (the only mode; for service managers)")
    return p


def _print_errors(exc: ConfigError) -> None:
    for err in exc.errors:
        print(f"error: {err}", file=sys.stderr)


def _check(path: Path | None) -> int:
    try:
        if path is None:
            warnings = list(embedded_default(Path("var")).warnings)
            source = EMBEDDED_SOURCE
        else:
            warnings, source = check(path), str(path)
    except ConfigError as exc:
        _print_errors(exc)
        return 1
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{source}: configuration OK")
    return 0


def _loader(path: Path | None) -> Callable[[], Config]:
    if path is None:
        return lambda: embedded_default(Path("var"))
    return lambda: load(path)


def _preload(config: Config | None = None) -> dict:
    """Import the heavy modules and every process kind now, before any fork (pool kinds
    only when their pools are not started on demand)."""
    from stalwart.worker import registry

    on_demand = config is not None and bool(config.get("server.on-demand"))
    names = PRELOAD
    if not on_demand:
        names += PRELOAD_ALWAYS_ON
        if config is not None and config.certificates:
            names += PRELOAD_TLS
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            log.debug("preload: %s is not installed", name)
    # Processes started on demand import their kind in the child: an idle instance then
    # holds only what the master and the store need (a first client waits for the
    # import, a few hundred milliseconds).
    from .pools import ON_DEMAND_SINGLETONS
    return registry.preload(deferred=(registry.POOLS + ON_DEMAND_SINGLETONS)
                            if on_demand else ())


def _http_url(config: Config) -> str | None:
    for listener in config.listeners_for("http"):
        host, port = listener.bind[0]
        scheme = "https" if listener.tls_implicit else "http"
        shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host
                                                             else host)
        return f"{scheme}://{shown}:{port}/"
    return None


def _welcome(config: Config) -> None:
    """How to log in to the embedded default: the secret the first time, its file later."""
    secret_file = config.base_dir / "etc" / "admin-secret"
    url = _http_url(config) or "http://127.0.0.1:8080/"
    if config.first_run_secret is not None:
        text = f"""
Stalwart is starting with its embedded default configuration (state in {config.base_dir}).

    Administrator:  {ADMIN_USER}
    Password:       {config.first_run_secret}
    Web admin:      {url}

This password is shown only this once; only its hash is kept, in {secret_file}
(delete that file and restart to get a new one). Manage the server with stalwart-cli:

    stalwart-cli --url {url.rstrip('/')} --user {ADMIN_USER} domain create example.org
    stalwart-cli account create jane --password - --email jane@example.org

(run from this directory, stalwart-cli also finds var/run/admin.sock and needs no password).
"""
    else:
        text = (f"\nStalwart: embedded default configuration, state in {config.base_dir}; "
                f"administrator {ADMIN_USER!r} (secret hashed in {secret_file}), "
                f"web admin {url}\n")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.check_config is not None:
        path = args.config if args.check_config is True else Path(args.check_config)
        return _check(path)

    load_config = _loader(args.config)
    try:
        config = load_config()
    except ConfigError as exc:
        _print_errors(exc)
        return 1
    try:
        stalwart_log.setup(config.tracers, "master")
    except OSError as exc:
        print(f"error: cannot open the log: {exc}", file=sys.stderr)
        return 1
    try:
        import setproctitle
        setproctitle.setproctitle("stalwart: master")
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    for warning in config.warnings:
        log.warning("%s", warning)
    if config.source == EMBEDDED_SOURCE:
        _welcome(config)

    # The master's own objects are few and long-lived: collect by hand (after a reload)
    # rather than let a collection in the master touch pages the workers share.
    gc.disable()
    kinds = _preload(config)
    gc.collect()
    gc.freeze()
    from stalwart.worker.memory import trim
    trim()                 # the imports' temporary buffers: not worth inheriting

    from .arbiter import Arbiter
    return Arbiter(config, load_config, kinds).run()


if __name__ == "__main__":
    sys.exit(main())
