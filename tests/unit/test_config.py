"""Loading real layouts: the seed, the example config, both listener forms, macros,
certificates (generated self-signed in a fixture), and the embedded default's secret."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart.config import (ConfigError, Listener, check, embedded_default, load, loads,
                             verify_secret)

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "config" / "seed.toml"
EXAMPLE = REPO / "config" / "stalwart.toml"


def _self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    """cert.pem/key.pem (a matching pair) and other-key.pem (a key of another cert)."""
    cert, key = _self_signed("mail.example.com")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "other-key.pem").write_bytes(_self_signed("other.example.com")[1])
    return tmp_path


def _seed_in(tmp_path: Path, tls_dir: Path) -> Path:
    text = SEED.read_text().replace("/opt/stalwart-mail/config/tls", str(tls_dir))
    path = tmp_path / "seed.toml"
    path.write_text(text)
    return path


def test_seed_layout_loads_as_written(tmp_path, tls_dir):
    cfg = load(_seed_in(tmp_path, tls_dir))
    assert cfg.hostname == "mail.example.com"
    assert cfg.listeners == [
        Listener("smtp", "smtp", (("0.0.0.0", 25),), False, 1024),
        Listener("submission", "smtp", (("0.0.0.0", 587),), False, 1024),
        Listener("imaps", "imap", (("0.0.0.0", 993),), True, 1024),
        Listener("https", "http", (("0.0.0.0", 443),), True, 1024),
    ]
    assert cfg.base_dir == Path("/var/lib/stalwart")
    assert cfg.run_dir == Path("/var/lib/stalwart/run")
    assert (cfg.store.type, cfg.store.path, cfg.store.blob_path) == (
        "rocksdb", Path("/var/lib/stalwart/data"), Path("/var/lib/stalwart/blobs"))
    assert cfg.fallback_admin == ("admin", "CHANGE_ME")
    cert = cfg.certificates["default"]
    assert cert.default and cert.names == ("mail.example.com",)
    assert cert.cert_pem == (tls_dir / "cert.pem").read_bytes()
    assert cert.key_pem == (tls_dir / "key.pem").read_bytes()
    assert [t.type for t in cfg.tracers] == ["stdout"]
    assert cfg.protocols() == ["smtp", "imap", "http"]


def test_seed_check_warns_about_placeholder_secret(tmp_path, tls_dir):
    warnings = check(_seed_in(tmp_path, tls_dir))
    assert any("fallback-admin.secret: is still the placeholder 'CHANGE_ME'" in w
               for w in warnings)


def test_seed_without_certificate_files_names_file_and_key(tmp_path):
    missing = tmp_path / "nowhere"
    path = tmp_path / "seed.toml"
    path.write_text(SEED.read_text().replace("/opt/stalwart-mail/config/tls", str(missing)))
    with pytest.raises(ConfigError) as info:
        check(path)
    assert str(info.value) == (f"{path}: certificate.default.cert: "
                               f"file {missing}/cert.pem does not exist")
    assert [e.key for e in info.value.errors] == ["certificate.default.cert",
                                                  "certificate.default.private-key"]


def test_example_config_loads(tmp_path, tls_dir, monkeypatch):
    text = (EXAMPLE.read_text()
            .replace("/etc/letsencrypt/live/mail.example.com/fullchain.pem",
                     str(tls_dir / "cert.pem"))
            .replace("/etc/letsencrypt/live/mail.example.com/privkey.pem",
                     str(tls_dir / "key.pem"))
            .replace('"stalwart"', f'"{getpass.getuser()}"'))
    path = tmp_path / "stalwart.toml"
    path.write_text(text)
    monkeypatch.setenv("STALWART_ADMIN_SECRET", "$argon2id$v=19$m=65536,t=3,p=4$"
                       "c2FsdHNhbHRzYWx0$2ZuTmhDN7gZp3hfXXhQVVOqPNoE0uGxIfu8VnFeFyWI")
    cfg = load(path)
    ports = sorted(port for listener in cfg.listeners for _, port in listener.bind)
    assert sorted(set(ports)) == [25, 110, 143, 443, 465, 587, 993, 995, 4190]
    assert {listener.id for listener in cfg.listeners if listener.tls_implicit} == {
        "submissions", "imaps", "pop3s", "https"}
    assert cfg.pool_size("smtp") == 4 and cfg.pool_size("lmtp") == 1
    assert cfg.store.path == Path("/var/lib/stalwart/data")
    assert [t.id for t in cfg.tracers] == ["journal"]          # "file" is disabled
    assert cfg.run_as == (getpass.getuser(), getpass.getuser())
    assert cfg.get("server.listener.https.socket.backlog") == 4096


LISTENER_ARRAY = """
[[server.listener]]
id = "imap"
bind = "127.0.0.1:1143"
protocol = "imap"

