"""The IMAP failed-login policy in the sans-IO session (commands/login.py), with the delay's
``sleep`` recorded instead of waited: the exact delays, the ban on the failure that
reaches ``ban_after``, the refusal of a banned address on a session opened before the
ban, AUTHENTICATE counted like LOGIN, other addresses and exempt ones untouched. The
daemon-level behaviour (processes, protocols, greetings) is in test_imap_pop3_bans.py.
"""

from __future__ import annotations

import asyncio
import base64

from stalwart.limits import AuthPenalty, ClientLimits, LimitTable, parse_networks
from stalwart.protocols.imap.testing import Client
from stalwart.store import Store

POLICY = AuthPenalty(delay_after=2, delay=1.0, max_delay=3.0, ban_after=5, window=600.0,
                     ban_time=60.0)


def run(coro):
    return asyncio.run(coro)


class Setup:
    def __init__(self, exempt: tuple = ()) -> None:
        self.penalty = ClientLimits(LimitTable(None, 1024), name="imap", exempt=exempt,
                                    auth=POLICY)
        self.sleeps: list[float] = []
        self.store = None

    async def client(self, ip: str = "192.0.2.7") -> Client:
        if self.store is None:
            self.store = Store.memory()
            await self.store.create_domain("example.org")
        c = await Client.create(self.store, login=False, remote_ip=ip, penalty=self.penalty)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
        c.s.sleep = sleep
        return c


def test_delays_grow_then_ban_and_a_banned_session_cannot_try_again():
    async def t():
        env = Setup()
        early = await env.client()              # opened before the ban
        first = await env.client()
        for tag in ("a1", "a2", "a3"):
            await first.cmd(f"{tag} LOGIN alice wrong",
                            f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials",
                            *(["* BYE Too many authentication failures"] if tag == "a3"
                              else []))
        assert env.sleeps == [1.0, 2.0]
        second = await env.client()
        await second.cmd("b1 LOGIN alice wrong",
                         "b1 NO [AUTHENTICATIONFAILED] Invalid credentials")
        assert env.sleeps == [1.0, 2.0, 3.0]
        # The 5th failure, by AUTHENTICATE PLAIN, bans: NO, BYE, closed.
        wrong = base64.b64encode(b"\0alice\0wrong").decode()
        await second.cmd(f"b2 AUTHENTICATE PLAIN {wrong}",
                         "b2 NO [AUTHENTICATIONFAILED] Invalid credentials",
                         "* BYE Too many failed logins from 192.0.2.7, try again later")
        assert second.s.closed
        assert env.sleeps == [1.0, 2.0, 3.0, 3.0]
        assert env.penalty.banned("192.0.2.7") > 0
        # The early session is refused even with the right password, unchecked.
        await early.cmd("e1 LOGIN alice secret", "e1 NO [UNAVAILABLE] Login refused",
                        "* BYE Too many failed logins from 192.0.2.7, try again later")
        assert early.s.closed and early.s.account is None
        # Another address is not concerned.
        other = await env.client("198.51.100.9")
        await other.cmd("o1 LOGIN alice secret", "o1 OK [CAPABILITY *")
    run(t())


def test_exempt_addresses_are_neither_delayed_nor_banned():
    async def t():
        env = Setup(exempt=parse_networks(["192.0.2.0/24"]))
        for _ in range(3):
            c = await env.client()
            for tag in ("a1", "a2"):
                await c.cmd(f"{tag} LOGIN alice wrong",
                            f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
        assert env.sleeps == []
        assert env.penalty.banned("192.0.2.7") == 0
        c = await env.client()
        await c.cmd("a1 LOGIN alice secret", "a1 OK [CAPABILITY *")
    run(t())
