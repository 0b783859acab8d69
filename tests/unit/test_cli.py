"""stalwart-cli against an in-process API server (memory store) on a temporary Unix
socket, on TCP and on TLS: every command, --json, and every error path with its exit code;
a refused command changes nothing."""

from __future__ import annotations

import io
import json
import os
import sys
import types
from pathlib import Path

import pytest

from stalwart.cli import main as cli
from stalwart.cli.client import (EXIT_AUTH, EXIT_CONFLICT, EXIT_INVALID, EXIT_NOT_FOUND,
                                 EXIT_OK, EXIT_UNREACHABLE)
from stalwart.cli.output import format_size, parse_size
from stalwart.http.api import build_router
from stalwart.http.router import Router
from stalwart.http.server import StoreHandle
from stalwart.http.testing import ServerThread
from stalwart.store.api import Store


class Config:
    def __init__(self):
        self.fallback_admin = ("admin", "admin-pass")
        self.principals = []


class Server:
    def __init__(self, ssl_context=None):
        self.store = None

        async def make_app():
            async def open_memory():
                self.store = Store.memory()
                return self.store
            router = Router()
            router.mount("/api", build_router(Config(), StoreHandle(open_memory)))
            return router.dispatch

        self.thread = ServerThread(make_app, unix=True, tcp=True, ssl_context=ssl_context)
        self.thread.start()

    def state(self):
        async def read():
            if self.store is None:
                return [], []
            return self.store.list_domains(), self.store.list_accounts()
        return self.thread.call(read)


@pytest.fixture(autouse=True)
def quiet_auth_log(monkeypatch):
    calls = []
    module = sys.modules.get("stalwart.log")
    if module is None:
        try:
            import stalwart.log as module  # noqa: F811
        except ImportError:
            module = types.ModuleType("stalwart.log")
            monkeypatch.setitem(sys.modules, "stalwart.log", module)
    monkeypatch.setattr(module, "auth_failure", lambda **kw: calls.append(kw), raising=False)
    return calls


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.thread.stop()


