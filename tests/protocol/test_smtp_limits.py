"""SMTP limits: the sans-IO refusal, session limits from the settings, and the asyncio
adapter with per-client limits over a shared table (connection count and rate, message
rates, failed-AUTH delay and ban, idle and total timeouts), driven by real sockets on
127.0.0.1 (ports 22000-22099) with Store.memory()."""

from __future__ import annotations

import asyncio
import base64
import logging
import time

import pytest

from stalwart.config import ConfigError, load
from stalwart.limits import (AuthPenalty, ClientLimits, LimitTable, Rate, Refusal,
                             parse_networks)
from stalwart.protocols.smtp.delivery import LocalDelivery
from stalwart.protocols.smtp.machine import SmtpConfig, SmtpMachine
from stalwart.protocols.smtp.policy import StoreAuthenticator, StorePolicy
from stalwart.protocols.smtp.server import (SmtpSettings, client_limits, listener_config)
from stalwart.protocols.smtp.session import SmtpHandler, refusal_reply
from stalwart.protocols.smtp.testing import Transcript
from stalwart.protocols.smtp.events import CLOSE
from stalwart.store.api import Store

PORTS = iter(range(22000, 22100))


# ====================================================================== sans-IO
def test_refused_connection_gets_only_the_refusal_and_closes():
    reply = refusal_reply(Refusal("connections", "192.0.2.1"), "mx.test", "192.0.2.1")
    m = SmtpMachine(SmtpConfig(hostname="mx.test"), refuse=reply)
    assert m.next_event() is CLOSE
    assert m.data_to_send() == (b"421 4.7.0 mx.test Error: too many connections from "
                                b"192.0.2.1\r\n")
    m.receive_data(b"EHLO x\r\n")                      # nothing is read any more
    assert m.next_event() is CLOSE and m.data_to_send() == b""


@pytest.mark.parametrize("reason, code, status", [
    ("banned", 421, "4.7.0"), ("connections", 421, "4.7.0"), ("connection-rate", 421, "4.7.0"),
    ("message-rate", 451, "4.7.1"), ("account-message-rate", 451, "4.7.1"),
])
def test_refusal_replies_follow_rfc_3463(reason, code, status):
    r = refusal_reply(Refusal(reason, "ip", 3.2), "mx", "ip")
    assert (r.code, r.status) == (code, status) and r.is_transient


def test_shutdown_after_close_adds_no_second_reply():
    t = Transcript(SmtpConfig(hostname="mx.test"))
    t.cmd("QUIT", "221")
    t.m.shutdown()
    assert t.m.data_to_send() == b""


def _config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(f'[storage]\ndirectory = "{tmp_path}/var"\n' + text)
    return load(path)


def test_session_settings_reach_the_machine(tmp_path):
    config = _config(tmp_path, """
[smtp.session]
max-recipients = 2
max-messages = 1
max-errors = 4
max-line-length = 1000
max-message-size = "1kb"
idle-timeout = "2s"
max-duration = "3s"
""")
    settings = SmtpSettings.from_config(config)
    assert (settings.idle_timeout, settings.max_duration) == (2.0, 3.0)
    listener = type("L", (), {"protocol": "smtp", "tls_implicit": False, "id": "smtp"})()
    cfg = listener_config(listener, "mx.test", settings)
    assert (cfg.max_recipients, cfg.max_messages, cfg.max_errors, cfg.max_line_length,
            cfg.max_message_size) == (2, 1, 4, 1000, 1024)
    t = Transcript(cfg)
    t.cmd("EHLO c", "250")
    t.cmd("NOOP " + "x" * 900, "250")                  # 907 octets: within 1000
    t.cmd("NOOP " + "x" * 1000, "500 5.5.2")
    t.cmd("MAIL FROM:<a@b.example> SIZE=2048", "552 5.3.4")
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<1@x.example>", "250")
    t.cmd("RCPT TO:<2@x.example>", "250")
    t.cmd("RCPT TO:<3@x.example>", "452 4.5.3")
    t.data("Subject: s\r\n\r\nbody\r\n", "250")
    t.cmd("MAIL FROM:<a@b.example>", "421 4.7.0")     # max-messages = 1
    assert t.closed


def test_default_line_length_is_rfc_5321s(tmp_path):
    cfg = listener_config(type("L", (), {"protocol": "smtp", "tls_implicit": False,
                                         "id": "smtp"})(), "mx", SmtpSettings())
    t = Transcript(cfg)
    t.cmd("EHLO c", "250")
    t.cmd("NOOP " + "x" * 505, "250")                  # 512 with CRLF
    t.cmd("NOOP " + "x" * 506, "500 5.5.2")
    # MAIL gets the allowances of the extensions we announce.
    t.cmd("MAIL FROM:<" + "a" * 60 + "@example.com> ENVID=" + "e" * 100 + " RET=HDRS", "250")


