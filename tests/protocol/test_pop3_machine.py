"""The POP3 machine through transcripts (STYLE.md habit 10), every one fed whole, line by
line, byte by byte and at random splits (habit 2), answered by the same ``StoreServices``
that serve real clients, over ``Store.memory()``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import random

import pytest

from stalwart import sasl
from stalwart.protocols.base import NEED_DATA, LocalProtocolError
from stalwart.protocols.pop3 import codes
from stalwart.protocols.pop3.events import (CLOSE, SEND, TEMPFAIL, Authenticate, Expunge,
                                             FetchMessage, OpenMaildrop, Session)
from stalwart.protocols.pop3.machine import (AUTHORIZATION, TRANSACTION, Pop3Config,
                                              Pop3Machine)
from stalwart.protocols.pop3.services import StoreServices
from stalwart.protocols.pop3.testing import Transcript
from stalwart.store.api import Store

SPLITS = ["whole", "lines", "bytes", "random"]

MSG1 = b"From: bob@example.org\r\nSubject: one\r\n\r\nHello\r\n.\r\n..two dots\r\n.x\r\nend\r\n"
MSG2 = b"Subject: two\r\n\r\nsecond message\r\n"
MSG3 = b"Subject: three\r\nX-Long: yes\r\n\r\nl1\r\nl2\r\nl3\r\nl4\r\n"


class Directory:
    """Logins of the store's accounts with their passwords (no argon2: tests stay fast);
    SCRAM credentials derived at 4096 iterations as the store keeps them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.users: dict[str, tuple[str, str]] = {}
        self.down = False

    def add(self, login: str, password: str) -> None:
        creds = sasl.ScramCredentials.from_password(password, iterations=4096)
        self.users[login] = (password, creds.to_string())

    async def verify_password(self, authcid: str, password: str, authzid: str = ""):
        if self.down:
            from stalwart.store.errors import StoreError
            raise StoreError("unavailable", "directory down")
        entry = self.users.get(authcid)
        if entry is None or entry[0] != password or authzid not in ("", authcid):
            return None
        return self.store.get_account(authcid)

    async def scram_credentials(self, authcid: str, authzid: str = ""):
        entry = self.users.get(authcid)
        if entry is None:
            return None
        return entry[1], self.store.get_account(authcid)


class Env:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = Store.memory()
        self.directory = Directory(self.store)
        self.services = StoreServices(self.store, self.directory)
        self.account = self.run(self._setup())
        self.inbox = self.store.find_mailbox(self.account, "INBOX")["id"]

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def _setup(self) -> int:
        await self.store.create_domain("example.org")
        acc = (await self.store.create_account("alice", emails=["alice@example.org"]))["id"]
        inbox = self.store.find_mailbox(acc, "INBOX")["id"]
        for raw in (MSG1, MSG2, MSG3):
            await self.store.append(acc, inbox, raw)
        self.directory.add("alice", "secret pw")
        await self.store.create_account("bob", emails=["bob@example.org"])
        self.directory.add("bob", "bob pw")
        return acc

    def uids(self) -> list[int]:
        return [uid for uid, _ in self.store.mailbox_uids(self.account, self.inbox)]

    def transcript(self, split: str = "whole", *, tls: bool = False, loopback: bool = False,
                   config: Pop3Config | None = None, **kw) -> Transcript:
        session = Session(remote_ip="192.0.2.7", tls=tls, loopback=loopback)
        return Transcript(config=config or Pop3Config(hostname="pop.test"),
                          services=kw.pop("services", self.services), session=session,
                          split=split, loop=self.loop, **kw)

    def login(self, split: str = "whole", count: int = 3, **kw) -> Transcript:
        t = self.transcript(split, tls=True, **kw)
        t.cmd("USER alice", "+OK")
        t.cmd("PASS secret pw", f"+OK Maildrop has {count} messages")
        return t


@pytest.fixture
def env():
    e = Env()
    yield e
    e.loop.close()


