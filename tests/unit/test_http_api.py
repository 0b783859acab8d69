"""The REST management API against Store.memory(), over the admin Unix socket (peer uid)
and over TCP with HTTP Basic. Every refused request must leave the store unchanged."""

from __future__ import annotations

import base64
import http.client
import sys
import types
from types import SimpleNamespace

import orjson
import pytest
from argon2 import PasswordHasher

from stalwart.cli.client import UnixHTTPConnection
from stalwart.http.api import build_router
from stalwart.http.api.auth import parse_basic, socket_principal
from stalwart.http.message import HTTPError, Peer, Request
from stalwart.http.router import Router
from stalwart.http.server import StoreHandle
from stalwart.http.testing import ServerThread
from stalwart.store.api import Store
from stalwart.store.errors import StoreError

ADMIN_HASH = PasswordHasher().hash("hashed-secret")


def make_config(fallback=("admin", "plain-secret"), principals=()):
    return SimpleNamespace(fallback_admin=fallback, principals=list(principals),
                           get=lambda key: 1.0)


@pytest.fixture
def auth_failures(monkeypatch):
    """Record stalwart.log.auth_failure calls (the real module if present, else a stand-in)."""
    calls = []

    def record(**kwargs):
        calls.append(kwargs)

    module = sys.modules.get("stalwart.log")
    if module is None:
        try:
            import stalwart.log as module  # noqa: F811
        except ImportError:
            module = types.ModuleType("stalwart.log")
            monkeypatch.setitem(sys.modules, "stalwart.log", module)
    monkeypatch.setattr(module, "auth_failure", record, raising=False)
    return calls


class Api:
    """A running API server with a memory store, and a small client for it."""

    def __init__(self, config, opener=None):
        self.config = config
        self.store = None

        async def make_app():
            async def open_memory():
                self.store = Store.memory()
                return self.store
            router = Router()
            router.mount("/api", build_router(config, StoreHandle(opener or open_memory)))
            return router.dispatch

        self.thread = ServerThread(make_app, unix=True, tcp=True).start()

    def call(self, method, path, body=None, *, auth=None, tcp=False, raw=None, headers=None):
        if tcp:
            conn = http.client.HTTPConnection("127.0.0.1", self.thread.port, timeout=10)
        else:
            conn = UnixHTTPConnection(self.thread.unix_path, timeout=10)
        hdrs = dict(headers or {})
        payload = raw
        if body is not None:
            payload = orjson.dumps(body)
            hdrs.setdefault("content-type", "application/json")
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            hdrs["authorization"] = f"Basic {token}"
        try:
            conn.request(method, path, body=payload, headers=hdrs)
            response = conn.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), \
                (orjson.loads(data) if data else None)
        finally:
            conn.close()

    def state(self):
        """Everything the API can show: compared before and after refused requests."""
        domains = self.call("GET", "/api/domains")[2]
        accounts = self.call("GET", "/api/accounts")[2]
        return domains, accounts

    def close(self):
        self.thread.stop()


@pytest.fixture
def api(auth_failures):
    server = Api(make_config())
    yield server
    server.close()


def seed(api):
    assert api.call("POST", "/api/domains", {"name": "example.org"})[0] == 201
    assert api.call("POST", "/api/domains", {"name": "Example.NET."})[0] == 201
    status, headers, account = api.call("POST", "/api/accounts", {
        "name": "jane", "password": "jane-pass-1", "display_name": "Jane Doe",
        "quota": 1 << 30, "emails": ["Jane@Example.org", "j.doe@example.org"]})
    assert status == 201, account
    assert headers["location"] == "/api/accounts/jane"
    return account


def test_domains_crud(api):
    status, headers, d = api.call("POST", "/api/domains", {"name": "Bücher.Example"})
    assert status == 201
    assert d == {"name": "xn--bcher-kva.example", "alias_of": None, "catch_all": None}
    assert headers["location"] == "/api/domains/xn--bcher-kva.example"
    assert api.call("GET", "/api/domains/b%C3%BCcher.example")[2]["name"] == \
        "xn--bcher-kva.example"
    api.call("POST", "/api/domains", {"name": "a.example"})
    names = [x["name"] for x in api.call("GET", "/api/domains")[2]["domains"]]
    assert names == ["a.example", "xn--bcher-kva.example"]
    assert api.call("DELETE", "/api/domains/a.example")[0] == 204
    assert api.call("GET", "/api/domains/a.example")[0] == 404
    assert api.call("DELETE", "/api/domains/a.example")[2]["error"] == "not_found"