def test_max_errors_setting_closes_the_session(tmp_path):
    settings = SmtpSettings.from_config(_config(tmp_path, "[smtp.session]\nmax-errors = 2\n"))
    cfg = listener_config(type("L", (), {"protocol": "smtp", "tls_implicit": False,
                                         "id": "smtp"})(), "mx", settings)
    t = Transcript(cfg)
    t.cmd("BOGUS", "500")
    assert not t.closed
    t.cmd("BOGUS", "500", "421 4.7.0")
    assert t.closed


@pytest.mark.parametrize("text, error", [
    ('[smtp.limits]\nconnection-rate = "many"\n', "rate"),
    ('[smtp.limits]\nexempt = ["10.0.0.0/33"]\n', "10.0.0.0/33"),
    ('[smtp.session]\nmax-line-length = 100\n', "512"),
    ('[smtp.auth-penalty]\nban-time = "soon"\n', "duration"),
])
def test_bad_limit_settings_are_config_errors(tmp_path, text, error):
    with pytest.raises(ConfigError, match=error):
        _config(tmp_path, text)


def test_limit_settings_defaults(tmp_path):
    config = _config(tmp_path, "")
    limits = client_limits(config, LimitTable(None, 64))
    assert limits.is_exempt("127.0.0.1") and limits.is_exempt("::1")
    assert not limits.is_exempt("192.0.2.1")
    assert limits.concurrency == 50 and str(limits.connection_rate) == "60/1m"
    assert str(limits.message_rate) == "300/1m" and str(limits.account_message_rate) == "500/1h"
    assert limits.auth == AuthPenalty(3, 1.0, 15.0, 10, 600.0, 1800.0)
    assert SmtpSettings.from_config(config).dedup_window == 5 * 86400