def stuffed(raw: bytes) -> str:
    """How a multi-line response shows ``raw`` in a Transcript (lines joined with \\n)."""
    lines = raw.decode().split("\r\n")[:-1]
    return "\n".join("." + ln if ln.startswith(".") else ln for ln in lines)


# ---------------------------------------------------------------------- whole sessions
@pytest.mark.parametrize("split", SPLITS)
def test_full_session_with_stls(env, split):
    t = env.transcript(split)
    assert t.greeting == "+OK pop.test Stalwart POP3 ready"
    capa = t.cmd("CAPA", "+OK")[0].split("\n")
    assert "STLS" in capa and "USER" not in capa and "SASL SCRAM-SHA-256" in capa
    assert {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UTF8 USER"} <= set(capa)
    t.cmd("USER alice", "-ERR [AUTH]")
    t.cmd("STLS", "+OK Begin TLS")
    assert t.m.session.tls
    capa = t.cmd("CAPA", "+OK")[0].split("\n")
    assert "STLS" not in capa and "USER" in capa and "SASL SCRAM-SHA-256 PLAIN LOGIN" in capa
    t.cmd("USER alice", "+OK")
    t.cmd("PASS secret pw", "+OK Maildrop has 3 messages (%d octets)"
          % (len(MSG1) + len(MSG2) + len(MSG3)))
    assert t.m.state == TRANSACTION
    t.cmd("STAT", f"+OK 3 {len(MSG1) + len(MSG2) + len(MSG3)}")
    listing = t.cmd("LIST", "+OK 3 messages")[0].split("\n")
    assert listing[1:] == [f"1 {len(MSG1)}", f"2 {len(MSG2)}", f"3 {len(MSG3)}", "."]
    t.cmd("LIST 2", f"+OK 2 {len(MSG2)}")
    uidl = t.cmd("UIDL", "+OK")[0].split("\n")[1:-1]
    assert [line.split()[0] for line in uidl] == ["1", "2", "3"]
    assert len({line.split()[1] for line in uidl}) == 3
    t.cmd("UIDL 3", "+OK 3 " + uidl[2].split()[1])
    retr = t.cmd("RETR 1", f"+OK {len(MSG1)} octets")[0]
    assert retr == f"+OK {len(MSG1)} octets\n" + stuffed(MSG1) + "\n."
    assert "\n..\n...two dots\n..x\n" in retr
    top = t.cmd("TOP 3 2", "+OK")[0]
    assert top.split("\n")[1:] == ["Subject: three", "X-Long: yes", "", "l1", "l2", "."]
    t.cmd("TOP 3 0", "+OK")
    assert t.last.split("\n")[-2:] == ["", "."]
    t.cmd("DELE 1", "+OK Message 1 deleted")
    t.cmd("RETR 1", "-ERR Message already deleted")
    t.cmd("DELE 1", "-ERR Message already deleted")
    t.cmd("LIST 1", "-ERR")
    t.cmd("STAT", f"+OK 2 {len(MSG2) + len(MSG3)}")
    assert t.cmd("LIST", "+OK 2 messages")[0].split("\n")[1] == f"2 {len(MSG2)}"
    t.cmd("RSET", "+OK Maildrop has 3 messages")
    t.cmd("NOOP", "+OK")
    t.cmd("DELE 2", "+OK")
    t.cmd("DELE 3", "+OK")
    before = env.uids()
    t.cmd("QUIT", "+OK Stalwart POP3 signing off (2 messages deleted)")
    assert t.closed
    assert env.uids() == before[:1]
    expunges = [r for r in t.requests if isinstance(r, Expunge)]
    assert len(expunges) == 1 and expunges[0].uids == before[1:]


@pytest.mark.parametrize("split", SPLITS)
def test_pipelined_session_replies_in_order(env, split):
    t = env.transcript(split, loopback=True)
    script = ("CAPA\r\nUSER alice\r\nPASS secret pw\r\nSTAT\r\nLIST\r\nRETR 2\r\n"
              "TOP 1 0\r\nUIDL 2\r\nDELE 2\r\nSTAT\r\nNOOP\r\nQUIT\r\n")
    responses = t.send(script)
    assert [r.split("\n")[0].split(" ")[0] for r in responses] == ["+OK"] * 12
    assert responses[5] == f"+OK {len(MSG2)} octets\n" + stuffed(MSG2) + "\n."
    assert responses[-1].startswith("+OK Stalwart POP3 signing off (1 message deleted)")
    assert t.closed and len(env.uids()) == 2


@pytest.mark.parametrize("split", SPLITS)
def test_dele_then_dropped_connection_removes_nothing(env, split):
    t = env.login(split)
    t.cmd("DELE 1", "+OK")
    t.cmd("DELE 2", "+OK")
    assert t.eof() == []
    assert t.closed
    assert len(env.uids()) == 3
    assert not any(isinstance(r, Expunge) for r in t.requests)


def test_quit_before_login_and_without_deletions_writes_nothing(env):
    t = env.transcript()
    t.cmd("QUIT", "+OK")
    assert t.closed
    t = env.login()
    t.cmd("QUIT", "+OK Stalwart POP3 signing off")
    assert "deleted" not in t.last
    assert not any(isinstance(r, Expunge) for r in t.requests)


# ---------------------------------------------------------------------- STLS
def test_commands_pipelined_behind_stls_are_discarded(env):
    # Sent in one piece before the handshake: clear text an attacker may have injected.
    t = env.transcript("whole")
    responses = t.send("STLS\r\nUSER alice\r\nPASS secret pw\r\n",
                       commands=["STLS", "USER alice", "PASS secret pw"])
    assert responses == ["+OK Begin TLS negotiation"]
    assert t.m.state == AUTHORIZATION and t.m.user is None and t.m.session.tls
    t._pending.clear()
    t.cmd("STAT", "-ERR Not allowed before authentication")
    t.cmd("USER alice", "+OK")
    t.cmd("PASS secret pw", "+OK Maildrop has 3 messages")


def test_stls_refusals(env):
    t = env.transcript(tls=True)
    t.cmd("STLS", "-ERR TLS already active")
    t = env.transcript(config=Pop3Config(starttls=False))
    t.cmd("STLS", "-ERR TLS not available")
    assert "STLS" not in t.cmd("CAPA", "+OK")[0]
    t = env.transcript()
    t.cmd("STLS now", "-ERR Syntax")
    t = env.login()
    t.cmd("STLS", "-ERR Already authenticated")


def test_failed_handshake_closes(env):
    t = env.transcript(tls_ok=False)
    t.cmd("STLS", "+OK")
    assert t.closed


# ---------------------------------------------------------------------- SASL
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("split", SPLITS)
def test_auth_plain_with_initial_response(env, split):
    t = env.transcript(split, tls=True)
    t.cmd("AUTH PLAIN " + b64(b"\0alice\0secret pw"), "+OK Maildrop has 3 messages")
    assert t.m.session.auth_mechanism == "PLAIN" and t.m.session.authcid == "alice"


@pytest.mark.parametrize("split", SPLITS)
def test_auth_plain_with_challenge_and_login(env, split):
    t = env.transcript(split, tls=True)
    t.cmd("AUTH PLAIN", "+ ")
    t.sasl(b64(b"\0alice\0secret pw"), "+OK Maildrop")
    t = env.transcript(split, tls=True)
    assert base64.b64decode(t.cmd("AUTH LOGIN", "+ ")[0][2:]) == b"Username:"
    t.sasl(b64(b"alice"), "+ ")
    t.sasl(b64(b"secret pw"), "+OK Maildrop")


def test_auth_empty_initial_response_is_equals(env):
    t = env.transcript(tls=True)
    t.cmd("AUTH PLAIN =", "-ERR [AUTH]")


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_auth_scram_sha_256_without_tls(env, split):
    t = env.transcript(split)
    nonce = b64(os.urandom(18))
    first_bare = f"n=alice,r={nonce}"
    server_first = base64.b64decode(
        t.cmd("AUTH SCRAM-SHA-256 " + b64(b"n,," + first_bare.encode()), "+ ")[0][2:])
    attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
    salted = hashlib.pbkdf2_hmac("sha256", b"secret pw", base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = _hmac(salted, b"Client Key")
    without_proof = f"c={b64(b'n,,')},r={attrs['r']}"
    auth_message = f"{first_bare},{server_first.decode()},{without_proof}".encode()
    proof = bytes(a ^ b for a, b in zip(client_key, _hmac(hashlib.sha256(client_key).digest(),
                                                          auth_message)))
    final = base64.b64decode(t.sasl(b64(f"{without_proof},p={b64(proof)}".encode()), "+ ")[0][2:])
    assert final.decode() == "v=" + b64(_hmac(_hmac(salted, b"Server Key"), auth_message))
    t.sasl("", "+OK Maildrop has 3 messages")
    assert t.m.session.auth_mechanism == "SCRAM-SHA-256"


def test_auth_edge_cases(env):
    t = env.transcript(tls=True)
    mechs = t.cmd("AUTH", "+OK")[0].split("\n")
    assert mechs[1:] == ["SCRAM-SHA-256", "PLAIN", "LOGIN", "."]
    t.cmd("AUTH CRAM-MD5", "-ERR Unsupported")
    t.cmd("AUTH PLAIN", "+ ")
    t.sasl("*", "-ERR Authentication cancelled")
    t.cmd("AUTH PLAIN !!!notbase64", "-ERR [AUTH] Invalid base64")
    t.cmd("AUTH PLAIN a b", "-ERR Syntax")
    t.cmd("AUTH PLAIN", "+ ")
    t.sasl("@@@", "-ERR [AUTH] Invalid base64")
    assert not t.closed and t.m.auth_failures == 2       # cancelling is not a failure
    t.cmd("AUTH PLAIN " + b64(b"\0alice\0wrong"), "-ERR [AUTH] Too many")
    assert t.closed


def test_plaintext_mechanisms_need_tls_or_loopback(env):
    t = env.transcript()
    t.cmd("AUTH PLAIN " + b64(b"\0alice\0secret pw"), "-ERR [AUTH] Plain-text")
    t.cmd("PASS x", "-ERR [AUTH] Plain-text")
    t = env.transcript(loopback=True)
    assert "USER" in t.cmd("CAPA", "+OK")[0].split("\n")
    t.cmd("USER alice", "+OK")
    t.cmd("PASS secret pw", "+OK")
    t = env.transcript(config=Pop3Config(allow_plaintext_without_tls=True))
    t.cmd("AUTH PLAIN " + b64(b"\0alice\0secret pw"), "+OK")


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_too_many_failed_logins_disconnect(env, split):
    t = env.transcript(split, tls=True)
    t.cmd("USER alice", "+OK")
    t.cmd("PASS wrong", "-ERR [AUTH] Authentication failed")
    t.cmd("PASS again", "-ERR USER first")
    t.cmd("AUTH PLAIN " + b64(b"\0alice\0nope"), "-ERR [AUTH] Authentication failed")
    t.cmd("USER nobody", "+OK")
    t.cmd("PASS x", "-ERR [AUTH] Too many authentication failures")
    assert t.closed
    failed = [o for o in t.outcomes if not o.success]
    assert [(o.mechanism, o.authcid, o.failures) for o in failed] == [
        ("USER", "alice", 1), ("PLAIN", "alice", 2), ("USER", "nobody", 3)]


def test_directory_unavailable_is_sys_temp_and_not_counted(env):
    env.directory.down = True
    t = env.transcript(tls=True)
    for _ in range(5):
        t.cmd("USER alice", "+OK")
        t.cmd("PASS secret pw", "-ERR [SYS/TEMP]")
    assert not t.closed and t.m.auth_failures == 0


class FlakyServices:
    """StoreServices that fail chosen requests with TEMPFAIL."""

    def __init__(self, inner, fail: set[type]) -> None:
        self.inner, self.fail = inner, fail

    async def answer(self, event):
        if type(event) in self.fail:
            return TEMPFAIL
        return await self.inner.answer(event)


def test_maildrop_unavailable_keeps_authorization_state(env):
    t = env.transcript(tls=True, services=FlakyServices(env.services, {OpenMaildrop}))
    t.cmd("USER alice", "+OK")
    t.cmd("PASS secret pw", "-ERR [SYS/TEMP] Maildrop unavailable")
    assert t.m.state == AUTHORIZATION and not t.m.session.authenticated
    t.cmd("STAT", "-ERR Not allowed before authentication")


def test_expunge_failure_keeps_messages(env):
    t = env.login(services=FlakyServices(env.services, {Expunge}))
    t.cmd("DELE 1", "+OK")
    t.cmd("QUIT", "-ERR [SYS/TEMP] Some deleted messages not removed")
    assert t.closed and len(env.uids()) == 3


def test_message_read_failure_is_sys_temp(env):
    t = env.login(services=FlakyServices(env.services, {FetchMessage}))
    t.cmd("RETR 1", "-ERR [SYS/TEMP]")
    t.cmd("STAT", "+OK 3")


# ---------------------------------------------------------------------- concurrency
def test_messages_expunged_by_another_session(env):
    t = env.login()
    first, second = env.uids()[:2]
    env.run(env.store.expunge(env.account, env.inbox, [first, second]))
    t.cmd("STAT", "+OK 3")                     # the snapshot does not change
    t.cmd("RETR 1", "-ERR Message was removed by another session")
    t.cmd("TOP 2 0", "-ERR Message was removed")
    t.cmd("RETR 3", "+OK")
    t.cmd("DELE 1", "+OK")
    t.cmd("DELE 3", "+OK")
    t.cmd("QUIT", "+OK")
    assert env.uids() == []


def test_uidl_is_stable_across_sessions_and_unique(env):
    t = env.login()
    ids = t.cmd("UIDL", "+OK")[0].split("\n")[1:-1]
    t.cmd("DELE 1", "+OK")
    t.cmd("QUIT", "+OK")
    env.run(env.store.append(env.account, env.inbox, MSG1))   # same bytes, new message
    t = env.login()
    t.cmd("STAT", "+OK 3")
    again = t.cmd("UIDL", "+OK")[0].split("\n")[1:-1]
    assert [i.split()[1] for i in again[:2]] == [i.split()[1] for i in ids[1:]]
    assert again[2].split()[1] not in {i.split()[1] for i in ids}
    for line in again:
        uid = line.split()[1]
        assert 1 <= len(uid) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in uid)
    validity = env.store.get_mailbox(env.account, env.inbox)["uidvalidity"]
    assert again[0].split()[1].startswith(f"{validity}.")


def test_empty_maildrop(env):
    t = env.transcript(tls=True)
    t.cmd("USER bob", "+OK")
    t.cmd("PASS bob pw", "+OK Maildrop has 0 messages (0 octets)")
    assert t.cmd("LIST", "+OK")[0] == "+OK 0 messages (0 octets)\n."
    t.cmd("RETR 1", "-ERR No such message")
    t.cmd("QUIT", "+OK")


# ---------------------------------------------------------------------- streaming, drain
def test_large_message_streams_chunk_by_chunk(env):
    body = b"".join(b".line %06d padding padding padding padding\r\n" % i for i in range(20000))
    raw = b"Subject: big\r\n\r\n" + body
    env.run(env.store.append(env.account, env.inbox, raw))
    t = env.login(count=4)
    m = t.m
    m.receive_data(b"RETR 4\r\n")
    out, sends, biggest = bytearray(), 0, 0
    while True:
        event = m.next_event()
        chunk = m.data_to_send()
        biggest = max(biggest, len(chunk))
        out += chunk
        if event is SEND:
            sends += 1
            continue
        if event is NEED_DATA:
            break
        m.answer(env.run(env.services.answer(event)))
    assert sends >= len(raw) // (64 * 1024)
    assert biggest < 2 * 64 * 1024 + 1024          # one stuffed chunk at a time
    header, _, content = bytes(out).partition(b"\r\n")
    assert header == b"+OK %d octets" % len(raw)
    assert content == raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def test_shutdown_waits_for_the_command_in_progress(env):
    t = env.login()
    m = t.m
    m.receive_data(b"DELE 2\r\nRETR 1\r\nSTAT\r\n")
    event = m.next_event()
    assert isinstance(event, FetchMessage)
    m.shutdown()
    m.answer(env.run(env.services.answer(event)))
    out = bytearray()
    while (event := m.next_event()) is not CLOSE:
        assert event is SEND
        out += m.data_to_send()
    out += m.data_to_send()
    text = bytes(out).decode()
    assert text.startswith("+OK Message 2 deleted\r\n+OK %d octets\r\n" % len(MSG1))
    assert text.endswith(".\r\n-ERR [SYS/TEMP] Server shutting down\r\n")
    assert "+OK 3" not in text                       # STAT was not run
    assert len(env.uids()) == 3                      # no UPDATE state


def test_shutdown_when_idle_closes_at_once(env):
    t = env.login()
    t.cmd("DELE 1", "+OK")
    t.m.shutdown()
    t._drain()
    assert t.closed
    assert bytes(t.raw) == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    assert len(env.uids()) == 3


def test_answering_twice_or_skipping_an_answer_is_a_local_error(env):
    m = Pop3Machine(Pop3Config(), Session(tls=True))
    m.receive_data(b"USER alice\r\nPASS pw\r\n")
    assert isinstance(m.next_event(), Authenticate)
    with pytest.raises(LocalProtocolError):
        m.next_event()
    m.answer(None)
    with pytest.raises(LocalProtocolError):
        m.answer(None)


# ---------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("line,expected", [
    ("RETR", "-ERR Syntax"), ("RETR 0", "-ERR No such message"),
    ("RETR 4", "-ERR No such message"), ("RETR -1", "-ERR Syntax"),
    ("RETR +1", "-ERR Syntax"), ("RETR 1_0", "-ERR Syntax"),
    ("RETR \u0661", "-ERR Syntax"), ("RETR 99999999999", "-ERR Syntax"),
    ("RETR 1 2", "-ERR Syntax"), ("TOP 1", "-ERR Syntax"), ("TOP 1 x", "-ERR Syntax"),
    ("TOP 1 -1", "-ERR Syntax"), ("LIST 1 2", "-ERR Syntax"), ("UIDL x", "-ERR Syntax"),
    ("DELE", "-ERR Syntax"), ("STAT 1", "-ERR Syntax"), ("NOOP x", "-ERR Syntax"),
    ("APOP alice 0123456789abcdef", "-ERR Unknown command"), ("XYZZY", "-ERR Unknown"),
    ("", "-ERR Unknown"), ("USER alice", "-ERR Already authenticated"),
    ("AUTH PLAIN", "-ERR Already authenticated"), ("list", "+OK 3 messages"),
    ("rEtR 2", "+OK"), ("LIST  2", "+OK 2"),
])
def test_bad_arguments_get_err_and_the_session_goes_on(env, line, expected):
    t = env.login()
    t.cmd(line, expected)
    t.cmd("STAT", "+OK 3")