def test_accounts_crud(api):
    account = seed(api)
    assert account["emails"] == ["jane@example.org", "j.doe@example.org"]
    assert account["display_name"] == "Jane Doe" and account["quota"] == 1 << 30
    assert "secret" not in account and "password" not in account

    for key in ("jane", "j.doe@example.org", "JANE"):
        status, _, shown = api.call("GET", f"/api/accounts/{key}")
        assert status == 200 and shown["id"] == account["id"], key

    status, _, updated = api.call("PATCH", "/api/accounts/jane", {
        "display_name": "Jane Q. Doe", "quota": 0, "disabled": True,
        "add_emails": ["jane@example.net"], "remove_emails": ["j.doe@example.org"]})
    assert status == 200, updated
    assert updated["emails"] == ["jane@example.org", "jane@example.net"]
    assert updated["disabled"] is True and updated["quota"] == 0

    status, _, renamed = api.call("PATCH", "/api/accounts/jane@example.org",
                                  {"name": "janet", "emails": ["janet@example.org"]})
    assert status == 200 and renamed["name"] == "janet"
    assert renamed["emails"] == ["janet@example.org"]
    assert api.call("GET", "/api/accounts/jane")[0] == 404

    listed = api.call("GET", "/api/accounts?domain=example.org")[2]["accounts"]
    assert [a["name"] for a in listed] == ["janet"]
    assert api.call("GET", "/api/accounts?domain=example.net")[2]["accounts"] == []

    assert api.call("DELETE", "/api/accounts/janet")[0] == 204
    assert api.call("GET", "/api/accounts")[2]["accounts"] == []
    assert api.call("DELETE", "/api/accounts/janet")[0] == 404


def test_password_is_hashed_by_the_store_and_never_returned(api):
    seed(api)
    for _, _, body in (api.call("GET", "/api/accounts/jane"), api.call("GET", "/api/accounts")):
        assert b"jane-pass-1" not in orjson.dumps(body)
        assert b"argon2" not in orjson.dumps(body)
    status, _, _ = api.call("PATCH", "/api/accounts/jane", {"password": "new-pass-22"})
    assert status == 200
    record = api.store.get_account("jane")
    assert "secret" not in record


def test_catch_all_and_alias_domain(api):
    seed(api)
    status, _, d = api.call("PUT", "/api/domains/example.org/catch-all", {"account": "jane"})
    assert status == 200 and d["catch_all"] == "jane"
    assert api.call("GET", "/api/domains/example.org")[2]["catch_all"] == "jane"
    # by address too
    status, _, d = api.call("PUT", "/api/domains/example.org/catch-all",
                            {"account": "j.doe@example.org"})
    assert d["catch_all"] == "jane"
    status, _, d = api.call("DELETE", "/api/domains/example.org/catch-all")
    assert status == 200 and d["catch_all"] is None

    status, _, d = api.call("POST", "/api/domains", {"name": "example.com",
                                                     "alias_of": "example.org"})
    assert status == 201 and d["alias_of"] == "example.org"
    assert api.store.resolve_address("jane@example.com") == api.store.resolve_address(
        "jane@example.org")
    # the target cannot go while its alias exists
    status, _, err = api.call("DELETE", "/api/domains/example.org")
    assert status == 409 and err["error"] == "in_use"