@pytest.fixture
def sock(server, monkeypatch):
    for var in ("STALWART_ADMIN_USER", "STALWART_ADMIN_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return ["--socket", str(server.thread.unix_path)]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_domain_and_account_lifecycle(server, sock, capsys):
    code, out, _ = run(capsys, *sock, "domain", "create", "example.org")
    assert code == EXIT_OK and out.strip() == "created domain example.org"
    assert run(capsys, "domain", "create", "example.net", *sock)[0] == EXIT_OK  # options after
    code, out, _ = run(capsys, *sock, "domain", "alias", "example.com", "--to", "example.org")
    assert code == EXIT_OK and "alias of example.org" in out

    code, out, _ = run(capsys, *sock, "account", "create", "jane", "--password", "jane-pw-1",
                       "--name", "Jane Doe", "--quota", "1G", "--email", "jane@example.org",
                       "--alias", "j.doe@example.org", "--alias", "jd@example.net")
    assert code == EXIT_OK, out
    assert "Jane Doe" in out and "1G (1073741824 bytes)" in out and "jane-pw-1" not in out
    assert "j.doe@example.org, jd@example.net" in out

    code, out, _ = run(capsys, *sock, "account", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "EMAIL", "DISPLAY", "NAME", "QUOTA", "USED", "STATUS"]
    assert lines[1].split()[:2] == ["jane", "jane@example.org"]

    code, out, _ = run(capsys, *sock, "--json", "account", "list", "--domain", "example.net")
    assert [a["name"] for a in json.loads(out)["accounts"]] == ["jane"]

    code, out, _ = run(capsys, *sock, "domain", "catch-all", "example.org", "jane")
    assert code == EXIT_OK and "goes to jane" in out
    code, out, _ = run(capsys, *sock, "domain", "list")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows == {"example.com": ["example.org", "-"], "example.net": ["-", "-"],
                    "example.org": ["-", "jane"]}
    code, out, _ = run(capsys, *sock, "domain", "show", "example.org", "--json")
    assert json.loads(out) == {"name": "example.org", "alias_of": None, "catch_all": "jane"}
    assert run(capsys, *sock, "domain", "catch-all", "example.org", "--clear")[0] == EXIT_OK

    code, out, _ = run(capsys, *sock, "account", "update", "jane@example.org",
                       "--email", "jd@example.net", "--remove-alias", "j.doe@example.org",
                       "--add-alias", "jane2@example.org", "--quota", "unlimited",
                       "--disable", "--admin", "--name", "Jane Q")
    assert code == EXIT_OK, out
    code, out, _ = run(capsys, *sock, "--json", "account", "show", "jane")
    shown = json.loads(out)
    assert shown["emails"] == ["jd@example.net", "jane@example.org", "jane2@example.org"]
    assert shown["quota"] == 0 and shown["disabled"] is True and shown["type"] == "admin"
    assert shown["display_name"] == "Jane Q"

    assert run(capsys, *sock, "account", "update", "jane", "--rename", "janet",
               "--enable", "--no-admin")[0] == EXIT_OK
    code, out, _ = run(capsys, *sock, "account", "show", "janet")
    assert "Status:       active" in out and "Type:         individual" in out

    code, out, _ = run(capsys, *sock, "account", "delete", "janet")
    assert code == EXIT_OK and "deleted account janet" in out
    for name in ("example.com", "example.org", "example.net"):
        assert run(capsys, *sock, "domain", "delete", name)[0] == EXIT_OK
    assert run(capsys, *sock, "domain", "list")[1].strip() == "(none)"


def test_password_from_stdin(server, sock, capsys, monkeypatch):
    run(capsys, *sock, "domain", "create", "stdin.example")
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin-pw\n"))
    assert run(capsys, *sock, "account", "create", "pipe", "--password", "-")[0] == EXIT_OK

    async def check():
        return await server.store.authenticate("pipe", "from-stdin-pw")
    assert server.thread.call(check)["name"] == "pipe"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, *sock, "account", "update", "pipe", "--password", "-")
    assert code == EXIT_INVALID and "standard input" in err
    run(capsys, *sock, "account", "delete", "pipe")
    run(capsys, *sock, "domain", "delete", "stdin.example")


@pytest.mark.parametrize("argv,code,message", [
    (["domain", "create", "bad_name.example"], EXIT_INVALID, "invalid label"),
    (["domain", "create", "fixed.example"], EXIT_CONFLICT, "already exists"),
    (["domain", "delete", "fixed.example"], EXIT_CONFLICT, "still has addresses"),
    (["domain", "delete", "missing.example"], EXIT_NOT_FOUND, "does not exist"),
    (["domain", "show", "missing.example"], EXIT_NOT_FOUND, "does not exist"),
    (["domain", "alias", "alias.example", "--to", "missing.example"], EXIT_NOT_FOUND,
     "does not exist"),
    (["domain", "catch-all", "fixed.example"], EXIT_INVALID, "ACCOUNT or --clear"),
    (["domain", "catch-all", "fixed.example", "bob", "--clear"], EXIT_INVALID,
     "ACCOUNT or --clear"),
    (["domain", "catch-all", "fixed.example", "nobody"], EXIT_NOT_FOUND, "nobody"),
    (["account", "create", "bob"], EXIT_CONFLICT, "already exists"),
    (["account", "create", "new", "--email", "x@missing.example"], EXIT_INVALID,
     "not a local domain"),
    (["account", "create", "new", "--email", "not-an-address"], EXIT_INVALID,
     "not an email address"),
    (["account", "create", "new", "--email", "bob@fixed.example"], EXIT_CONFLICT,
     "belongs to another account"),
    (["account", "create", "has space"], EXIT_INVALID, "spaces"),
    (["account", "show", "nobody"], EXIT_NOT_FOUND, "does not exist"),
    (["account", "delete", "nobody"], EXIT_NOT_FOUND, "does not exist"),
    (["account", "update", "bob"], EXIT_INVALID, "nothing to change"),
    (["account", "update", "nobody", "--quota", "1M"], EXIT_NOT_FOUND, "does not exist"),
    (["account", "update", "nobody", "--email", "a@fixed.example"], EXIT_NOT_FOUND,
     "does not exist"),
    (["account", "update", "bob", "--remove-alias", "zz@fixed.example"], EXIT_NOT_FOUND,
     "not an address"),
    (["account", "list", "--domain", "missing.example"], EXIT_NOT_FOUND, "does not exist"),
    (["--user", "admin", "domain", "list"], EXIT_INVALID, "go with --url"),
])
def test_errors_exit_codes_and_nothing_changes(server, sock, capsys, argv, code, message):
    if server.store is None or server.store.get_domain("fixed.example") is None:
        assert run(capsys, *sock, "domain", "create", "fixed.example")[0] == EXIT_OK
        assert run(capsys, *sock, "account", "create", "bob", "--email",
                   "bob@fixed.example")[0] == EXIT_OK
    before = server.state()
    got, out, err = run(capsys, *sock, *argv)
    assert got == code, (out, err)
    assert err.startswith("stalwart-cli: error: ") and message in err
    assert out == ""
    assert server.state() == before