@pytest.mark.parametrize("split", SPLITS)
def test_bad_bytes_in_command_lines(env, split):
    t = env.transcript(split, tls=True)
    responses = t.send(b"NOOP\0\r\nUSER \xff\xfe\r\nUS\rER x\r\nUSER al\x1bice\r\nCAPA\r\n",
                       commands=["x", "x", "x", "x", "CAPA"])
    assert responses[:4] == [str(codes.BAD_CHARACTERS), str(codes.BAD_UTF8),
                             str(codes.BAD_CHARACTERS), str(codes.BAD_CHARACTERS)]
    assert responses[4].startswith("+OK Capability list follows")


@pytest.mark.parametrize("split", ["whole", "random"])
def test_overlong_lines_are_dropped_in_step(env, split):
    t = env.login(split)
    responses = t.send(b"LIST " + b"1" * 5000 + b"\r\nSTAT\r\nAUTH " + b"A" * 20000 +
                       b"\r\nNOOP\r\n", commands=["x", "STAT", "x", "NOOP"])
    assert responses == ["-ERR Line too long", f"+OK 3 {len(MSG1) + len(MSG2) + len(MSG3)}",
                         "-ERR Line too long", "+OK"]
    assert len(t.m._reader) == 0


def test_overlong_sasl_response_fails_the_exchange(env):
    t = env.transcript(tls=True)
    t.cmd("AUTH PLAIN", "+ ")
    t.sasl("A" * 20000, "-ERR Line too long")
    assert t.m.phase == "COMMAND"
    t.cmd("CAPA", "+OK")