@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", "/api/domains", {"name": "no_underscores.example"}, 400, "invalid"),
    ("POST", "/api/domains", {"name": "single"}, 400, "invalid"),
    ("POST", "/api/domains", {"name": "a" * 64 + ".example"}, 400, "invalid"),
    ("POST", "/api/domains", {"name": ("a" * 60 + ".") * 5 + "org"}, 400, "invalid"),
    ("POST", "/api/domains", {"name": 42}, 400, "invalid"),
    ("POST", "/api/domains", {}, 400, "invalid"),
    ("POST", "/api/domains", {"name": "x.example", "extra": 1}, 400, "invalid"),
    ("POST", "/api/domains", {"name": "example.org"}, 409, "exists"),
    ("POST", "/api/domains", {"name": "x.example", "alias_of": "nowhere.example"}, 404,
     "not_found"),
    ("POST", "/api/domains", [1, 2], 400, "invalid_json"),
    ("GET", "/api/domains/not_valid", None, 400, "invalid"),
    ("GET", "/api/domains/missing.example", None, 404, "not_found"),
    ("DELETE", "/api/domains/example.org", None, 409, "in_use"),
    ("PUT", "/api/domains/example.org/catch-all", {"account": "nobody"}, 404, "not_found"),
    ("PUT", "/api/domains/example.org/catch-all", {}, 400, "invalid"),
    ("PUT", "/api/domains/missing.example/catch-all", {"account": "jane"}, 404, "not_found"),
    ("POST", "/api/accounts", {"name": "jane"}, 409, "exists"),
    ("POST", "/api/accounts", {"name": "bob", "quota": -1}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "quota": True}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "quota": "1G"}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "quota": 2**63}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob smith"}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": ""}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "password": ""}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "password": "x" * 1025}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "emails": "bob@example.org"}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "emails": ["not-an-address"]}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "emails": ["bob@elsewhere.example"]}, 400,
     "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "emails": ["jane@example.org"]}, 409, "exists"),
    ("POST", "/api/accounts", {"name": "bob", "type": "root"}, 400, "invalid"),
    ("POST", "/api/accounts", {"name": "bob", "disabled": "yes"}, 400, "invalid"),
    ("PATCH", "/api/accounts/jane", {}, 400, "invalid"),
    ("PATCH", "/api/accounts/jane", {"secret": "x"}, 400, "invalid"),
    ("PATCH", "/api/accounts/jane", {"emails": [], "add_emails": ["a@example.org"]}, 400,
     "invalid"),
    ("PATCH", "/api/accounts/jane", {"remove_emails": ["zz@example.org"]}, 404, "not_found"),
    ("PATCH", "/api/accounts/nobody", {"quota": 1}, 404, "not_found"),
    ("PATCH", "/api/accounts/jane", {"quota": 5, "emails": ["bad@missing.example"]}, 400,
     "invalid"),
    ("GET", "/api/accounts/nobody", None, 404, "not_found"),
    ("GET", "/api/accounts?domain=missing.example", None, 404, "not_found"),
    ("GET", "/api/accounts?domain=bad_domain", None, 400, "invalid"),
    ("GET", "/api/accounts?domain=a.org&domain=b.org", None, 400, "bad_query"),
    ("DELETE", "/api/accounts/nobody", None, 404, "not_found"),
    ("PUT", "/api/accounts", None, 405, "method_not_allowed"),
    ("GET", "/api/nothing", None, 404, "not_found"),
])
def test_refused_requests_change_nothing(api, method, path, body, status, code):
    seed(api)
    before = api.state()
    got_status, _, err = api.call(method, path, body)
    assert (got_status, err["error"]) == (status, code), err
    assert set(err) == {"error", "detail"} and err["detail"]
    assert api.state() == before


@pytest.mark.parametrize("raw,ctype,status,code", [
    (b"{not json", "application/json", 400, "invalid_json"),
    (b"", "application/json", 400, "invalid_json"),
    (b"\xff\xfe", "application/json", 400, "invalid_json"),
    (b'{"name": "x.example"}', "text/plain", 415, "unsupported_media_type"),
])
def test_bad_bodies(api, raw, ctype, status, code):
    before = api.state()
    got, _, err = api.call("POST", "/api/domains", raw=raw, headers={"content-type": ctype})
    assert (got, err["error"]) == (status, code)
    assert api.state() == before


# --------------------------------------------------------------------------- auth over TCP

def test_tcp_needs_credentials(api, auth_failures):
    status, headers, err = api.call("GET", "/api/domains", tcp=True)
    assert status == 401 and err["error"] == "unauthorized"
    assert headers["www-authenticate"].startswith("Basic realm=")
    assert auth_failures == []    # no credentials offered: not a failed login


def test_fallback_admin_plain_and_wrong_password(api, auth_failures):
    assert api.call("GET", "/api/domains", tcp=True, auth=("admin", "plain-secret"))[0] == 200
    status, headers, err = api.call("POST", "/api/domains", {"name": "x.example"}, tcp=True,
                                    auth=("admin", "wrong"))
    assert status == 401 and "www-authenticate" in headers
    assert b"wrong" not in orjson.dumps(err)
    assert auth_failures == [{"protocol": "http", "remote_ip": "127.0.0.1",
                              "login": "admin", "reason": "invalid credentials"}]
    assert api.call("GET", "/api/domains")[2]["domains"] == []


