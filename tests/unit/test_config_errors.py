"""Every configuration mistake gives one clear ``FILE: KEY: what is wrong`` message.

The cases are data: a TOML fragment and the exact message expected for it (the file part
is the temp file's path, prepended by the test).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stalwart.config import ConfigError, load

CASES = [
    # -- unknown keys, with the nearest declared key --------------------------------
    ("typo-top",
     '[server]\nhostnme = "x"\n',
     "server.hostnme: unknown setting; did you mean server.hostname?"),
    ("typo-listener",
     '[server.listener.smtp]\nbind = "127.0.0.1:25"\nprotocl = "smtp"\nprotocol = "smtp"\n',
     "server.listener.smtp.protocl: unknown setting; did you mean "
     "server.listener.smtp.protocol?"),
    ("typo-dotted",
     '[[server.listener]]\nid = "a"\nbind = "127.0.0.1:25"\nprotocol = "smtp"\n'
     'tls.implicitt = false\n',
     "server.listener.a.tls.implicitt: unknown setting; did you mean "
     "server.listener.a.tls.implicit?"),
    ("unknown-section",
     '[spam-filter]\nenable = true\n',
     "spam-filter.enable: unknown setting"),
    # -- listeners --------------------------------------------------------------------
    ("unknown-protocol",
     '[server.listener.x]\nbind = "127.0.0.1:25"\nprotocol = "smpt"\n',
     "server.listener.x.protocol: unknown value 'smpt' (did you mean 'smtp'?); expected one "
     "of smtp, lmtp, imap, pop3, managesieve, http"),
    ("port-zero",
     '[server.listener.x]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n',
     "server.listener.x.bind: item 1: port 0 in '127.0.0.1:0' is out of range 1-65535"),
    ("port-too-big",
     '[server.listener.x]\nbind = ["127.0.0.1:25", "127.0.0.1:70000"]\nprotocol = "smtp"\n',
     "server.listener.x.bind: item 2: port 70000 in '127.0.0.1:70000' is out of range "
     "1-65535"),
    ("bind-hostname",
     '[server.listener.x]\nbind = "localhost:25"\nprotocol = "smtp"\n',
     "server.listener.x.bind: item 1: 'localhost' in 'localhost:25' is not an IP address"),
    ("bind-no-port",
     '[server.listener.x]\nbind = "127.0.0.1"\nprotocol = "smtp"\n',
     "server.listener.x.bind: item 1: expected HOST:PORT such as \"0.0.0.0:25\" or "
     "\"[::]:25\", got '127.0.0.1'"),
    ("bind-empty",
     '[server.listener.x]\nbind = []\nprotocol = "smtp"\n',
     "server.listener.x.bind: needs at least 1 item(s)"),
    ("missing-bind",
     '[server.listener.x]\nprotocol = "smtp"\n',
     "server.listener.x.bind: is required"),
    ("missing-protocol",
     '[[server.listener]]\nid = "x"\nbind = "127.0.0.1:25"\n',
     "server.listener.x.protocol: is required"),
    ("missing-id",
     '[[server.listener]]\nid = "a"\nbind = "127.0.0.1:25"\nprotocol = "smtp"\n'
     '[[server.listener]]\nbind = "127.0.0.1:26"\nprotocol = "smtp"\n',
     "server.listener[2]: entry 2 has no id; add id = \"...\""),
    ("duplicate-id",
     '[[server.listener]]\nid = "a"\nbind = "127.0.0.1:25"\nprotocol = "smtp"\n'
     '[[server.listener]]\nid = "a"\nbind = "127.0.0.1:26"\nprotocol = "smtp"\n',
     "server.listener.a: duplicate id 'a' (entries 1 and 2)"),
    ("id-differs-from-table",
     '[server.listener.a]\nid = "b"\nbind = "127.0.0.1:25"\nprotocol = "smtp"\n',
     "server.listener.a.id: id 'b' differs from the table name 'a'; remove it or make "
     "them equal"),
    ("duplicate-bind",
     '[server.listener.a]\nbind = "0.0.0.0:25"\nprotocol = "smtp"\n'
     '[server.listener.b]\nbind = "0.0.0.0:25"\nprotocol = "lmtp"\n',
     "server.listener.b.bind: address 0.0.0.0:25 is already bound by listener 'a'"),
    ("wildcard-overlap",
     '[server.listener.a]\nbind = "[::1]:143"\nprotocol = "imap"\n'
     '[server.listener.b]\nbind = "[::]:143"\nprotocol = "imap"\n',
     "server.listener.b.bind: address [::]:143 overlaps [::1]:143 of listener 'a'"),
    ("bind-twice-in-one",
     '[server.listener.a]\nbind = ["127.0.0.1:25", "127.0.0.1:25"]\nprotocol = "smtp"\n',
     "server.listener.a.bind: address 127.0.0.1:25 is listed twice"),
    ("implicit-tls-without-cert",
     '[server.listener.imaps]\nbind = "0.0.0.0:993"\nprotocol = "imap"\ntls.implicit = true\n',
     "server.listener.imaps.tls.implicit: implicit TLS needs a certificate, but no "
     "[certificate.<id>] is configured"),
    ("tls-not-bool",
     '[server.listener.a]\nbind = "0.0.0.0:993"\nprotocol = "imap"\ntls.implicit = "yes"\n',
     "server.listener.a.tls.implicit: expected true or false, got str 'yes'"),
    ("backlog-zero",
     '[server.listener.a]\nbind = "0.0.0.0:25"\nprotocol = "smtp"\nsocket.backlog = 0\n',
     "server.listener.a.socket.backlog: must be at least 1, got 0"),
    # -- pools and timing ---------------------------------------------------------------
    ("pool-zero",
     '[server.workers]\nimap = 0\n',
     "server.workers.imap: must be at least 1, got 0"),
    ("pool-unknown-protocol",
     '[server.workers]\nimapp = 2\n',
     "server.workers.imapp: unknown protocol 'imapp'; pools are smtp, lmtp, imap, pop3, "
     "managesieve, http"),
    ("duration-unit",
     '[server]\nshutdown-timeout = "30 sec"\n',
     "server.shutdown-timeout: expected a duration such as \"500ms\", \"30s\", \"5m\", "
     "\"1h\", \"2d\" or an integer of milliseconds, got str '30 sec'"),
    ("heartbeat-too-short",
     '[server]\nheartbeat-timeout = "100ms"\n',
     "server.heartbeat-timeout: must be at least 1s"),
    ("run-as-unknown-user",
     '[server.run-as]\nuser = "no-such-user-here"\n',
     "server.run-as.user: no such user 'no-such-user-here' on this machine"),
    ("run-as-group-alone",
     '[server.run-as]\ngroup = "root"\n',
     "server.run-as.group: needs server.run-as.user"),
    # -- storage ------------------------------------------------------------------------
    ("unknown-store",
     '[storage]\ndata = "rocksbd"\n',
     "storage.data: no store 'rocksbd' (did you mean 'rocksdb'?): declare [store.rocksbd] "
     "or use a backend name (rocksdb, memory)"),
    ("store-type",
     '[storage]\ndata = "db"\n[store.db]\ntype = "sqlite"\npath = "/x"\n',
     "store.db.type: unknown value 'sqlite'; expected one of rocksdb, memory"),
    ("store-type-missing",
     '[store.db]\npath = "/x"\n',
     "store.db.type: is required"),
    ("rocksdb-without-path",
     '[storage]\ndata = "db"\n[store.db]\ntype = "rocksdb"\n',
     "store.db.path: is required for a rocksdb store"),
    ("blob-backend-differs",
     '[storage]\ndata = "rocksdb"\nblob = "memory"\n',
     "storage.blob: store 'memory' is memory but storage.data is rocksdb; both must use the "
     "same backend"),
    ("separate-fts",
     '[storage]\nfts = "other"\n[store.other]\ntype = "rocksdb"\npath = "/srv/fts"\n',
     "storage.fts: must name the same store as storage.data ('rocksdb'); separate fts "
     "stores are not supported"),
    # -- authentication -------------------------------------------------------------------
    ("admin-without-secret",
     '[authentication.fallback-admin]\nuser = "admin"\n',
     "authentication.fallback-admin.secret: is required when the other fallback-admin "
     "setting is set"),
    ("admin-unsupported-hash",
     '[authentication.fallback-admin]\nuser = "admin"\nsecret = "$6$salt$abcdef"\n',
     "authentication.fallback-admin.secret: hash scheme $6$ is not supported; use an argon2 "
     "hash ($argon2id$...) or a plain-text password"),
    ("admin-broken-argon2",
     '[authentication.fallback-admin]\nuser = "admin"\nsecret = "$argon2id$nonsense"\n',
     "authentication.fallback-admin.secret: starts with $argon2 but is not a valid argon2 "
     "hash"),
    ("admin-secret-not-shown",
     '[authentication.fallback-admin]\nuser = "admin"\nsecret = 123456\n',
     "authentication.fallback-admin.secret: expected string (value not shown: it is secret)"),
    # -- certificates (PEM problems are in test_config.py, with real PEM files) ------------
    ("cert-missing-key",
     '[certificate.main]\ncert = "x"\n',
     "certificate.main.private-key: is required"),
    ("cert-without-pem",
     '[certificate.a]\ndefault = true\n[certificate.b]\ndefault = true\n',
     "certificate.a.cert: is required"),
    # -- directories ------------------------------------------------------------------------
    ("directory-type",
     '[directory.x]\ntype = "ldap"\n',
     "directory.x.type: unknown value 'ldap'; expected one of internal, memory"),
    ("principal-without-name",
     '[directory.m]\ntype = "memory"\n[[directory.m.principals]]\nsecret = "x"\n',
     "directory.m.principals.0.name: is required"),
    ("principal-class",
     '[directory.m]\ntype = "memory"\n[[directory.m.principals]]\nname = "a"\n'
     'class = "user"\n',
     "directory.m.principals.0.class: unknown value 'user'; expected one of individual, "
     "admin, group"),
    ("principal-duplicate",
     '[directory.m]\ntype = "memory"\n[[directory.m.principals]]\nname = "a"\n'
     '[[directory.m.principals]]\nname = "a"\n',
     "directory.m.principals.1.name: principal 'a' is already declared at "
     "directory.m.principals.0.name"),
    ("principal-shared-address",
     '[directory.m]\ntype = "memory"\n[[directory.m.principals]]\nname = "a"\n'
     'email = "x@example.com"\n[[directory.m.principals]]\nname = "b"\n'
     'email = "X@example.com"\n',
     "directory.m.principals.1.email: address 'x@example.com' already belongs to "
     "directory.m.principals.0"),
    ("principal-bad-address",
     '[directory.m]\ntype = "memory"\n[[directory.m.principals]]\nname = "a"\n'
     'email = "nobody"\n',
     "directory.m.principals.0.email: 'nobody' is not an email address"),
    ("principal-quota",
     '[directory.m]\ntype = "memory"\n[[directory.m.principals]]\nname = "a"\n'
     'quota = "5 gigs"\n',
     "directory.m.principals.0.quota: expected a size such as \"512kb\", \"50mb\", \"1gb\" "
     "or an integer of bytes, got str '5 gigs'"),
    ("principals-in-internal",
     '[directory.i]\ntype = "internal"\n[[directory.i.principals]]\nname = "a"\n',
     "directory.i.principals: only a memory directory lists principals; this one is "
     "internal"),
    # -- tracers ------------------------------------------------------------------------------
    ("tracer-level",
     '[tracer.s]\ntype = "stdout"\nlevel = "warning"\n',
     "tracer.s.level: unknown value 'warning' (did you mean 'warn'?); expected one of error, "
     "warn, info, debug, trace"),
    ("tracer-log-without-path",
     '[tracer.f]\ntype = "log"\n',
     "tracer.f.path: is required for a tracer of type log"),
    ("tracer-path-on-stdout",
     '[tracer.s]\ntype = "stdout"\npath = "/var/log"\n',
     "tracer.s.path: only a tracer of type log writes files; this one is stdout"),
    ("tracer-format",
     '[tracer.s]\ntype = "stdout"\nformat = "xml"\n',
     "tracer.s.format: unknown value 'xml'; expected one of text, json"),
    # -- macros -------------------------------------------------------------------------------
    ("env-missing",
     '[server]\nhostname = "mx.%{env:STALWART_TEST_UNSET_VARIABLE}%"\n',
     "server.hostname: environment variable STALWART_TEST_UNSET_VARIABLE is not set"),
    ("unknown-macro",
     '[server]\nhostname = "%{cfg:server.name}%"\n',
     "server.hostname: unknown macro %{cfg:...}%; use %{file:PATH}% or %{env:NAME}%"),
    ("unterminated-macro",
     '[server]\nhostname = "%{file:/etc/hostname"\n',
     "server.hostname: unterminated macro: %{file:...}% and %{env:...}% end with }%"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_message(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "stalwart.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"{path}: {expected}"
    assert info.value.file == str(path)


def test_missing_file_via_macro_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "stalwart.toml"
    path.write_text('[server]\nhostname = "%{file:missing.txt}%"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == (f"{path}: server.hostname: file {tmp_path}/missing.txt does "
                               f"not exist (%{{file:missing.txt}}%)")


def test_two_default_certificates_reported_among_all_errors(tmp_path: Path) -> None:
    path = tmp_path / "stalwart.toml"
    path.write_text('[certificate.a]\ndefault = true\n[certificate.b]\ndefault = true\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    messages = [str(e) for e in info.value.errors]
    assert f"{path}: certificate.b.default: only one certificate may be the default; 'a' " \
           f"already is" in messages
    assert len(messages) == 5        # cert and key of both, and the second default


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "stalwart.toml"
    path.write_text('[server]\nhostnme = "x"\nshutdown-timeout = "soon"\n'
                    '[server.workers]\nsmtp = 0\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert [e.key for e in info.value.errors] == [
        "server.hostnme", "server.shutdown-timeout", "server.workers.smtp"]


@pytest.mark.parametrize("text, line, message", [
    ('[server]\nhostname = mail.example.com\n', 2, "TOML syntax error: Invalid value"),
    ('[server]\n[server]\n', 2, "TOML syntax error: Cannot declare ('server',) twice"),
    ('[[server.listener]]\nid = "a"\n[server.listener.b]\nbind = "x"\n[server]\n'
     'listener = 1\n', 6, "TOML syntax error: Cannot overwrite a value"),
], ids=["bare-value", "table-twice", "overwrite"])
def test_toml_syntax_error_gives_file_and_line(tmp_path: Path, text, line, message) -> None:
    path = tmp_path / "stalwart.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.line == line and info.value.key is None
    assert str(info.value).startswith(f"{path}: line {line}: {message}")


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file$"):
        load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory, not a config file$"):
        load(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'[server]\nhostname = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load(binary)
    assert str(info.value) == f"{binary}: line 2: not UTF-8 text"
