"""Never an open relay: address tricks against the default StorePolicy over a memory store.

Without AUTH, every trick is refused (550 5.7.1 relay denied, 550 5.1.1 unknown user, or
501/553 syntax); only addresses that are truly local are accepted, and they land on the
account the directory names. Runs each RCPT through the whole machine."""

from __future__ import annotations

import asyncio

import pytest

from stalwart.protocols.smtp.events import Session
from stalwart.protocols.smtp.machine import SmtpConfig
from stalwart.protocols.smtp.testing import Transcript
from stalwart.store.api import Store


@pytest.fixture(scope="module")
def env():
    loop = asyncio.new_event_loop()
    store = Store.memory()

    async def setup():
        await store.create_domain("example.com")
        await store.create_domain("example.org", alias_of="example.com")
        await store.create_domain("catchall.test")
        await store.create_domain("xn--bcher-kva.example")          # bücher.example
        jane = await store.create_account("jane", password="jane-pw",
                                          emails=["jane@example.com", "postmaster@example.com"])
        bob = await store.create_account("bob", emails=["bob@catchall.test", "bob@bücher.example"])
        await store.set_catch_all("catchall.test", "bob")
        return jane["id"], bob["id"]

    jane, bob = loop.run_until_complete(setup())
    yield loop, store, jane, bob
    loop.close()


def _rcpt(env, address: str, *, authenticated=False, remote_ip="203.0.113.9") -> str:
    loop, store, jane, _ = env
    t = Transcript(SmtpConfig(hostname="mx.example.com"), store=store, loop=loop,
                   session=Session(remote_ip=remote_ip))
    t.cmd("EHLO client.example", "250")
    if authenticated:
        t.m.session.identity = store.get_account("jane")
    t.cmd("MAIL FROM:<jane@example.com>" if authenticated else "MAIL FROM:<x@remote.example>", "250")
    replies = t.send(f"RCPT TO:{address}\r\n")
    assert len(replies) == 1
    if replies[0].startswith("250"):
        return "250 " + str(t.m.envelope.recipients[-1].target)
    return replies[0]


# (address as sent, expected reply prefix without AUTH). Local deliveries also name the
# account: "ok:jane" means accepted for jane's account.
TRICKS = [
    ("<user@remote.example>", "550 5.7.1"),                         # plain relay
    ("<jane%remote.example@example.com>", "550 5.1.1"),            # percent hack
    ("<remote.example!jane@example.com>", "550 5.1.1"),            # bang path
    ('<"jane@remote.example"@example.com>', "550 5.1.1"),          # quoted @
    ('<"jane%remote.example"@example.com>', "550 5.1.1"),          # quoted %
    ('<"remote.example!jane"@example.com>', "550 5.1.1"),          # quoted !
    ('<"jane@remote.example">', "501 5.1.3"),                      # quoted @, no domain
    ("<@example.com:user@remote.example>", "550 5.7.1"),           # source route via us
    ("<@example.com,@example.org:user@remote.example>", "550 5.7.1"),
    ("<user@remote.example@example.com>", "501 5.1.3"),            # double @
    ("<user@example.com.>", "501 5.1.3"),                          # trailing dot
    ("<user@remote.example.>", "501 5.1.3"),
    ("<jane@[127.0.0.1]>", "550 5.7.1"),                           # our own IP literal
    ("<jane@[203.0.113.1]>", "550 5.7.1"),                         # an IP literal
    ("<jane@[IPv6:::1]>", "550 5.7.1"),
    ("<jane@[tag:example.com]>", "550 5.7.1"),                     # general literal
    ("<jane@exаmple.com>", "553 5.6.7"),                           # Cyrillic а, no SMTPUTF8
    ("<jane@ｅxample.com>", "553 5.6.7"),                          # full-width, no SMTPUTF8
    ("<jane@example.com.remote.example>", "550 5.7.1"),            # suffix trick
    ("<jane@remote-example.com>", "550 5.7.1"),
    ("<jane@sub.example.com>", "550 5.7.1"),                       # subdomain is not local
    ("<nobody@example.com>", "550 5.1.1"),                         # unknown local user
    ("<jane%remote.example@catchall.test>", "550 5.1.1"),          # percent hack vs catch-all
    ("<remote!x@catchall.test>", "550 5.1.1"),                     # bang path vs catch-all
    ('<"x@remote.example"@catchall.test>', "550 5.1.1"),           # quoted @ vs catch-all
    ("<jane@example.com\x00.remote.example>", "500 5.5.2"),        # NUL
    ("<jane@exa mple.com>", "501 5.1.3"),
    ("<jane@remote.example> NOTIFY=NEVER", "550 5.7.1"),
    ("jane@remote.example", "501 5.1.3"),                          # no brackets
    ("<jane@[127.0.0.1]:user@remote.example>", "501 5.1.3"),
    ("<user@localhost>", "550 5.7.1"),                             # single label is not local
    ("<postmaster@remote.example>", "550 5.7.1"),
    ("<\"\"@example.com>", "501 5.1.3"),                           # empty quoted local part
    ("<jane+tag%remote.example@example.com>", "550 5.1.1"),        # sub-address + percent
    ("<jane@xn--exmple-4nf.com>", "550 5.7.1"),                    # A-label look-alike
    # truly local, accepted on the right account
    ("<jane@example.com>", "ok:jane"),
    ("<JANE@EXAMPLE.COM>", "ok:jane"),                             # case-insensitive
    ("<jane+news@example.com>", "ok:jane"),                        # sub-addressing
    ("<jane@example.org>", "ok:jane"),                             # alias domain
    ('<"jane"@example.com>', "ok:jane"),                           # needless quotes
    ("<@relay.example:jane@example.com>", "ok:jane"),              # source route ignored
    ("<Postmaster>", "ok:jane"),                                   # RFC 5321 4.1.1.3
    ("<anything@catchall.test>", "ok:bob"),                        # catch-all
    ("<bob@xn--bcher-kva.example>", "ok:bob"),                     # IDNA A-label
]


