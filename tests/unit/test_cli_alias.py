"""``stalwart-cli alias`` and ``/api/aliases`` against an in-process API server over a
memory store (Unix socket): the whole lifecycle, --json, and every refusal with its exit
code and message, each changing nothing."""

from __future__ import annotations

import json

import pytest

from stalwart.cli import main as cli
from stalwart.cli.client import EXIT_CONFLICT, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK
from stalwart.http.api import build_router
from stalwart.http.router import Router
from stalwart.http.server import StoreHandle
from stalwart.http.testing import ServerThread
from stalwart.store.api import Store


class Config:
    fallback_admin = ("admin", "admin-pass")
    principals: list = []


class Server:
    def __init__(self):
        self.store = None

        async def make_app():
            async def open_memory():
                if self.store is None:
                    self.store = Store.memory()
                    await self.store.create_domain("example.org")
                    await self.store.create_domain("example.net", alias_of="example.org")
                    await self.store.create_account("alice", emails=["alice@example.org"])
                return self.store
            router = Router()
            router.mount("/api", build_router(Config(), StoreHandle(open_memory)))
            return router.dispatch

        self.thread = ServerThread(make_app, unix=True, tcp=False)
        self.thread.start()

    def state(self):
        async def read():
            return self.store.list_forwards(), self.store.list_accounts(), self.store.list_domains()
        return self.thread.call(read)


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


def test_alias_lifecycle(server, sock, capsys):
    code, out, err = run(capsys, *sock, "alias", "create", "Info@Example.org",
                         "--to", "alice@example.org", "--to", "Bob@Remote.Example")
    assert code == EXIT_OK, err
    assert out.strip() == "created alias info@example.org -> alice@example.org, bob@remote.example"

    code, out, _ = run(capsys, *sock, "alias", "list")
    assert out.splitlines() == ["ADDRESS           TARGETS",
                                "info@example.org  alice@example.org, bob@remote.example"]
    code, out, _ = run(capsys, *sock, "--json", "alias", "list", "--domain", "example.org")
    assert [a["address"] for a in json.loads(out)["aliases"]] == ["info@example.org"]

    code, out, _ = run(capsys, *sock, "alias", "show", "info@example.org")
    assert "Local:" in out and "alice@example.org (alice)" in out
    assert "Remote:" in out and "bob@remote.example" in out
    code, out, _ = run(capsys, *sock, "--json", "alias", "show", "info@example.org")
    shown = json.loads(out)
    assert shown["expansion"] == {"accounts": [{"address": "alice@example.org",
                                                "account": "alice"}],
                                  "remote": ["bob@remote.example"], "missing": []}

    code, out, _ = run(capsys, *sock, "alias", "update", "info@example.org",
                       "--to", "carol@remote.example")
    assert code == EXIT_OK and "now goes to carol@remote.example" in out
    # The message reaches exactly the new list (read by the SMTP policy's store function).
    target = server.thread.call(_async(lambda: server.store.resolve_recipient("info@example.org")))
    assert target["remote"] == ["carol@remote.example"] and target["accounts"] == []

    code, out, _ = run(capsys, *sock, "alias", "delete", "info@example.org")
    assert code == EXIT_OK and "deleted alias info@example.org" in out
    assert run(capsys, *sock, "alias", "list")[1].strip() == "(none)"


def _async(fn):
    async def call():
        return fn()
    return call


@pytest.mark.parametrize("argv,code,message", [
    (["alias", "create", "fixed@example.org", "--to", "x@remote.example"], EXIT_CONFLICT,
     "already exists"),
    (["alias", "create", "alice@example.org", "--to", "x@remote.example"], EXIT_CONFLICT,
     "account 'alice'"),
    (["alias", "create", "new@remote.example", "--to", "x@remote.example"], EXIT_INVALID,
     "not a local domain"),
    (["alias", "create", "new@example.net", "--to", "x@remote.example"], EXIT_INVALID,
     "alias domain"),
    (["alias", "create", "new@example.org", "--to", "not-an-address"], EXIT_INVALID,
     "targets[0]"),
    (["alias", "create", "new@example.org", "--to", "x@[192.0.2.1]"], EXIT_INVALID,
     "targets[0]"),
    (["alias", "create", "new@example.org", "--to", "ghost@example.org"], EXIT_NOT_FOUND,
     "ghost@example.org"),
    (["alias", "create", "new@example.org", "--to", "new@example.org"], EXIT_INVALID,
     "itself"),
    (["alias", "create", "bad", "--to", "x@remote.example"], EXIT_INVALID, "address"),
    (["alias", "update", "fixed@example.org", "--to", "loop@example.org"], EXIT_INVALID,
     "loop"),
    (["alias", "update", "missing@example.org", "--to", "x@remote.example"], EXIT_NOT_FOUND,
     "does not exist"),
    (["alias", "show", "missing@example.org"], EXIT_NOT_FOUND, "does not exist"),
    (["alias", "delete", "missing@example.org"], EXIT_NOT_FOUND, "does not exist"),
    (["alias", "list", "--domain", "missing.example"], EXIT_NOT_FOUND, "does not exist"),
    (["domain", "delete", "example.org"], EXIT_CONFLICT, "still has"),
    (["account", "create", "fixed", "--email", "fixed@example.org"], EXIT_CONFLICT,
     "forwarding alias"),
])
def test_refusals_exit_codes_and_nothing_changes(server, sock, capsys, argv, code, message):
    if server.store is None or server.store.get_forward("fixed@example.org") is None:
        assert run(capsys, *sock, "alias", "create", "fixed@example.org",
                   "--to", "x@remote.example")[0] == EXIT_OK
        assert run(capsys, *sock, "alias", "create", "loop@example.org",
                   "--to", "fixed@example.org")[0] == EXIT_OK
    before = server.state()
    got, out, err = run(capsys, *sock, *argv)
    assert got == code, (out, err)
    assert err.startswith("stalwart-cli: error: ") and message in err, err
    assert out == ""
    assert server.state() == before


def test_api_refuses_too_many_targets_and_unknown_fields(server, sock, capsys):
    from stalwart.cli.client import ApiClient, CliError, Target

    client = ApiClient(Target(socket_path=server.thread.unix_path))
    before = server.state()
    for body, message in (
            ({"address": "n@example.org", "targets": [f"u{i}@r.example" for i in range(101)]},
             "more than 100"),
            ({"address": "n@example.org", "targets": []}, "non-empty list"),
            ({"address": "n@example.org", "targets": "x@r.example"}, "non-empty list"),
            ({"address": "n@example.org", "targets": ["x@r.example"], "extra": 1},
             "unknown fields"),
            ({"targets": ["x@r.example"]}, "missing fields")):
        with pytest.raises(CliError) as exc:
            client.request("POST", "/api/aliases", body)
        assert exc.value.exit_code == EXIT_INVALID and message in exc.value.message
    assert server.state() == before


@pytest.mark.parametrize("argv", [
    ["alias", "create", "x@example.org"],                # no --to
    ["alias", "update", "x@example.org"],
    ["alias"],
])
def test_usage_errors_exit_2(server, sock, capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main([*sock, *argv])
    assert info.value.code == EXIT_INVALID