@pytest.mark.parametrize("argv", [
    ["account", "create", "x", "--quota", "lots"],
    ["account", "update", "x", "--enable", "--disable"],
    ["domain", "alias", "x.example"],
    ["domain"],
    ["nothing"],
])
def test_usage_errors_exit_2(server, sock, capsys, argv):
    before = server.state()
    with pytest.raises(SystemExit) as info:
        cli.main([*sock, *argv])
    assert info.value.code == EXIT_INVALID
    assert server.state() == before


def test_server_not_running(tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "--socket", str(tmp_path / "none.sock"), "domain", "list")
    assert code == EXIT_UNREACHABLE and "not running" in err and "does not exist" in err
    # A stale socket file nobody listens on.
    import socket as socketlib
    stale = Path("/tmp") / f"sw-cli-stale-{os.getpid()}.sock"
    s = socketlib.socket(socketlib.AF_UNIX)
    s.bind(str(stale))
    s.close()
    try:
        code, _, err = run(capsys, "--socket", str(stale), "domain", "list")
        assert code == EXIT_UNREACHABLE and "nobody listens" in err
    finally:
        stale.unlink()
    # The default location is ./var/run/admin.sock.
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "domain", "list")
    assert code == EXIT_UNREACHABLE and "var/run/admin.sock" in err
    # Nothing on a TCP port.
    from stalwart.http.testing import free_port
    code, _, err = run(capsys, "--url", f"http://127.0.0.1:{free_port()}", "--user", "a",
                       "--password", "b", "domain", "list")
    assert code == EXIT_UNREACHABLE and "cannot reach" in err


