"""The POP3 asyncio adapter in-process on 127.0.0.1, over ``Store.memory()``: the
autologout timer (RFC 1939 3: close without a response and without UPDATE) and the
fail2ban line with its delay for failed logins."""

from __future__ import annotations

import asyncio
import logging

from stalwart.protocols.pop3.machine import Pop3Config
from stalwart.protocols.pop3.services import StoreServices
from stalwart.protocols.pop3.session import Pop3Handler
from stalwart.store.api import Store


async def _setup() -> tuple[Store, int, int]:
    store = Store.memory()
    await store.create_domain("example.org")
    acc = (await store.create_account("alice", password="alice pw",
                                      emails=["alice@example.org"]))["id"]
    inbox = store.find_mailbox(acc, "INBOX")["id"]
    await store.append(acc, inbox, b"Subject: x\r\n\r\nbody\r\n")
    return store, acc, inbox


async def _serve(handler: Pop3Handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _login(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await reader.readline()).startswith(b"+OK")
    writer.write(b"USER alice\r\nPASS alice pw\r\n")
    assert (await reader.readline()).startswith(b"+OK")
    assert (await reader.readline()).startswith(b"+OK Maildrop has 1 message")
    return reader, writer


def test_autologout_closes_silently_without_update():
    async def main() -> None:
        store, acc, inbox = await _setup()
        handler = Pop3Handler(Pop3Config(), StoreServices(store), idle_timeout=0.3)
        server, port = await _serve(handler)
        reader, writer = await _login(port)
        writer.write(b"DELE 1\r\n")
        assert (await reader.readline()).startswith(b"+OK")
        assert await asyncio.wait_for(reader.read(), 5) == b""     # closed, no reply
        assert len(store.mailbox_uids(acc, inbox)) == 1
        writer.close()
        server.close()
        await handler.wait_closed(1)

    asyncio.run(main())


def test_failed_login_is_logged_for_fail2ban_and_delayed(caplog):
    async def main() -> float:
        store, _, _ = await _setup()
        handler = Pop3Handler(Pop3Config(), StoreServices(store), auth_delay=0.2)
        server, port = await _serve(handler)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(b"USER alice\r\nPASS wrong\r\n")
        await reader.readline()
        assert (await reader.readline()).startswith(b"-ERR [AUTH]")
        elapsed = loop.time() - started
        writer.write(b"QUIT\r\n")
        assert (await reader.readline()).startswith(b"+OK")
        writer.close()
        server.close()
        await handler.wait_closed(1)
        return elapsed

    with caplog.at_level(logging.WARNING):
        elapsed = asyncio.run(main())
    assert elapsed >= 0.2
    lines = [r.getMessage() for r in caplog.records]
    assert any(line == ('auth failed: protocol=pop3 remote_ip=127.0.0.1 login="alice" '
                       'reason="invalid credentials"')
               for line in lines), lines
