"""Loading a TOML config file into a validated ``Config``.

Theory of operation:

1. **Parse** with ``tomllib``; a syntax error is reported with its line.
2. **Flatten** the tables into ``key tuple -> raw value``. An array of tables whose key is
   declared with an ``<id>`` placeholder (``[[server.listener]]``) is keyed by each entry's
   ``id`` field, so it lands on the same keys as the table form (``[server.listener.smtp]``);
   one declared with ``<n>`` (``[[directory.x.principals]]``) is keyed by position. Arrays
   of scalars are values.
3. **Type** every key: it must match a declaration (else "unknown setting", with the
   nearest declared key as a hint); ``%{file:}%`` / ``%{env:}%`` macros are expanded, then
   the declared type parses the value and the declared validator checks it. Required
   settings are checked for every id that appears (``store.db.*`` needs ``store.db.type``).
4. **Build** the records the rest of the server uses (listeners, store, certificates,
   fallback admin, principals, tracers, run-as) and check what spans several keys:
   duplicate or overlapping bind addresses, implicit TLS without a certificate, storage
   roles naming unknown stores, certificate/key pairs, duplicate principals.

Every problem found is collected; the raised ``ConfigError`` is the first and carries all
of them in ``errors``. Relative paths (``%{file:}%``, ``storage.directory``) are taken
relative to the directory of the config file.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import grp
import ipaddress
import os
import pwd
import re
import tomllib
from pathlib import Path
from typing import Any

from . import macros, secret
from .errors import ConfigError
from .keys import Key, format_key, match_pattern, parse_key
from .model import Certificate, Config, Listener, StoreSettings, Tracer
from .pem import PemError, check_pair
from .registry import REGISTRY, Registry
from .settings.storage import STORE_TYPES

__all__ = ["load", "loads", "check", "build"]

#: The value operators are told to replace in the sample configs.
PLACEHOLDER_SECRET = "CHANGE_ME"


def load(path: str | os.PathLike) -> Config:
    """Load and validate a config file. Raises ``ConfigError``."""
    p = Path(path)
    source = str(p)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", file=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", file=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError("not UTF-8 text", file=source, line=line) from None
    return loads(text, source=source, root=p.parent)


def loads(text: str, *, source: str = "<string>", root: str | os.PathLike | None = None) -> Config:
    """Load a config from TOML text. ``root`` anchors relative paths (default: cwd)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, source) from None
    return build(data, source=source, root=Path(root) if root is not None else Path.cwd())


def check(path: str | os.PathLike) -> list[str]:
    """For ``stalwart-master --check-config``: the warnings of a valid config.

    Raises ``ConfigError`` (all problems in ``.errors``) when the file is not usable.
    """
    return list(load(path).warnings)


def _syntax_error(exc: tomllib.TOMLDecodeError, source: str) -> ConfigError:
    msg = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
    if m:
        return ConfigError(f"TOML syntax error: {msg[:m.start()]} (column {m.group(2)})",
                           file=source, line=int(m.group(1)))
    m = re.search(r"\s*\(at end of document\)$", msg)
    if m:
        return ConfigError(f"TOML syntax error at end of file: {msg[:m.start()]}", file=source)
    return ConfigError(f"TOML syntax error: {msg}", file=source)