[[server.listener]]
id = "lmtp"
bind = ["127.0.0.1:2424", "[::1]:2424"]
protocol = "lmtp"
tls.implicit = false
socket.backlog = 64
"""

LISTENER_TABLES = """
[server.listener.imap]
bind = "127.0.0.1:1143"
protocol = "imap"

[server.listener."lmtp"]
id = "lmtp"
bind = ["127.0.0.1:2424", "[::1]:2424"]
protocol = "lmtp"
tls = { implicit = false }
socket.backlog = 64
"""


@pytest.mark.parametrize("text", [LISTENER_ARRAY, LISTENER_TABLES], ids=["array", "tables"])
def test_both_listener_forms_load_the_same(text):
    cfg = loads(text)
    assert cfg.listeners == [
        Listener("imap", "imap", (("127.0.0.1", 1143),), False, 1024),
        Listener("lmtp", "lmtp", (("127.0.0.1", 2424), ("::1", 2424)), False, 64),
    ]
    assert cfg.get("server.listener.lmtp.socket.backlog") == 64
    assert cfg.ids("server.listener") == ["imap", "lmtp"]


def test_defaults_and_typed_values():
    cfg = loads("""
        [server]
        shutdown-timeout = "2m"
        heartbeat-timeout = 1500
        workers.imap = "3"
        """)
    assert cfg.get("server.shutdown-timeout") == 120.0
    assert cfg.get("server.heartbeat-timeout") == 1.5
    assert cfg.get("server.respawn-throttle") == 1.0
    assert cfg.pool_size("imap") == 3
    cpus = len(os.sched_getaffinity(0))
    assert (cfg.pool_size("smtp"), cfg.pool_size("http")) == (cpus, cpus)
    assert (cfg.pool_size("pop3"), cfg.pool_size("lmtp"), cfg.pool_size("managesieve")) == (
        1, 1, 1)
    assert cfg.get("server.run-as.user") is None and cfg.run_as is None
    assert cfg.listeners == [] and cfg.certificates == {} and cfg.fallback_admin is None
    with pytest.raises(KeyError, match="not a declared setting"):
        cfg.get("server.no-such-thing")


def test_macros_file_and_env_inside_longer_strings(tmp_path, monkeypatch):
    (tmp_path / "name.txt").write_text("mx1\n")
    monkeypatch.setenv("MAIL_DOMAIN", "example.org")
    cfg = loads('[server]\nhostname = "%{file:name.txt}%.%{env:MAIL_DOMAIN}%"\n',
                root=tmp_path)
    assert cfg.hostname == "mx1.example.org"


def test_env_macro_feeds_typed_values(monkeypatch):
    monkeypatch.setenv("IMAP_WORKERS", "5")
    monkeypatch.setenv("IMAP_PORT", "1993")
    cfg = loads('[server.workers]\nimap = "%{env:IMAP_WORKERS}%"\n'
                '[server.listener.imap]\nprotocol = "imap"\nbind = "[::]:%{env:IMAP_PORT}%"\n')
    assert cfg.pool_size("imap") == 5
    assert cfg.listeners[0].bind == (("::", 1993),)


def test_storage_named_stores_and_relative_paths(tmp_path):
    cfg = loads("""
        [storage]
        directory = "state"
        data = "main"
        blob = "main"
        lookup = "main"
        fts = "main"

        [store.main]
        type = "rocksdb"
        path = "db"
        """, root=tmp_path)
    assert cfg.base_dir == tmp_path / "state"
    assert cfg.store.id == "main"
    assert cfg.store.path == tmp_path / "state" / "db"
    assert cfg.store.blob_path == tmp_path / "state" / "blobs"


def test_memory_store_and_memory_directory():
    cfg = loads("""
        [storage]
        data = "mem"
        blob = "mem"
        lookup = "mem"
        fts = "mem"

        [store.mem]
        type = "memory"

        [directory."memory"]
        type = "memory"

        [[directory."memory".principals]]
        name = "jane"
        class = "admin"
        secret = "s3cret"
        email = ["Jane@Example.com", "j.doe@example.com"]
        description = "Jane Doe"
        quota = "5gb"

        [[directory."memory".principals]]
        name = "sales"
        class = "group"
        email = "sales@example.com"
        """)
    assert (cfg.store.type, cfg.store.path, cfg.store.blob_path) == ("memory", None, None)
    assert cfg.principals == [
        {"name": "jane", "class": "admin", "secret": "s3cret",
         "email": ["jane@example.com", "j.doe@example.com"], "description": "Jane Doe",
         "quota": 5 << 30},
        {"name": "sales", "class": "group", "secret": None, "email": ["sales@example.com"],
         "description": "", "quota": 0},
    ]
    assert any("memory store loses all mail" in w for w in cfg.warnings)


def test_tracers():
    cfg = loads("""
        [tracer.console]
        type = "stdout"
        level = "debug"
        format = "json"

        [tracer.files]
        type = "log"
        path = "/var/log/stalwart"
        prefix = "mail"

        [tracer.off]
        type = "journal"
        enable = false
        """)
    assert [(t.id, t.type, t.level, t.format, t.path, t.prefix) for t in cfg.tracers] == [
        ("console", "stdout", "debug", "json", None, "stalwart"),
        ("files", "log", "info", "text", Path("/var/log/stalwart"), "mail"),
    ]


def test_certificate_ids_with_dots_and_explicit_default(tls_dir):
    cfg = loads(f"""
        [certificate."mail.example.com"]
        cert = "%{{file:{tls_dir}/cert.pem}}%"
        private-key = "%{{file:{tls_dir}/key.pem}}%"

        [certificate.backup]
        cert = "%{{file:{tls_dir}/cert.pem}}%"
        private-key = "%{{file:{tls_dir}/key.pem}}%"
        default = true
        """)
    assert list(cfg.certificates) == ["mail.example.com", "backup"]
    assert cfg.default_certificate.id == "backup"
    assert not cfg.certificates["mail.example.com"].default
    assert cfg.get('certificate."mail.example.com".default') is False


def test_certificate_key_mismatch(tmp_path, tls_dir):
    path = tmp_path / "c.toml"
    path.write_text(f"""