def test_default_socket_and_config_locate_the_server(server, capsys, monkeypatch, tmp_path):
    run_dir = tmp_path / "var" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "admin.sock").symlink_to(server.thread.unix_path)
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "domain", "list")[0] == EXIT_OK

    base = tmp_path / "base"
    (base / "run").mkdir(parents=True)
    (base / "run" / "admin.sock").symlink_to(server.thread.unix_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndirectory = "{base}"\n')
    assert run(capsys, "--config", str(config), "domain", "list")[0] == EXIT_OK

    config.write_text("[storage\n")
    code, _, err = run(capsys, "--config", str(config), "domain", "list")
    assert code == EXIT_INVALID and "cannot read the config" in err


def test_tcp_with_credentials(server, capsys, monkeypatch, quiet_auth_log):
    url = f"http://127.0.0.1:{server.thread.port}"
    monkeypatch.delenv("STALWART_ADMIN_USER", raising=False)
    monkeypatch.delenv("STALWART_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "--url", url, "domain", "list")
    assert code == EXIT_AUTH and "needs credentials" in err

    code, _, err = run(capsys, "--url", url, "--user", "admin", "--password", "nope",
                       "domain", "list")
    assert code == EXIT_AUTH and "authentication failed" in err
    assert quiet_auth_log[-1]["login"] == "admin"

    assert run(capsys, "--url", url, "--user", "admin", "--password", "admin-pass",
               "domain", "list")[0] == EXIT_OK
    monkeypatch.setenv("STALWART_ADMIN_USER", "admin")
    monkeypatch.setenv("STALWART_ADMIN_PASSWORD", "admin-pass")
    assert run(capsys, "--url", url + "/", "domain", "list", "--json")[0] == EXIT_OK
    # --password after account create is the account's; the admin's comes from the env.
    run(capsys, "--url", url, "domain", "create", "tcp.example")
    code, out, err = run(capsys, "--url", url, "account", "create", "tcpuser", "--password",
                         "tcp-user-pw", "--email", "t@tcp.example")
    assert code == EXIT_OK, err

    async def check():
        return await server.store.authenticate("tcpuser", "tcp-user-pw")
    assert server.thread.call(check) is not None
    code, _, err = run(capsys, "--url", url, "--user", "tcpuser", "--password", "tcp-user-pw",
                       "domain", "list")
    assert code == EXIT_AUTH and "not allowed" in err
    run(capsys, "--url", url, "account", "delete", "tcpuser")
    run(capsys, "--url", url, "domain", "delete", "tcp.example")

    for bad in ("ftp://x", "http://", "http://u:p@127.0.0.1:1", "http://127.0.0.1:99999"):
        code, _, err = run(capsys, "--url", bad, "domain", "list")
        assert code == EXIT_INVALID, (bad, err)


def test_tls_verification(capsys, monkeypatch):
    from test_http_server import make_cert
    from stalwart.http.tls import server_context

    cert = make_cert(["localhost", "127.0.0.1"])
    tls = Server(ssl_context=server_context({"x": cert}))
    try:
        url = f"https://127.0.0.1:{tls.thread.port}"
        monkeypatch.setenv("STALWART_ADMIN_USER", "admin")
        monkeypatch.setenv("STALWART_ADMIN_PASSWORD", "admin-pass")
        code, _, err = run(capsys, "--url", url, "domain", "list")
        assert code == EXIT_UNREACHABLE and "not trusted" in err and "--insecure" in err
        assert run(capsys, "--url", url, "--insecure", "domain", "list")[0] == EXIT_OK
    finally:
        tls.thread.stop()


def test_hash_command(capsys, monkeypatch):
    from stalwart.directory import verify_secret

    code, out, _ = run(capsys, "hash", "s3cret")
    assert code == EXIT_OK and out.startswith("$argon2id$")
    assert verify_secret(out.strip(), "s3cret")
    monkeypatch.setattr(sys, "stdin", io.StringIO("piped\n"))
    code, out, _ = run(capsys, "--json", "hash")
    assert verify_secret(json.loads(out)["hash"], "piped")
    code, _, err = run(capsys, "hash", "")
    assert code == EXIT_INVALID


@pytest.mark.parametrize("text,value", [("0", 0), ("1024", 1024), ("1K", 1024),
                                        ("500M", 500 * 1024**2), ("1.5G", 3 * 1024**3 // 2),
                                        ("2GiB", 2 * 1024**3), ("1gb", 1024**3),
                                        ("unlimited", 0)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "1X", "-1G", "1e9", "99999999P"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size():
    assert [format_size(v) for v in (0, 512, 1024, 1536, 1024**3, 5 * 1024**4)] == \
        ["0", "512", "1K", "1.5K", "1G", "5T"]