@pytest.mark.parametrize("header", ["Basic !!!notbase64", "Basic " +
                                    base64.b64encode(b"no-colon").decode(),
                                    "Bearer abc", "Basic"])
def test_malformed_authorization_is_401_and_logged(api, auth_failures, header):
    status, _, err = api.call("GET", "/api/domains", tcp=True,
                              headers={"authorization": header})
    assert status == 401
    assert auth_failures and auth_failures[-1]["reason"] == "malformed credentials"


def test_hashed_fallback_admin(auth_failures):
    server = Api(make_config(fallback=("root-admin", ADMIN_HASH)))
    try:
        assert server.call("GET", "/api/domains", tcp=True,
                           auth=("root-admin", "hashed-secret"))[0] == 200
        assert server.call("GET", "/api/domains", tcp=True,
                           auth=("root-admin", ADMIN_HASH))[0] == 401
    finally:
        server.close()


def test_internal_admin_account_and_non_admin(api, auth_failures):
    seed(api)
    assert api.call("POST", "/api/accounts", {"name": "boss", "password": "boss-pass-1",
                                              "type": "admin"})[0] == 201
    assert api.call("GET", "/api/accounts", tcp=True, auth=("boss", "boss-pass-1"))[0] == 200
    status, _, err = api.call("GET", "/api/accounts", tcp=True, auth=("jane", "jane-pass-1"))
    assert status == 403 and err["error"] == "forbidden"
    assert api.call("GET", "/api/accounts", tcp=True,
                    auth=("jane@example.org", "jane-pass-1"))[0] == 403
    # a disabled admin cannot log in
    api.call("PATCH", "/api/accounts/boss", {"disabled": True})
    assert api.call("GET", "/api/accounts", tcp=True, auth=("boss", "boss-pass-1"))[0] == 401


def test_memory_directory_admin(auth_failures):
    principals = [{"name": "ops", "class": "admin", "secret": "ops-secret", "email": [],
                   "quota": 0},
                  {"name": "user", "class": "individual", "secret": "user-secret"}]
    server = Api(make_config(fallback=None, principals=principals))
    try:
        assert server.call("GET", "/api/domains", tcp=True, auth=("ops", "ops-secret"))[0] == 200
        assert server.call("GET", "/api/domains", tcp=True,
                           auth=("user", "user-secret"))[0] == 403
        assert server.call("GET", "/api/domains", tcp=True, auth=("ops", "nope"))[0] == 401
    finally:
        server.close()


def test_store_unavailable_is_503(auth_failures):
    async def broken():
        raise StoreError("unavailable", "store process is starting")

    server = Api(make_config(), opener=broken)
    try:
        status, _, err = server.call("GET", "/api/domains")
        assert status == 503 and err["error"] == "unavailable"
        status, _, err = server.call("GET", "/api/domains", tcp=True,
                                     auth=("admin", "plain-secret"))
        assert status == 503
        # an unknown login cannot be decided without the store: 503, not 401
        status, _, err = server.call("GET", "/api/domains", tcp=True, auth=("jane", "x"))
        assert status == 503
        assert auth_failures == []
    finally:
        server.close()


def test_store_reconnects_after_failure(auth_failures):
    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("connection refused")
        return Store.memory()

    server = Api(make_config(), opener=flaky)
    try:
        assert server.call("GET", "/api/domains")[0] == 503
        assert server.call("GET", "/api/domains")[0] == 200
        assert len(attempts) == 2
    finally:
        server.close()


def test_socket_principal_checks_uid():
    import os

    def request(uid):
        return Request("GET", "/api/domains", [], b"",
                       Peer(address=None, uid=uid, admin_socket=True))

    assert socket_principal(request(os.geteuid())).is_admin
    assert socket_principal(request(0)).is_admin
    for uid in (None, 54321):
        if uid == os.geteuid():
            continue
        with pytest.raises(HTTPError) as info:
            socket_principal(request(uid))
        assert info.value.status == 403


def test_parse_basic():
    token = base64.b64encode("jöe:pa:ss".encode()).decode()
    assert parse_basic(f"Basic {token}") == ("jöe", "pa:ss")
    assert parse_basic(f"basic  {token} ") == ("jöe", "pa:ss")
    assert parse_basic("Basic " + base64.b64encode(b"\xff:x").decode()) is None
    assert parse_basic("Digest abc") is None