# ====================================================================== adapter
class Client:
    """A minimal line-level SMTP client over asyncio streams."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def reply(self, timeout=10.0) -> str:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                return "\n".join(lines) if lines else ""
            lines.append(line.decode().rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    async def cmd(self, line: str, timeout=10.0) -> str:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply(timeout)

    async def closed(self, timeout=5.0) -> bool:
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    def close(self):
        self.writer.close()


async def _setup_store():
    store = Store.memory()
    await store.create_domain("example.com")
    await store.create_domain("alias.example", alias_of="example.com")
    jane = await store.create_account("jane", password="jane-pw",
                                      emails=["jane@example.com", "j.doe@example.com"])
    return store, jane["id"]


def _limits(table, **kw):
    args = dict(exempt=(), concurrency=0, connection_rate=Rate(0, 0), message_rate=Rate(0, 0),
                account_message_rate=Rate(0, 0),
                auth=AuthPenalty(delay_after=100, delay=0.0, max_delay=0.0, ban_after=0,
                                 window=600.0, ban_time=0.0))
    args.update(kw)
    return ClientLimits(table, **args)


async def _serve(store, limits, config=None, **kw):
    port = next(PORTS)
    config = config or SmtpConfig(hostname="mx.test", starttls=False, auth_without_tls=True)
    handler = SmtpHandler(config, policy=StorePolicy(store),
                          authenticator=StoreAuthenticator(store),
                          delivery=kw.pop("delivery", None) or LocalDelivery(store, "mx.test"),
                          limits=limits, auth_delay=0.0, **kw)
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    return server, handler, port


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_concurrent_connections_per_ip(tmp_path):
    async def main():
        store, _ = await _setup_store()
        table = LimitTable(tmp_path / "t", 1024)
        server, handler, port = await _serve(store, _limits(table, concurrency=2))
        a, b = await Client.connect(port), await Client.connect(port)
        assert (await a.reply()).startswith("220") and (await b.reply()).startswith("220")
        c = await Client.connect(port)
        assert await c.reply() == ("421 4.7.0 mx.test Error: too many connections from "
                                   "127.0.0.1")
        assert await c.closed()
        assert table.connections("smtp\x00127.0.0.1") == 2
        assert (await a.cmd("QUIT")).startswith("221")
        await a.closed()
        for _ in range(50):                            # the handler's finally has run
            if table.connections("smtp\x00127.0.0.1") == 1:
                break
            await asyncio.sleep(0.02)
        d = await Client.connect(port)
        assert (await d.reply()).startswith("220")
        for x in (b, d):
            x.close()
        server.close()
    run(main())


def test_connection_rate_per_ip(tmp_path):
    async def main():
        store, _ = await _setup_store()
        table = LimitTable(tmp_path / "t", 1024)
        server, _, port = await _serve(store, _limits(table, connection_rate=Rate(3, 60.0)))
        for _ in range(3):
            c = await Client.connect(port)
            assert (await c.reply()).startswith("220 ")
            await c.cmd("QUIT")
            c.close()
        c = await Client.connect(port)
        reply = await c.reply()
        assert reply.startswith("421 4.7.0 mx.test Error: too many connections from "
                                "127.0.0.1, try again in ")
        assert await c.closed()
        server.close()
    run(main())


def test_loopback_exempt_by_default_settings(tmp_path):
    async def main():
        store, _ = await _setup_store()
        config = _config(tmp_path, '[smtp.limits]\nconnection-rate = "1/1h"\nconcurrency = 1\n')
        limits = client_limits(config, LimitTable(tmp_path / "t", 1024))
        server, _, port = await _serve(store, limits)
        clients = [await Client.connect(port) for _ in range(4)]
        for c in clients:
            assert (await c.reply()).startswith("220 ")
            c.close()
        server.close()
    run(main())


async def _send(c, sender, rcpts, body=b"Subject: t\r\nMessage-ID: <m1@x>\r\n\r\nhello\r\n"):
    r = await c.cmd(f"MAIL FROM:<{sender}>")
    if not r.startswith("250"):
        return r
    for rcpt in rcpts:
        r = await c.cmd(f"RCPT TO:<{rcpt}>")
        assert r.startswith("250"), r
    assert (await c.cmd("DATA")).startswith("354")
    c.writer.write(body + b".\r\n")
    return await c.reply()


def test_message_rate_per_ip(tmp_path):
    async def main():
        store, jane = await _setup_store()
        table = LimitTable(tmp_path / "t", 1024)
        server, _, port = await _serve(store, _limits(table, message_rate=Rate(2, 3600.0)))
        c = await Client.connect(port)
        await c.reply()
        await c.cmd("EHLO client.test")
        assert (await _send(c, "a@remote.test", ["jane@example.com"])).startswith("250 2.0.0")
        assert (await _send(c, "a@remote.test", ["jane@example.com"])).startswith("250 2.0.0")
        assert await _send(c, "a@remote.test", ["jane@example.com"]) == (
            "451 4.7.1 Error: too much mail from 127.0.0.1, try again later")
        assert (await c.cmd("NOOP")).startswith("250")  # the session goes on
        # Another connection (another worker would share the table the same way).
        d = await Client.connect(port)
        await d.reply()
        await d.cmd("EHLO client.test")
        assert (await _send(d, "a@remote.test", ["jane@example.com"])).startswith("451 4.7.1")
        c.close()
        d.close()
        server.close()
    run(main())


def _plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_account_message_rate_applies_even_from_exempt_addresses(tmp_path):
    async def main():
        store, jane = await _setup_store()
        table = LimitTable(tmp_path / "t", 1024)
        limits = _limits(table, exempt=parse_networks(["127.0.0.0/8"]),
                         message_rate=Rate(1, 3600.0), account_message_rate=Rate(2, 3600.0))
        config = SmtpConfig(hostname="mx.test", starttls=False, auth_without_tls=True,
                            submission=True)
        server, _, port = await _serve(store, limits, config)
        c = await Client.connect(port)
        await c.reply()
        await c.cmd("EHLO client.test")
        assert (await c.cmd("AUTH PLAIN " + _plain("jane", "jane-pw"))).startswith("235")
        for _ in range(2):
            assert (await _send(c, "jane@example.com", ["jane@example.com"])).startswith("250")
        assert await _send(c, "jane@example.com", ["jane@example.com"]) == (
            "451 4.7.1 Error: too much mail from this account, try again later")
        c.close()
        server.close()
    run(main())


def test_failed_auth_delay_grows_then_ban(tmp_path, caplog, monkeypatch):
    import stalwart.protocols.smtp.session as session_module

    slept = []
    real_sleep = asyncio.sleep

    async def sleep(delay, *args):
        slept.append(delay)
        return await real_sleep(delay, *args)
    monkeypatch.setattr(session_module.asyncio, "sleep", sleep)

    async def main():
        store, _ = await _setup_store()
        table = LimitTable(tmp_path / "t", 1024)
        limits = _limits(table, auth=AuthPenalty(delay_after=2, delay=0.2, max_delay=0.4,
                                                 ban_after=4, window=600.0, ban_time=60.0))
        config = SmtpConfig(hostname="mx.test", starttls=False, auth_without_tls=True,
                            max_auth_failures=10)
        server, _, port = await _serve(store, limits, config)
        c = await Client.connect(port)
        await c.reply()
        await c.cmd("EHLO client.test")
        times = []
        for i in range(3):
            t0 = time.monotonic()
            assert (await c.cmd("AUTH PLAIN " + _plain("jane", f"bad{i}"))).startswith("535")
            times.append(time.monotonic() - t0)
        # No delay for the first failure, then 0.2 s doubling (lower bounds only: a busy
        # machine makes answers slower, never faster).
        assert slept == [0.2, 0.4]
        assert times[1] >= 0.2 and times[2] >= 0.4
        # The fourth failure bans: 535, then 421, and the connection is closed.
        assert (await c.cmd("AUTH PLAIN " + _plain("jane", "bad3"))).startswith("535")
        assert (await c.reply()) == ("421 4.7.0 mx.test Error: too many failed logins from "
                                     "127.0.0.1, try again later")
        assert await c.closed()
        # New connections are refused while the ban lasts, even with the right password.
        d = await Client.connect(port)
        assert (await d.reply()).startswith("421 4.7.0 mx.test Error: too many failed logins")
        assert await d.closed()
        assert slept == [0.2, 0.4, 0.4]               # capped at max-delay
        server.close()
    with caplog.at_level(logging.WARNING):
        run(main())
    failures = [r.getMessage() for r in caplog.records if r.name == "stalwart.auth"]
    assert len(failures) == 4                          # one fail2ban line per failure
    assert all("auth failed: protocol=smtp remote_ip=127.0.0.1" in f for f in failures)


def test_connection_banned_meanwhile_gets_no_more_guesses(tmp_path):
    async def main():
        store, _ = await _setup_store()
        table = LimitTable(tmp_path / "t", 1024)
        limits = _limits(table, auth=AuthPenalty(delay_after=100, delay=0.0, max_delay=0.0,
                                                 ban_after=2, window=600.0, ban_time=60.0))
        server, _, port = await _serve(store, limits)
        idle = await Client.connect(port)              # opened before the ban
        await idle.reply()
        await idle.cmd("EHLO client.test")
        c = await Client.connect(port)
        await c.reply()
        await c.cmd("EHLO client.test")
        await c.cmd("AUTH PLAIN " + _plain("jane", "bad"))
        await c.cmd("AUTH PLAIN " + _plain("jane", "bad"))   # banned now
        assert table.banned("127.0.0.1") > 0
        # The right password on the older connection is not even checked.
        assert (await idle.cmd("AUTH PLAIN " + _plain("jane", "jane-pw"))).startswith("454 4.7.0")
        assert (await idle.reply()).startswith("421 4.7.0")
        assert await idle.closed()
        server.close()
    run(main())


def test_idle_timeout_and_total_duration(tmp_path):
    async def main():
        store, _ = await _setup_store()
        server, _, port = await _serve(store, None, idle_timeout=0.3, max_duration=60.0)
        c = await Client.connect(port)
        await c.reply()
        assert await c.reply(timeout=10) == "421 4.4.2 Idle timeout, closing connection"
        assert await c.closed()
        server2, _, port2 = await _serve(store, None, idle_timeout=10.0, max_duration=1.0)
        d = await Client.connect(port2)
        await d.reply()
        t0 = time.monotonic()
        reply = ""
        while not reply.startswith("421"):
            await asyncio.sleep(0.2)                   # busy, never idle for 0.3 s
            reply = await d.cmd("NOOP")
        assert reply == "421 4.4.2 Session too long, closing connection"
        assert time.monotonic() - t0 > 0.9
        server.close()
        server2.close()
    run(main())


def test_unopenable_table_degrades_to_per_worker_counters(tmp_path, caplog):
    from stalwart.protocols.smtp.server import open_table

    config = _config(tmp_path, "[smtp.limits]\ntable-slots = 1024\n")
    (config.run_dir / "limits-1024.table").mkdir(parents=True)   # cannot be opened
    with caplog.at_level(logging.ERROR, logger="stalwart.limits"):
        table = open_table(config)
    assert table.path is None and "cannot open the shared limit table" in caplog.text
    assert table.hit("c", "k", Rate(1, 60.0)) == 0.0 and table.hit("c", "k", Rate(1, 60.0)) > 0
    shared = tmp_path / "ok"
    shared.mkdir()
    config = _config(shared, "[smtp.limits]\ntable-slots = 1024\n")
    assert open_table(config).path == config.run_dir / "limits-1024.table"