def test_too_many_errors_close(env):
    t = env.transcript(tls=True)
    for _ in range(9):
        t.cmd("BOGUS", "-ERR Unknown command")
    assert t.send("BOGUS\r\nCAPA\r\n", commands=["BOGUS", "x", "CAPA"]) == [
        "-ERR Unknown command", "-ERR Too many errors, closing connection"]
    assert t.closed


def test_http_request_hangs_up(env):
    t = env.transcript()
    t.cmd("GET / HTTP/1.1", "-ERR This is a POP3 server")
    assert t.closed


def test_random_garbage_never_crashes(env):
    rng = random.Random(2449)
    words = ["USER", "PASS", "AUTH", "STLS", "CAPA", "LIST", "RETR", "TOP", "DELE", "UIDL",
             "QUIT", "RSET", "NOOP", "STAT", "UTF8", "PLAIN", "*", "=", "1", "0", "-1"]
    for round_ in range(60):
        t = env.transcript("random", seed=round_, tls=bool(round_ % 2),
                           loopback=bool(round_ % 3 == 0))
        pieces = []
        for _ in range(rng.randint(1, 30)):
            if rng.random() < 0.7:
                pieces.append(" ".join(rng.choice(words) for _ in range(rng.randint(0, 3))))
            else:
                pieces.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
                              .decode("latin-1"))
        data = "\r\n".join(pieces).encode("latin-1") + b"\r\n"
        t.send(data, commands=[])
        t.eof()
        assert t.closed
    assert len(env.uids()) == 3     # never a QUIT after a successful login by accident


