"""DKIM keys end to end without the daemon: the store operations, /api/dkim, stalwart-cli
dkim create|list|dns|delete, and the signing step of the submission path (LocalDelivery's
queue entry), whose signatures are checked through the DNS records the CLI printed, by us
and by dkimpy."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import types

import dkim as dkimpy
import pytest

from stalwart.cli import main as cli
from stalwart.cli.client import EXIT_CONFLICT, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK
from stalwart.config import embedded_default
from stalwart.dns import FakeBackend, Resolver
from stalwart.http.api import build_router
from stalwart.http.router import Router
from stalwart.http.server import StoreHandle
from stalwart.http.testing import ServerThread
from stalwart.mailauth import dkim, keys
from stalwart.store.api import Store
from stalwart.store.errors import StoreError


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- store

def test_store_operations():
    async def go():
        store = Store.memory()
        await store.create_domain("example.org")
        await store.create_domain("example.org.uk")
        pem = keys.private_key_pem(keys.generate("ed25519-sha256"))
        record = await store.dkim_key_put("Example.ORG.", "Ed-1", "ed25519-sha256", pem, 10.0)
        assert record == {"domain": "example.org", "selector": "ed-1",
                          "algorithm": "ed25519-sha256", "private_key": pem, "created": 10.0}
        await store.dkim_key_put("example.org.uk", "ed-1", "ed25519-sha256", pem)
        assert [r["domain"] for r in store.dkim_keys("example.org")] == ["example.org"]
        assert len(store.dkim_keys()) == 2
        assert store.dkim_keys("not a domain") == []
        bad = [(("nope.example", "a", "ed25519-sha256", pem), "not_found"),
               (("example.org", "ed-1", "ed25519-sha256", pem), "exists"),
               (("example.org", "b", "rsa-sha1", pem), "invalid"),
               (("example.org", "b c", "ed25519-sha256", pem), "invalid"),
               (("example.org", "b", "ed25519-sha256", "not pem"), "invalid"),
               (("example.org", "b", "ed25519-sha256", pem, "yesterday"), "invalid")]
        for args, code in bad:
            with pytest.raises(StoreError) as info:
                await store.dkim_key_put(*args)
            assert info.value.code == code
        assert len(store.dkim_keys()) == 2            # nothing changed
        await store.dkim_key_delete("example.org", "ED-1")
        assert store.dkim_keys("example.org") == []
        with pytest.raises(StoreError) as info:
            await store.dkim_key_delete("example.org", "ed-1")
        assert info.value.code == "not_found"
    run(go())


# ---------------------------------------------------------------- API and CLI

class Server:
    def __init__(self, config):
        self.store = None

        async def make_app():
            async def open_memory():
                self.store = Store.memory()
                return self.store
            router = Router()
            router.mount("/api", build_router(config, StoreHandle(open_memory)))
            return router.dispatch

        self.thread = ServerThread(make_app, unix=True, tcp=False).start()


@pytest.fixture(autouse=True)
def quiet_auth_log(monkeypatch):
    module = sys.modules.get("stalwart.log")
    if module is None:
        try:
            import stalwart.log as module  # noqa: F811
        except ImportError:
            module = types.ModuleType("stalwart.log")
            monkeypatch.setitem(sys.modules, "stalwart.log", module)
    monkeypatch.setattr(module, "auth_failure", lambda **kw: None, raising=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    config = embedded_default(tmp_path_factory.mktemp("var"))     # not ./var of the checkout
    config.fallback_admin = ("admin", "admin-pass")
    s = Server(config)
    yield s
    s.thread.stop()


def cmd(capsys, server, *argv):
    code = cli.main(["--socket", str(server.thread.unix_path), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def zone_from(out: str) -> dict:
    """The FakeBackend zone for the zone-file lines stalwart-cli printed."""
    zone = {}
    for name, strings in re.findall(r"^(\S+)\. IN TXT \( (.*) \)$", out, re.M):
        zone[name] = {"TXT": tuple(re.findall(r'"([^"]*)"', strings))}
    return zone


def test_cli_create_list_dns_delete(server, capsys):
    assert cmd(capsys, server, "domain", "create", "example.org")[0] == EXIT_OK
    code, out, err = cmd(capsys, server, "dkim", "create", "example.org")
    assert code == EXIT_OK, err
    assert out.startswith("created DKIM keys for example.org: rsa-")
    assert "(rsa-sha256)" in out and "(ed25519-sha256)" in out
    zone = zone_from(out)
    assert len(zone) == 2
    rsa_name = next(n for n in zone if n.startswith("rsa-"))
    record = "".join(zone[rsa_name]["TXT"])
    assert record.startswith("v=DKIM1; k=rsa; p=MIIBIj")        # 2048 bits by default
    assert dkim.parse_key_record(record).bits == 2048
    assert all(len(s) <= 255 for s in zone[rsa_name]["TXT"])

    code, out, _ = cmd(capsys, server, "dkim", "create", "example.org", "--algorithm",
                       "rsa-sha256", "--selector", "Custom", "--rsa-bits", "1024")
    assert code == EXIT_OK and "custom (rsa-sha256)" in out
    assert dkim.parse_key_record("".join(zone_from(out)["custom._domainkey.example.org"]["TXT"])).bits == 1024

    code, out, _ = cmd(capsys, server, "dkim", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["DOMAIN", "SELECTOR", "ALGORITHM", "CREATED"]
    assert sorted(line.split()[2] for line in lines[1:]) == ["ed25519-sha256", "rsa-sha256",
                                                            "rsa-sha256"]
    code, out, _ = cmd(capsys, server, "--json", "dkim", "list", "example.org")
    listed = json.loads(out)
    assert listed["domain"] == "example.org" and len(listed["keys"]) == 3
    assert "private" not in out and "PRIVATE" not in out

    code, out, _ = cmd(capsys, server, "dkim", "dns", "example.org")
    assert code == EXIT_OK and len(zone_from(out)) == 3 and "; ed25519-sha256, created" in out

    # errors, each with its exit code, nothing changed
    assert cmd(capsys, server, "dkim", "create", "nope.example")[0] == EXIT_NOT_FOUND
    assert cmd(capsys, server, "dkim", "dns", "nope.example")[0] == EXIT_NOT_FOUND
    assert cmd(capsys, server, "dkim", "create", "example.org", "--algorithm", "rsa-sha256",
               "--selector", "custom")[0] == EXIT_CONFLICT
    code, _, err = cmd(capsys, server, "dkim", "create", "example.org", "--selector", "x")
    assert code == EXIT_INVALID and "exactly one --algorithm" in err
    with pytest.raises(SystemExit):
        cmd(capsys, server, "dkim", "create", "example.org", "--rsa-bits", "512")
    capsys.readouterr()
    assert len(json.loads(cmd(capsys, server, "--json", "dkim", "list")[1])["keys"]) == 3

    code, out, _ = cmd(capsys, server, "dkim", "delete", "example.org", "custom")
    assert code == EXIT_OK and "deleted DKIM key custom of example.org" in out
    assert cmd(capsys, server, "dkim", "delete", "example.org", "custom")[0] == EXIT_NOT_FOUND
    assert len(zone_from(cmd(capsys, server, "dkim", "dns", "example.org")[1])) == 2


def test_api_validation(server, capsys):
    from stalwart.cli.client import ApiClient, CliError, Target

    cmd(capsys, server, "domain", "create", "api.example")
    client = ApiClient(Target(socket_path=server.thread.unix_path))
    for body in ({"algorithms": ["rsa-sha1"]}, {"algorithms": []}, {"rsa_bits": 100},
                 {"selector": "a b", "algorithms": ["ed25519-sha256"]}, {"other": 1},
                 {"selector": "x"}):
        with pytest.raises(CliError) as info:
            client.request("POST", "/api/dkim/api.example", body)
        assert info.value.exit_code == EXIT_INVALID, body
    assert client.request("GET", "/api/dkim/api.example")["keys"] == []
    made = client.request("POST", "/api/dkim/api.example", {"algorithms": ["ed25519-sha256"]})
    [key] = made["keys"]
    assert key["dns"]["name"] == f"{key['selector']}._domainkey.api.example"
    assert key["dns"]["value"].startswith("v=DKIM1; k=ed25519; p=")


# ---------------------------------------------------------------- the submission path

def _deliver(store, message: bytes, recipients, emails=("jane@example.org",)):
    from stalwart.protocols.smtp.address import Address, Path
    from stalwart.protocols.smtp.delivery import LocalDelivery
    from stalwart.protocols.smtp.events import Deliver, Envelope, Recipient, Session
    from stalwart.protocols.smtp.params import MailParams, RcptParams

    rcpts = []
    for local, domain, target in recipients:
        rcpts.append(Recipient(Path(Address(local, domain)), RcptParams(), target))
    session = Session(remote_ip="192.0.2.7", helo="laptop", esmtp=True, submission=True,
                      identity={"name": "jane", "emails": list(emails)}, authcid="jane")
    event = Deliver(session, Envelope(Path(Address("jane", "example.org")), MailParams(), rcpts),
                    message)
    return LocalDelivery(store, "mx.example.org").deliver(event)


MESSAGE = (b"From: Jane <jane@example.org>\r\nTo: bob@remote.example\r\n"
           b"Subject: signed on the way out\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
           b"Message-ID: <out-1@example.org>\r\n\r\nHello Bob.\r\n")


def test_submission_path_signs_before_enqueueing():
    async def go():
        store = Store.memory()
        await store.create_domain("example.org")
        zone = {}
        for algorithm in keys.ALGORITHMS:
            key = keys.generate(algorithm)
            selector = keys.new_selector(algorithm, [])
            await store.dkim_key_put("example.org", selector, algorithm, keys.private_key_pem(key))
            rec = keys.dns_record("example.org", selector, key)
            zone[rec.name] = {"TXT": rec.strings}
        replies = await _deliver(store, MESSAGE, [("bob", "remote.example",
                                                   {"relay": "bob@remote.example"})])
        assert replies[0].code == 250
        [entry] = store.queue_list()
        queued = store.blobs.get(entry["blob"])
        assert queued.startswith(b"DKIM-Signature: v=1; a=")
        assert entry["size"] == len(queued)
        results = await dkim.verify(queued, Resolver(FakeBackend(zone)))
        assert sorted((r.result, r.algorithm) for r in results) == [
            ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
        assert all(r.domain == "example.org" for r in results)

        def lookup(name, timeout=5):
            entry_ = zone.get(name.decode().rstrip("."))
            return "".join(entry_["TXT"]).encode() if entry_ else None
        d = dkimpy.DKIM(queued)
        assert d.verify(idx=0, dnsfunc=lookup) and d.verify(idx=1, dnsfunc=lookup)

        # newest key per algorithm: a rotated RSA key replaces the old one
        newer = keys.generate("rsa-sha256")
        await store.dkim_key_put("example.org", "rsa-next", "rsa-sha256",
                                 keys.private_key_pem(newer), created=2e9)
        await _deliver(store, MESSAGE, [("bob", "remote.example", {"relay": "bob@remote.example"})])
        latest = store.blobs.get(store.queue_list()[-1]["blob"])
        assert latest.count(b"DKIM-Signature:") == 2 and b"s=rsa-next;" in latest

        # another From domain (no keys): queued unsigned
        other = MESSAGE.replace(b"jane@example.org", b"jane@elsewhere.example")
        await _deliver(store, other, [("bob", "remote.example", {"relay": "bob@remote.example"})])
        assert b"DKIM-Signature" not in store.blobs.get(store.queue_list()[-1]["blob"])
    run(go())


def test_dsn_only_entries_are_not_signed():
    """A queue entry that carries only local failures (for the DSN) is not signed: a forged
    From from outside must never come back with our signature."""
    async def go():
        store = Store.memory()
        await store.create_domain("example.org")
        acc = (await store.create_account("bob", emails=["bob@example.org"], quota=10))["id"]
        key = keys.generate("ed25519-sha256")
        await store.dkim_key_put("example.org", "e", "ed25519-sha256", keys.private_key_pem(key))
        ok = (await store.create_account("amy", emails=["amy@example.org"]))["id"]
        big = MESSAGE + b"x" * 100
        replies = await _deliver(store, big, [
            ("amy", "example.org", {"account": ok, "address": "amy@example.org"}),
            ("bob", "example.org", {"account": acc, "address": "bob@example.org"})])
        assert [r.code for r in replies] == [250, 250]
        [entry] = store.queue_list()
        assert b"DKIM-Signature" not in store.blobs.get(entry["blob"])
    run(go())


def test_an_account_cannot_get_another_local_domains_signature():
    """Both domains are ours and both have keys; jane owns addresses in example.org only,
    so a From in example.net goes out unsigned (a client of a trusted relay network, with
    no account, is signed for any domain)."""
    async def go():
        store = Store.memory()
        for domain in ("example.org", "example.net"):
            await store.create_domain(domain)
            key = keys.generate("ed25519-sha256")
            await store.dkim_key_put(domain, "e", "ed25519-sha256", keys.private_key_pem(key))
        relay = [("bob", "remote.example", {"relay": "bob@remote.example"})]
        forged = MESSAGE.replace(b"jane@example.org", b"ceo@example.net")
        await _deliver(store, forged, relay)
        assert b"DKIM-Signature" not in store.blobs.get(store.queue_list()[-1]["blob"])
        await _deliver(store, MESSAGE, relay)
        assert b"d=example.org;" in store.blobs.get(store.queue_list()[-1]["blob"])
        await _deliver(store, forged, relay, emails=("jane@example.org", "ceo@EXAMPLE.net"))
        assert b"d=example.net;" in store.blobs.get(store.queue_list()[-1]["blob"])
    run(go())