@pytest.mark.parametrize("address,expected", TRICKS)
def test_unauthenticated_relay_battery(env, address, expected):
    _, _, jane, bob = env
    got = _rcpt(env, address)
    if expected.startswith("ok:"):
        account = {"jane": jane, "bob": bob}[expected[3:]]
        assert got.startswith("250 ") and f"'account': {account}" in got, got
    else:
        assert got.startswith(expected), got


def test_battery_is_big_enough():
    assert sum(1 for _, e in TRICKS if not e.startswith("ok:")) >= 30


def test_utf8_local_domain_with_smtputf8(env):
    loop, store, _, bob = env
    t = Transcript(store=store, loop=loop)
    t.cmd("EHLO c.example", "250")
    t.cmd("MAIL FROM:<x@remote.example> SMTPUTF8", "250")
    t.cmd("RCPT TO:<bob@bücher.example>", "250 2.1.5")
    assert t.m.envelope.recipients[0].target["account"] == bob
    t.cmd("RCPT TO:<jane@exаmple.com>", "550 5.7.1")          # Cyrillic look-alike: not ours
    t.cmd("RCPT TO:<jane@ｅxample.com>", "501 5.1.3")          # full-width: refused outright


def test_authenticated_client_may_relay_only_with_a_queue(env):
    loop, store, _, _ = env
    from stalwart.protocols.smtp.policy import StorePolicy

    # Without a queue to hand remote mail to, even an authenticated client gets 451.
    t = Transcript(store=store, loop=loop, policy=StorePolicy(store, relay_enabled=False))
    t.cmd("EHLO c.example", "250")
    t.m.session.identity = store.get_account("jane")
    t.cmd("MAIL FROM:<jane@example.com>", "250")
    t.cmd("RCPT TO:<user@remote.example>", "451 4.3.2")

    t = Transcript(store=store, loop=loop, policy=StorePolicy(store, relay_enabled=True))
    t.cmd("EHLO c.example", "250")
    t.m.session.identity = store.get_account("jane")
    t.cmd("MAIL FROM:<jane@example.com>", "250")
    t.cmd("RCPT TO:<user@remote.example>", "250 2.1.5")
    assert t.m.envelope.recipients[0].target == {"relay": "user@remote.example"}


def test_relay_networks_and_lmtp(env):
    loop, store, _, _ = env
    from stalwart.protocols.smtp.policy import StorePolicy

    policy = StorePolicy(store, relay_networks=["192.0.2.0/24"], relay_enabled=True)
    for ip, reply in (("192.0.2.7", "250"), ("198.51.100.1", "550 5.7.1")):
        t = Transcript(store=store, loop=loop, policy=policy, session=Session(remote_ip=ip))
        t.cmd("EHLO c.example", "250")
        t.cmd("MAIL FROM:<a@remote.example>", "250")
        t.cmd("RCPT TO:<user@remote.example>", reply)
    t = Transcript(SmtpConfig(lmtp=True), store=store, loop=loop, policy=policy,
                   session=Session(remote_ip="192.0.2.7"))
    t.cmd("LHLO c.example", "250")
    t.cmd("MAIL FROM:<a@remote.example>", "250")
    t.cmd("RCPT TO:<user@remote.example>", "550 5.1.1")         # LMTP never relays
    t.cmd("RCPT TO:<jane@example.com>", "250")


@pytest.mark.parametrize("sender,reply", [
    ("<jane@example.com>", "250 2.1.0"),
    ("<JANE@example.com>", "250 2.1.0"),
    ("<jane+list@example.com>", "250 2.1.0"),
    ("<jane@example.org>", "250 2.1.0"),                        # alias domain
    ("<postmaster@example.com>", "250 2.1.0"),
    ("<bob@catchall.test>", "553 5.7.1"),                       # someone else's
    ("<anything@catchall.test>", "553 5.7.1"),                  # catch-all is not ownership
    ("<jane%bob@example.com>", "553 5.7.1"),
    ("<jane@[127.0.0.1]>", "553 5.7.1"),
    ("<>", "553 5.7.1"),
])
def test_submission_sender_must_belong_to_account(env, sender, reply):
    loop, store, _, _ = env
    t = Transcript(SmtpConfig(submission=True), store=store, loop=loop)
    t.cmd("EHLO c.example", "250")
    t.cmd(f"MAIL FROM:{sender}", "530 5.7.0")                   # AUTH first
    t.m.session.identity = store.get_account("jane")
    t.cmd(f"MAIL FROM:{sender}", reply)