# ---------------------------------------------------------------------- UTF8
def test_utf8_mode_and_utf8_user_names(env):
    env.run(env.store.create_account("jos\u00e9", emails=["jose@example.org"]))
    env.directory.add("jos\u00e9", "p\u00e4ss")
    t = env.transcript(tls=True)
    t.cmd("UTF8", "+OK UTF8 enabled")
    assert t.m.session.utf8
    t.cmd("UTF8 now", "-ERR Syntax")
    t.cmd("USER jos\u00e9", "+OK")
    t.cmd("PASS p\u00e4ss", "+OK Maildrop has 0 messages")
    t.cmd("UTF8", "+OK")


def test_real_store_directory_end_to_end():
    """Once through the store's own directory (argon2 and stored SCRAM secrets)."""
    loop = asyncio.new_event_loop()
    try:
        store = Store.memory()

        async def setup():
            await store.create_domain("example.org")
            acc = await store.create_account("carol", password="carol pw",
                                             emails=["carol@example.org"])
            await store.append(acc["id"], store.find_mailbox(acc["id"], "INBOX")["id"], MSG2)

        loop.run_until_complete(setup())
        t = Transcript(store, session=Session(tls=True), loop=loop)
        t.cmd("USER carol@example.org", "+OK")
        t.cmd("PASS carol pw", "+OK Maildrop has 1 message")
        t.cmd("RETR 1", "+OK")
        t.cmd("QUIT", "+OK")
        t = Transcript(store, session=Session(tls=True), loop=loop)
        t.cmd("USER carol", "+OK")
        t.cmd("PASS wrong", "-ERR [AUTH]")
    finally:
        loop.close()