[certificate.default]
cert = "%{{file:{tls_dir}/cert.pem}}%"
private-key = "%{{file:{tls_dir}/other-key.pem}}%"
""")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == (f"{path}: certificate.default.private-key: does not match the "
                               f"certificate (the key belongs to a different certificate)")


def test_certificate_not_pem(tmp_path, tls_dir):
    path = tmp_path / "c.toml"
    path.write_text(f"""
[certificate.default]
cert = "/etc/ssl/cert.pem"
private-key = "%{{file:{tls_dir}/key.pem}}%"
""")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: certificate.default.cert: is not PEM text")


def test_certificate_garbled_key(tmp_path, tls_dir):
    (tmp_path / "bad.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                      "-----END PRIVATE KEY-----\n")
    path = tmp_path / "c.toml"
    path.write_text(f"""
[certificate.default]
cert = "%{{file:{tls_dir}/cert.pem}}%"
private-key = "%{{file:bad.pem}}%"
""")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(
        f"{path}: certificate.default.private-key: is not a valid PEM private key")


def test_embedded_default(tmp_path):
    base = tmp_path / "var"
    cfg = embedded_default(base)
    assert cfg.source == "<embedded default>"
    assert [(listener.id, listener.protocol, listener.bind) for listener in cfg.listeners] == [
        ("smtp", "smtp", (("127.0.0.1", 2525),)),
        ("submission", "smtp", (("127.0.0.1", 2587),)),
        ("imap", "imap", (("127.0.0.1", 2143),)),
        ("pop3", "pop3", (("127.0.0.1", 2110),)),
        ("managesieve", "managesieve", (("127.0.0.1", 4190),)),
        ("http", "http", (("127.0.0.1", 8080),)),
    ]
    assert cfg.base_dir == base and cfg.run_dir == base / "run"
    assert (cfg.store.type, cfg.store.path) == ("rocksdb", base / "data")
    assert [(t.type, t.level, t.format) for t in cfg.tracers] == [("stdout", "info", "text")]
    assert all(cfg.pool_size(p) == 1 for p in cfg.protocols())

    user, hashed = cfg.fallback_admin
    assert user == "admin" and hashed.startswith("$argon2")
    assert cfg.first_run_secret and verify_secret(hashed, cfg.first_run_secret)
    secret_file = base / "etc" / "admin-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret_file.read_text().strip() == hashed

    again = embedded_default(base)
    assert again.fallback_admin == ("admin", hashed)
    assert again.first_run_secret is None


def test_embedded_default_rejects_a_tampered_secret_file(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "admin-secret").write_text("hunter2\n")
    with pytest.raises(ConfigError) as info:
        embedded_default(tmp_path)
    assert str(info.value) == (f"{tmp_path}/etc/admin-secret: does not hold an argon2 hash; "
                               f"delete it to generate a new secret")