class _Builder:
    """One load: the flattened values, the errors found so far, and the records built."""

    def __init__(self, source: str, root: Path, registry: Registry) -> None:
        self.source = source
        self.root = root.absolute()
        self.registry = registry
        self.raw: dict[Key, Any] = {}
        self.values: dict[Key, Any] = {}
        self.failed: set[Key] = set()          # keys set but invalid: already reported
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []

    # -- helpers -------------------------------------------------------------------

    def error(self, key: Key | str | None, message: str) -> None:
        text = format_key(key) if isinstance(key, tuple) else key
        self.errors.append(ConfigError(message, file=self.source, key=text))

    def warn(self, key: Key | str | None, message: str) -> None:
        text = format_key(key) if isinstance(key, tuple) else key
        self.warnings.append(f"{self.source}: {text}: {message}" if text else
                             f"{self.source}: {message}")

    def get(self, key: Key | str) -> Any:
        """The typed value, or the default; None when unset without default or invalid."""
        k = parse_key(key)
        if k in self.values:
            return self.values[k]
        if k in self.failed:
            return None
        found = self.registry.find(k)
        if found is None:
            raise KeyError(f"{format_key(k)!r} is not a declared setting")
        setting, params = found
        return setting.default_value(params)

    def ok(self, *keys: Key) -> bool:
        """True when none of ``keys`` failed to parse."""
        return not any(k in self.failed for k in keys)

    def ids(self, prefix: Key) -> list[str]:
        seen: dict[str, None] = {}
        for k in self.raw:
            if len(k) > len(prefix) and k[:len(prefix)] == prefix:
                seen.setdefault(k[len(prefix)])
        return list(seen)

    def path(self, text: str, anchor: Path) -> Path:
        p = Path(text).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else anchor / p))

    # -- 2. flatten ----------------------------------------------------------------

    def flatten(self, node: dict, prefix: Key) -> None:
        id_children = self.registry.is_id_table(prefix)
        for name, value in node.items():
            key = prefix + (name,)
            if isinstance(value, dict):
                if id_children and "id" in value:
                    if value["id"] != name:
                        self.error(key + ("id",), f"id {value['id']!r} differs from the table "
                                                  f"name {name!r}; remove it or make them equal")
                    value = {k: v for k, v in value.items() if k != "id"}
                self.flatten(value, key)
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                self.flatten_array(value, key)
            else:
                self.raw[key] = value

    def flatten_array(self, items: list[dict], key: Key) -> None:
        if self.registry.array_kind(key) != "id":
            for i, item in enumerate(items):
                self.flatten(item, key + (str(i),))
            return
        seen: dict[str, int] = {}
        for i, item in enumerate(items, 1):
            ident = item.get("id")
            where = f"{format_key(key)}[{i}]"
            if ident is None:
                self.error(where, f"entry {i} has no id; add id = \"...\"")
                continue
            if not isinstance(ident, str) or not ident.strip():
                self.error(where, f"id must be a non-empty string, got {ident!r}")
                continue
            if ident in seen:
                self.error(key + (ident,), f"duplicate id {ident!r} "
                                           f"(entries {seen[ident]} and {i})")
                continue
            seen[ident] = i
            self.flatten({k: v for k, v in item.items() if k != "id"}, key + (ident,))

    # -- 3. type -------------------------------------------------------------------

    def type_all(self) -> None:
        for key, raw in self.raw.items():
            found = self.registry.find(key)
            if found is None:
                hint = self.registry.suggest(key)
                self.error(key, "unknown setting" + (f"; did you mean {hint}?" if hint else ""))
                self.failed.add(key)
                continue
            setting, params = found
            try:
                value = macros.expand_value(raw, base=self.root)
                value = setting.type.parse(value)
                if setting.validator is not None:
                    setting.validator(value, params)
            except ValueError as exc:
                message = str(exc)
                if setting.secret and not isinstance(raw, str):
                    message = f"expected {setting.type.name} (value not shown: it is secret)"
                self.error(key, message)
                self.failed.add(key)
                continue
            self.values[key] = value
        self.check_required()

    def check_required(self) -> None:
        for setting in self.registry:
            if not setting.required:
                continue
            pattern = setting.pattern
            holes = [i for i, s in enumerate(pattern) if s.startswith("<")]
            if not holes:
                if pattern not in self.raw:
                    self.error(pattern, "is required")
                continue
            # every id present under the pattern's last placeholder needs this key
            depth = holes[-1] + 1
            instances: dict[Key, None] = {}
            for k in self.raw:
                if len(k) >= depth and match_pattern(pattern[:depth], k[:depth]) is not None:
                    instances.setdefault(k[:depth])
            for inst in instances:
                full = inst + pattern[depth:]
                if full not in self.raw:
                    self.error(full, "is required")
                    self.failed.add(full)

    # -- 4. build ------------------------------------------------------------------

    def build_listeners(self, have_certificates: bool) -> list[Listener]:
        listeners: list[Listener] = []
        bound: dict[tuple[str, int], str] = {}       # (host, port) -> listener id
        for ident in self.ids(("server", "listener")):
            base = ("server", "listener", ident)
            bind, protocol = self.get(base + ("bind",)), self.get(base + ("protocol",))
            tls = self.get(base + ("tls", "implicit"))
            backlog = self.get(base + ("socket", "backlog"))
            if bind is None or protocol is None or tls is None or backlog is None:
                continue                               # already reported
            for host, port in bind:
                clash = self._bind_clash(bound, host, port)
                if clash is not None:
                    (other_host, _), other = clash
                    what = ("is listed twice" if other == ident and other_host == host else
                            f"is already bound by listener {other!r}" if other_host == host else
                            f"overlaps {_addr(other_host, port)} of listener {other!r}")
                    self.error(base + ("bind",), f"address {_addr(host, port)} {what}")
                    continue
                bound[(host, port)] = ident
            if tls and not have_certificates:
                self.error(base + ("tls", "implicit"),
                           "implicit TLS needs a certificate, but no [certificate.<id>] is "
                           "configured")
            listeners.append(Listener(ident, protocol, bind, tls, backlog))
        return listeners

    @staticmethod
    def _bind_clash(bound: dict[tuple[str, int], str], host: str, port: int
                    ) -> tuple[tuple[str, int], str] | None:
        ip = ipaddress.ip_address(host)
        for (h, p), owner in bound.items():
            if p != port:
                continue
            other = ipaddress.ip_address(h)
            if other == ip or (other.version == ip.version and
                               (other.is_unspecified or ip.is_unspecified)):
                return (h, p), owner
        return None

    def build_base_dir(self) -> Path:
        directory = self.get("storage.directory") or "/var/lib/stalwart"
        return self.path(directory, self.root)

    def build_store(self, base_dir: Path) -> StoreSettings:
        resolved: dict[str, StoreSettings | None] = {}
        for role in ("data", "blob", "lookup", "fts"):
            resolved[role] = self._resolve_store(role, base_dir)
        data = resolved["data"]
        fallback = StoreSettings("rocksdb", "rocksdb", base_dir / "data", base_dir / "blobs")
        if data is None:
            return fallback                            # already reported
        blob = resolved["blob"]
        blob_path = data.blob_path
        if blob is not None:
            if blob.type != data.type:
                self.error("storage.blob", f"store {blob.id!r} is {blob.type} but "
                                           f"storage.data is {data.type}; both must use the "
                                           f"same backend")
            blob_path = blob.blob_path
        for role in ("lookup", "fts"):
            other = resolved[role]
            if other is not None and (other.type, other.path) != (data.type, data.path):
                self.error(("storage", role), f"must name the same store as storage.data "
                                              f"({data.id!r}); separate {role} stores are not "
                                              f"supported")
        return StoreSettings(data.id, data.type, data.path, blob_path)

    def _resolve_store(self, role: str, base_dir: Path) -> StoreSettings | None:
        key = ("storage", role)
        name = self.get(key)
        if name is None:
            return None
        declared = self.ids(("store",))
        if name in declared:
            base = ("store", name)
            kind = self.get(base + ("type",))
            if kind is None:
                return None
            if kind == "memory":
                return StoreSettings(name, "memory", None, None)
            path_text = self.get(base + ("path",))
            if path_text is None:
                if self.ok(base + ("path",)):
                    self.error(base + ("path",), "is required for a rocksdb store")
                    self.failed.add(base + ("path",))
                return None
            path = self.path(path_text, base_dir)
            blob_text = self.get(base + ("blob-path",))
            blob = self.path(blob_text, base_dir) if blob_text else path.parent / "blobs"
            return StoreSettings(name, kind, path, blob)
        if name in STORE_TYPES:
            if name == "memory":
                return StoreSettings("memory", "memory", None, None)
            return StoreSettings(name, name, base_dir / "data", base_dir / "blobs")
        close = difflib.get_close_matches(name, [*declared, *STORE_TYPES], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.error(key, f"no store {name!r}{hint}: declare [store.{name}] or use a backend "
                        f"name ({', '.join(STORE_TYPES)})")
        return None

    def build_certificates(self) -> dict[str, Certificate]:
        certs: dict[str, Certificate] = {}
        defaults = []
        for ident in self.ids(("certificate",)):
            base = ("certificate", ident)
            cert, key = self.get(base + ("cert",)), self.get(base + ("private-key",))
            is_default = self.get(base + ("default",))
            if is_default:
                defaults.append(ident)
            if cert is None or key is None:
                continue
            try:
                info = check_pair(_pem_bytes(cert), _pem_bytes(key))
            except PemError as exc:
                self.error(base + (exc.field,), str(exc))
                continue
            now = _dt.datetime.now(_dt.timezone.utc)
            if info.not_after < now:
                self.warn(base + ("cert",), f"certificate expired on {info.not_after:%Y-%m-%d}")
            elif info.not_after < now + _dt.timedelta(days=14):
                self.warn(base + ("cert",), f"certificate expires on {info.not_after:%Y-%m-%d}")
            certs[ident] = Certificate(ident, _pem_bytes(cert), _pem_bytes(key), False,
                                       info.names, info.not_after)
        if len(defaults) > 1:
            self.error(("certificate", defaults[1], "default"),
                       f"only one certificate may be the default; {defaults[0]!r} already is")
        chosen = defaults[0] if defaults else next(iter(certs), None)
        return {ident: Certificate(c.id, c.cert_pem, c.key_pem, ident == chosen, c.names,
                                   c.not_after)
                for ident, c in certs.items()}

    def build_fallback_admin(self) -> tuple[str, str] | None:
        ukey, skey = "authentication.fallback-admin.user", "authentication.fallback-admin.secret"
        user, secret_ = self.get(ukey), self.get(skey)
        if user is None and secret_ is None:
            return None                                # not configured, or already reported
        if user is None or secret_ is None:
            if self.ok(parse_key(ukey), parse_key(skey)):
                missing = ukey if user is None else skey
                self.error(missing, "is required when the other fallback-admin setting is set")
            return None
        try:
            secret.check_format(secret_)
        except ValueError as exc:
            self.error(skey, str(exc))
            return None
        if secret_ == PLACEHOLDER_SECRET:
            self.warn(skey, f"is still the placeholder {PLACEHOLDER_SECRET!r}; set a strong "
                            f"secret or an argon2 hash")
        elif not secret.is_hashed(secret_):
            self.warn(skey, "is plain text; an argon2 hash ($argon2id$...) keeps the config "
                            "file harmless to read")
        return (user, secret_)

    def build_principals(self) -> list[dict]:
        principals: list[dict] = []
        names: dict[str, Key] = {}
        emails: dict[str, Key] = {}
        for ident in self.ids(("directory",)):
            base = ("directory", ident)
            kind = self.get(base + ("type",))
            entries = self.ids(base + ("principals",))
            if kind is None:
                continue
            if kind != "memory":
                if entries:
                    self.error(base + ("principals",), f"only a memory directory lists "
                                                       f"principals; this one is {kind}")
                continue
            for n in entries:
                p = base + ("principals", n)
                name = self.get(p + ("name",))
                if name is None:
                    continue
                if name in names:
                    self.error(p + ("name",), f"principal {name!r} is already declared at "
                                              f"{format_key(names[name])}")
                    continue
                names[name] = p + ("name",)
                secret_ = self.get(p + ("secret",))
                if secret_ is not None:
                    try:
                        secret.check_format(secret_)
                    except ValueError as exc:
                        self.error(p + ("secret",), str(exc))
                        continue
                addresses = []
                for address in self.get(p + ("email",)) or ():
                    address = address.strip().lower()
                    if "@" not in address.strip("@"):
                        self.error(p + ("email",), f"{address!r} is not an email address")
                        continue
                    if address in emails:
                        self.error(p + ("email",), f"address {address!r} already belongs to "
                                                   f"{format_key(emails[address])}")
                        continue
                    emails[address] = p
                    addresses.append(address)
                principals.append({
                    "name": name,
                    "class": self.get(p + ("class",)),
                    "secret": secret_,
                    "email": addresses,
                    "description": self.get(p + ("description",)),
                    "quota": self.get(p + ("quota",)),
                })
        return principals

    def build_tracers(self, base_dir: Path) -> list[Tracer]:
        ids = self.ids(("tracer",))
        if not ids:
            return [Tracer("stdout", "stdout", "info", "text")]
        tracers = []
        for ident in ids:
            base = ("tracer", ident)
            kind = self.get(base + ("type",))
            level, fmt = self.get(base + ("level",)), self.get(base + ("format",))
            if kind is None or level is None or fmt is None or not self.get(base + ("enable",)):
                continue
            path = None
            if kind == "log":
                path_text = self.get(base + ("path",))
                if path_text is None:
                    if self.ok(base + ("path",)):
                        self.error(base + ("path",), "is required for a tracer of type log")
                    continue
                path = self.path(path_text, base_dir)
            elif self.is_raw(base + ("path",)):
                self.error(base + ("path",), f"only a tracer of type log writes files; this "
                                             f"one is {kind}")
                continue
            tracers.append(Tracer(ident, kind, level, fmt, path,
                                  self.get(base + ("prefix",)) or "stalwart"))
        return tracers

    def is_raw(self, key: Key) -> bool:
        return key in self.raw

    def build_run_as(self) -> tuple[str, str | None] | None:
        user, group = self.get("server.run-as.user"), self.get("server.run-as.group")
        if user is None:
            if group is not None:
                self.error("server.run-as.group", "needs server.run-as.user")
            return None
        try:
            pwd.getpwnam(user)
        except KeyError:
            self.error("server.run-as.user", f"no such user {user!r} on this machine")
            return None
        if group is not None:
            try:
                grp.getgrnam(group)
            except KeyError:
                self.error("server.run-as.group", f"no such group {group!r} on this machine")
                return None
        return (user, group)

    def warn_memory_store(self, store: StoreSettings) -> None:
        if store.type == "memory":
            self.warn("storage.data", "the memory store loses all mail when the server stops")


def build(data: dict, *, source: str, root: Path, registry: Registry = REGISTRY,
          base_dir: Path | None = None) -> Config:
    """Validate parsed TOML ``data`` and build a ``Config`` (raises ``ConfigError``).

    ``base_dir`` overrides ``storage.directory`` (the embedded default uses it).
    """
    b = _Builder(source, root, registry)
    b.flatten(data, ())
    b.type_all()
    base = Path(os.path.normpath(base_dir.absolute())) if base_dir is not None \
        else b.build_base_dir()
    certificates = b.build_certificates()
    listeners = b.build_listeners(have_certificates=bool(b.ids(("certificate",))))
    store = b.build_store(base)
    b.warn_memory_store(store)
    fallback_admin = b.build_fallback_admin()
    principals = b.build_principals()
    tracers = b.build_tracers(base)
    run_as = b.build_run_as()
    if b.errors:
        raise ConfigError.collect(b.errors)
    return Config(source=source, values=b.values, listeners=listeners, base_dir=base,
                  store=store, certificates=certificates, fallback_admin=fallback_admin,
                  principals=principals, tracers=tracers, run_as=run_as,
                  warnings=b.warnings, registry=registry)


def _pem_bytes(text: str) -> bytes:
    data = text.strip().encode("utf-8")
    return data + b"\n"


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
