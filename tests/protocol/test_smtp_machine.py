"""The SMTP/LMTP session machine as transcripts (STYLE.md habits 2 and 10).

Each transcript is fed whole, line by line, byte by byte and at random splits where the
split can matter; policy answers come from a permissive stub unless the test is about
policy (test_smtp_relay.py covers the directory rules)."""

from __future__ import annotations

import base64

import pytest

from stalwart.protocols.smtp import codes
from stalwart.protocols.smtp.events import CLOSE, Session
from stalwart.protocols.smtp.machine import SmtpConfig, SmtpMachine, merge_replies
from stalwart.protocols.smtp.testing import MemoryAuthenticator, Transcript, replies_of
from stalwart.protocols.base import NEED_DATA, LocalProtocolError

SPLITS = ["whole", "lines", "bytes", "random"]
TLS = Session(tls=True)


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def ready(split="whole", config=None, **kw) -> Transcript:
    t = Transcript(config or SmtpConfig(hostname="mx.test"), split=split, **kw)
    t.cmd("EHLO client.example", "250")
    return t


# ---------------------------------------------------------------------- whole sessions
PIPELINED_SESSION = (
    b"EHLO client.example\r\n"
    b"MAIL FROM:<alice@remote.example> SIZE=120 BODY=8BITMIME\r\n"
    b"RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com\r\n"
    b"RCPT TO:<carol@example.com>\r\n"
    b"DATA\r\n"
    b"Subject: caf\xc3\xa9\r\n\r\n..leading dot\r\nline\r\n.\r\n"
    b"MAIL FROM:<>\r\n"
    b"RCPT TO:<bob@example.com>\r\n"
    b"BDAT 9\r\nbody\r\n"
    b"x\r\nBDAT 0 LAST\r\n"
    b"NOOP\r\nRSET\r\nVRFY bob\r\nHELP\r\nQUIT\r\n"
)
PIPELINED_REPLIES = ["250-mx.test Hello client.example", "250 2.1.0", "250 2.1.5", "250 2.1.5",
                     "354", "250 2.0.0", "250 2.1.0", "250 2.1.5", "250 2.0.0 Chunk", "250 2.0.0",
                     "250 2.0.0", "250 2.0.0", "252 2.5.0", "214 2.0.0", "221 2.0.0"]


@pytest.mark.parametrize("split", SPLITS + ["random:1", "random:2", "random:3"])
def test_pipelined_session_any_split(split):
    how, _, seed = split.partition(":")
    t = Transcript(SmtpConfig(hostname="mx.test"), split=how, seed=int(seed or 0))
    assert t.greeting == ["220 mx.test ESMTP ready"]
    t.expect(t.send(PIPELINED_SESSION), PIPELINED_REPLIES)
    assert t.closed
    first, second = t.delivered
    assert first.message == b"Subject: caf\xc3\xa9\r\n\r\n.leading dot\r\nline\r\n"
    assert [str(r.path) for r in first.envelope.recipients] == ["<bob@example.com>", "<carol@example.com>"]
    assert first.envelope.recipients[0].params.notify == ("SUCCESS", "FAILURE")
    assert first.envelope.params.size == 120 and first.envelope.body == "8BITMIME"
    assert second.message == b"body\r\nx\r\n" and second.envelope.chunked
    assert second.envelope.mail_from.is_null


def test_ehlo_advertises_extensions_before_and_after_tls():
    t = Transcript(SmtpConfig(hostname="mx.test"))
    ehlo = t.cmd("EHLO c.example", "250")[0].split("\n")
    assert ehlo == ["250-mx.test Hello c.example", "250-PIPELINING", "250-8BITMIME", "250-SMTPUTF8",
                    "250-SIZE 52428800", "250-CHUNKING", "250-DSN", "250-ENHANCEDSTATUSCODES",
                    "250-STARTTLS", "250 HELP"]
    t.cmd("STARTTLS", "220 2.0.0")
    assert t.m.session.tls
    t.cmd("MAIL FROM:<a@b.example>", "503 5.5.1 Send EHLO first")   # RFC 3207 4.2: state reset
    ehlo = t.cmd("EHLO c.example", "250")[0].split("\n")
    assert "250-STARTTLS" not in ehlo
    assert "250-REQUIRETLS" in ehlo and "250-AUTH SCRAM-SHA-256 PLAIN LOGIN" in ehlo
    t.cmd("STARTTLS", "503 5.5.1")


def test_helo_is_plain_smtp_without_extensions():
    t = Transcript()
    t.cmd("HELO c.example", "250 mx.test Hello c.example")
    t.cmd("MAIL FROM:<a@b.example> SIZE=10", "555 5.5.4")           # no ESMTP params after HELO
    t.cmd("MAIL FROM:<a@b.example>", "250 2.1.0")


@pytest.mark.parametrize("line,reply", [
    ("EHLO", "501 5.5.4"), ("EHLO a b", "501 5.5.4"), ("HELO", "501 5.5.4"),
    ("LHLO c.example", "500 5.5.1"), ("FOO", "500 5.5.1"), ("EXPN list", "502 5.5.1"),
    ("MAIL FROM:<a@b.example>", "503 5.5.1"), ("RCPT TO:<a@b.example>", "503 5.5.1"),
    ("DATA", "503 5.5.1"), ("AUTH PLAIN", "503 5.5.1"), ("STARTTLS", "503 5.5.1"),
    ("RSET", "250 2.0.0"), ("NOOP anything", "250 2.0.0"), ("VRFY", "501 5.5.4"),
])
def test_commands_before_ehlo(line, reply):
    Transcript().cmd(line, reply)


@pytest.mark.parametrize("setup,line,reply", [
    ([], "RCPT TO:<a@b.example>", "503 5.5.1 Need MAIL"),
    ([], "DATA", "503 5.5.1 Need MAIL"),
    (["MAIL FROM:<a@b.example>"], "DATA", "503 5.5.1 Need RCPT"),
    (["MAIL FROM:<a@b.example>"], "MAIL FROM:<a@b.example>", "503 5.5.1 Nested"),
    (["MAIL FROM:<a@b.example>"], "AUTH PLAIN", "503 5.5.1"),
    (["MAIL FROM:<a@b.example>"], "STARTTLS", "503 5.5.1"),
    (["MAIL FROM:<a@b.example>", "RCPT TO:<c@d.example>"], "RSET x", "501 5.5.4"),
    ([], "MAIL FROM<a@b.example>", "501 5.5.4"),
    ([], "MAIL TO:<a@b.example>", "501 5.5.4"),
    ([], "MAIL FROM:a@b.example", "501 5.1.3"),
    ([], "MAIL FROM:<a@b.example> SIZE=999999999999", "552 5.3.4"),
    ([], "MAIL FROM:<a@b.example> REQUIRETLS", "530 5.7.10"),
    ([], "MAIL FROM:<a@b.example> FOO=1", "555 5.5.4"),
    ([], "MAIL FROM:<δ@b.example>", "553 5.6.7"),
    (["MAIL FROM:<a@b.example>"], "RCPT TO:<δ@b.example>", "553 5.6.7"),
    (["MAIL FROM:<a@b.example>"], "RCPT TO:<c@d.example> NOTIFY=NEVER,DELAY", "501 5.5.4"),
    (["MAIL FROM:<a@b.example>"], "RCPT TO <c@d.example>", "501 5.5.4"),
    (["MAIL FROM:<a@b.example>", "RCPT TO:<c@d.example>"], "DATA now", "501 5.5.4"),
    ([], "QUIT now", "501 5.5.4"),
])
def test_sequence_and_syntax_errors(setup, line, reply):
    t = ready()
    for command in setup:
        t.cmd(command, "250")
    t.cmd(line, reply)


def test_utf8_addresses_with_smtputf8():
    t = ready()
    t.cmd("MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8", "250 2.1.0")
    t.cmd("RCPT TO:<ñandú@example.com>", "250 2.1.5")
    t.data("Subject: ¡hola!\r\n\r\nübung\r\n", "250 2.0.0")     # SMTPUTF8 allows 8-bit


def test_duplicate_recipient_is_kept_once():
    t = ready()
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<bob@example.com>", "250 2.1.5")
    t.cmd("RCPT TO:<BOB@EXAMPLE.COM>", "250 2.1.5")
    t.data("x\r\n", "250")
    assert len(t.delivered[0].envelope.recipients) == 1


def test_data_refused_when_all_recipients_failed():
    from stalwart.protocols.smtp.events import Verdict

    class RefuseAll:
        async def check_sender(self, *a):
            return Verdict(codes.SENDER_OK)

        async def check_recipient(self, *a):
            return Verdict(codes.NO_SUCH_USER)

    t = ready(policy=RefuseAll())
    replies = t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n")
    t.expect(replies, ["250", "550 5.1.1", "554 5.5.1"])      # RFC 2920 3.1
    t.cmd("NOOP", "250")


# ---------------------------------------------------------------------- content rules
@pytest.mark.parametrize("split", SPLITS)
def test_eight_bit_without_8bitmime_is_refused(split):
    t = ready(split)
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.data(b"Subject: caf\xc3\xa9\r\n\r\nx\r\n", "554 5.6.0")
    assert not t.delivered
    t.cmd("MAIL FROM:<a@b.example> BODY=8BITMIME", "250")    # the session goes on
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.data(b"Subject: caf\xc3\xa9\r\n\r\nx\r\n", "250 2.0.0")


@pytest.mark.parametrize("content,reply", [
    (b"a\nb\r\n", "550 5.6.0"),             # bare LF (SMTP smuggling)
    (b"a\rb\r\n", "550 5.6.0"),             # bare CR
    (b"a\x00b\r\n", "554 5.6.0"),           # NUL
])
def test_bad_content_is_refused(content, reply):
    t = ready()
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.cmd("DATA", "354")
    t.expect(t.send(content + b".\r\n"), [reply])
    assert not t.delivered


def test_smuggled_message_after_bare_lf_dot_is_not_a_second_message():
    t = ready()
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.cmd("DATA", "354")
    smuggled = (b"one\r\n\n.\nMAIL FROM:<evil@b.example>\r\nRCPT TO:<c@d.example>\r\n"
                b"DATA\r\nforged\r\n.\r\n")
    t.expect(t.send(smuggled), ["550 5.6.0"])       # one message, refused; nothing executed
    assert not t.delivered


def test_message_over_size_limit():
    t = ready(config=SmtpConfig(max_message_size=100))
    t.cmd("MAIL FROM:<a@b.example> SIZE=101", "552 5.3.4")
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.data("x" * 200 + "\r\n", "552 5.3.4")
    assert not t.delivered


def test_client_stops_mid_data():
    t = ready()
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.cmd("DATA", "354")
    assert t.send(b"Subject: half\r\n\r\nsome") == []
    assert t.eof() == [] and t.closed
    assert not t.delivered
    assert t.m.next_event() is CLOSE


# ---------------------------------------------------------------------- BDAT
@pytest.mark.parametrize("split", SPLITS)
def test_bdat_chunks(split):
    t = ready(split)
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    replies = t.send(b"BDAT 5\r\nHelloBDAT 8 LAST\r\n world\r\n")
    t.expect(replies, ["250 2.0.0 Chunk accepted", "250 2.0.0 Message"])
    assert t.delivered[0].message == b"Hello world\r\n"
    t.cmd("DATA", "503 5.5.1 Need MAIL")


def test_bdat_without_transaction_reads_and_discards_the_chunk():
    t = ready()
    # The chunk holds something that looks like a command; it must not be executed.
    t.expect(t.send(b"BDAT 6\r\nQUIT\r\n"), ["503 5.5.1 Need MAIL"])
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.expect(t.send(b"BDAT 6 LAST\r\nQUIT\r\n"), ["503 5.5.1 Need RCPT"])
    assert not t.closed


@pytest.mark.parametrize("line", ["BDAT", "BDAT x", "BDAT 10 FIRST", "BDAT -1", "BDAT 1" + "0" * 20])
def test_bdat_malformed_closes(line):
    t = ready()
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.cmd(line, "501 5.5.4")
    assert t.closed


def test_bdat_over_size_and_data_after_bdat():
    t = ready(config=SmtpConfig(max_message_size=10))
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.expect(t.send(b"BDAT 4\r\nabcd"), ["250 2.0.0"])
    t.cmd("DATA", "503 5.5.1 DATA not allowed after BDAT")
    t.expect(t.send(b"BDAT 20\r\n" + b"x" * 20), ["552 5.3.4"])
    t.expect(t.send(b"BDAT 3 LAST\r\nabc"), ["503 5.5.1"])
    assert not t.delivered


def test_bdat_refuses_8bit_without_8bitmime_and_accepts_it_with():
    t = ready()
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.expect(t.send(b"BDAT 3 LAST\r\n\xc3\xa9\n"), ["550 5.6.0"])   # bare LF wins first
    t.cmd("MAIL FROM:<a@b.example> BODY=8BITMIME", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.expect(t.send(b"BDAT 4 LAST\r\n\xc3\xa9\r\n"), ["250 2.0.0"])


# ---------------------------------------------------------------------- limits
def test_recipient_limit():
    t = ready(config=SmtpConfig(max_recipients=2))
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<r1@d.example>", "250")
    t.cmd("RCPT TO:<r2@d.example>", "250")
    t.cmd("RCPT TO:<r3@d.example>", "452 4.5.3")


def test_message_limit_per_session():
    t = ready(config=SmtpConfig(max_messages=1))
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<c@d.example>", "250")
    t.data("x\r\n", "250")
    t.cmd("MAIL FROM:<a@b.example>", "421 4.7.0")
    assert t.closed


def test_error_limit_closes_with_421():
    t = ready(config=SmtpConfig(max_errors=3))
    t.cmd("FOO", "500 5.5.1")
    t.cmd("BAR", "500 5.5.1")
    t.cmd("BAZ", "500 5.5.1", "421 4.7.0")
    assert t.closed
    assert t.send("NOOP\r\n") == []


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_line_too_long(split):
    t = ready(split)
    t.cmd("NOOP " + "x" * 600, "500 5.5.2 Line too long")
    t.cmd("MAIL FROM:<a@b.example> ENVID=" + "x" * 100 + " AUTH=<> SIZE=1", "250")   # allowance
    t.cmd("RSET", "250")
    t.cmd("MAIL FROM:<a@b.example> X=" + "x" * 1800, "500 5.5.2")
    # Longer than anything the reader keeps: discarded as it arrives, answered at its LF.
    t.cmd("NOOP " + "y" * 20000, "500 5.5.2")
    t.cmd("NOOP", "250")


def test_pipeline_depth_limit():
    t = ready(config=SmtpConfig(max_pipeline=10, max_errors=100))
    replies = t.send(b"NOOP\r\n" * 11)
    assert replies[:10] == ["250 2.0.0 OK"] * 10
    assert replies[10].startswith("421 4.7.0") and t.closed
    # A client that reads replies between flights is never cut off.
    t = ready(config=SmtpConfig(max_pipeline=10))
    for _ in range(5):
        t.expect(t.send(b"NOOP\r\n" * 10), ["250"] * 10)


# ---------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("raw,reply", [
    (b"NOOP\x00\r\n", "500 5.5.2 NUL"),
    (b"NO\x00OP\r\n", "500 5.5.2 NUL"),
    (b"NOOP\n", "500 5.5.2 Bare LF"),
    (b"NOOP\rRSET\r\n", "500 5.5.2 Bare CR"),
    (b"MAIL FROM:<\xff@b.example>\r\n", "500 5.5.2"),
    (b"\r\n", "500 5.5.1"),
    (b"\xc3\xa9\r\n", "500 5.5.1"),
])
def test_hostile_command_lines(raw, reply):
    t = ready()
    t.expect(t.send(raw), [reply])
    t.cmd("NOOP", "250")


@pytest.mark.parametrize("line", ["GET / HTTP/1.1", "POST /x HTTP/1.0", "CONNECT host:25 HTTP/1.1"])
def test_http_requests_hang_up(line):
    t = Transcript()
    t.cmd(line, "421 4.7.0")
    assert t.closed


def test_starttls_discards_pipelined_plaintext():
    t = ready()
    t.expect(t.send(b"STARTTLS\r\nMAIL FROM:<injected@b.example>\r\n"), ["220 2.0.0"])
    assert t.m.session.tls and t.m.envelope is None
    t.cmd("EHLO c.example", "250")
    t.cmd("RCPT TO:<x@d.example>", "503 5.5.1 Need MAIL")


def test_starttls_unavailable_and_failed_handshake():
    t = ready(config=SmtpConfig(starttls=False))
    ehlo = t.cmd("EHLO c.example", "250")[0]
    assert "STARTTLS" not in ehlo
    t.cmd("STARTTLS", "454 4.7.0")
    m = SmtpMachine(SmtpConfig())
    m.receive_data(b"EHLO c\r\nSTARTTLS\r\n")
    m.next_event()                          # StartTls request
    m.answer(False)
    assert m.next_event() is CLOSE


def test_machine_api_misuse_is_a_local_error():
    m = SmtpMachine(SmtpConfig())
    with pytest.raises(LocalProtocolError):
        m.answer(None)
    m.receive_data(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n")
    assert m.next_event().__class__.__name__ == "CheckSender"
    with pytest.raises(LocalProtocolError):
        m.next_event()


# ---------------------------------------------------------------------- LMTP
def test_lmtp_one_reply_per_recipient():
    def deliver(event):
        return [codes.MESSAGE_ACCEPTED, codes.MAILBOX_FULL, codes.TEMP_DELIVERY]

    t = Transcript(SmtpConfig(lmtp=True), deliver=deliver)
    t.cmd("EHLO c.example", "500 5.5.1")
    t.cmd("HELO c.example", "500 5.5.1")
    t.cmd("LHLO c.example", "250")
    t.cmd("MAIL FROM:<a@b.example>", "250")
    for rcpt in ("r1", "r2", "r3"):
        t.cmd(f"RCPT TO:<{rcpt}@example.com>", "250")
    t.data("Subject: x\r\n\r\nbody\r\n", "250 2.0.0", "552 5.2.2", "451 4.3.0")


def test_smtp_merges_per_recipient_results():
    ok, full, temp = codes.MESSAGE_ACCEPTED, codes.MAILBOX_FULL, codes.TEMP_DELIVERY
    assert merge_replies([ok, full]) is ok
    assert merge_replies([full, temp]) is temp
    assert merge_replies([full, full]) is full
    t = ready(deliver=lambda e: [full, full])
    t.cmd("MAIL FROM:<a@b.example>", "250")
    t.cmd("RCPT TO:<r1@d.example>", "250")
    t.cmd("RCPT TO:<r2@d.example>", "250")
    t.data("x\r\n", "552 5.2.2")


# ---------------------------------------------------------------------- AUTH
USERS = {"jane@example.com": "jane-pw"}


def auth_ready(split="whole", config=None, **kw) -> Transcript:
    kw.setdefault("authenticator", MemoryAuthenticator(USERS))
    return ready(split, config, session=Session(tls=True), **kw)


@pytest.mark.parametrize("split", SPLITS)
def test_auth_plain_initial_response(split):
    t = auth_ready(split)
    t.cmd("AUTH PLAIN " + b64("\0jane@example.com\0jane-pw"), "235 2.7.0")
    assert t.m.session.authcid == "jane@example.com"
    assert [o.success for o in t.auth_outcomes] == [True]
    t.cmd("AUTH PLAIN " + b64("\0jane@example.com\0jane-pw"), "503 5.5.1")
    t.cmd("MAIL FROM:<a@b.example> AUTH=jane+40example.com", "250")
    assert t.m.envelope.params.auth == "jane@example.com"


def test_auth_param_ignored_when_not_authenticated():
    t = auth_ready()
    t.cmd("MAIL FROM:<a@b.example> AUTH=jane+40example.com", "250")
    assert t.m.envelope.params.auth is None


def test_auth_plain_with_challenge_and_login():
    t = auth_ready()
    t.cmd("AUTH PLAIN", "334 ")
    t.cmd(b64("\0jane@example.com\0jane-pw"), "235 2.7.0")
    t = auth_ready()
    t.cmd("AUTH LOGIN", "334 " + b64("Username:"))
    t.cmd(b64("jane@example.com"), "334 " + b64("Password:"))
    t.cmd(b64("jane-pw"), "235 2.7.0")
    t = auth_ready()
    t.cmd("AUTH LOGIN " + b64("jane@example.com"), "334 " + b64("Password:"))
    t.cmd(b64("wrong"), "535 5.7.8")


def test_auth_scram_sha_256_end_to_end():
    from tests.unit.test_sasl import ScramClient

    t = auth_ready()
    client = ScramClient("jane@example.com", "jane-pw")
    server_first = t.cmd("AUTH SCRAM-SHA-256 " + b64(client.first()), "334 ")[0][4:]
    server_final = t.cmd(b64(client.final(base64.b64decode(server_first))), "334 ")[0][4:]
    assert client.verify(base64.b64decode(server_final))
    t.cmd("", "235 2.7.0")
    assert t.m.session.authenticated


def test_auth_scram_wrong_password():
    from tests.unit.test_sasl import ScramClient

    t = auth_ready()
    client = ScramClient("jane@example.com", "nope")
    server_first = t.cmd("AUTH SCRAM-SHA-256 " + b64(client.first()), "334 ")[0][4:]
    t.cmd(b64(client.final(base64.b64decode(server_first))), "535 5.7.8")
    assert not t.m.session.authenticated


@pytest.mark.parametrize("lines,replies", [
    (["AUTH PLAIN", "*"], ["334", "501 5.7.0"]),
    (["AUTH PLAIN", "!!notbase64"], ["334", "501 5.5.2"]),
    (["AUTH PLAIN !!!"], ["501 5.5.2"]),
    (["AUTH PLAIN " + b64("nonuls")], ["501 5.5.2"]),
    (["AUTH CRAM-MD5"], ["504 5.5.4"]),
    (["AUTH"], ["501 5.5.4"]),
    (["AUTH PLAIN a b"], ["501 5.5.4"]),
    (["AUTH PLAIN ="], ["501 5.5.2"]),                      # "=": empty PLAIN message
    (["AUTH LOGIN =", b64("jane@example.com"), b64("jane-pw")], ["334", "334", "235 2.7.0"]),
])
def test_auth_exchanges(lines, replies):
    t = auth_ready()
    got = []
    for line in lines:
        got += t.send(line + "\r\n")
    t.expect(got, replies)


def test_auth_needs_tls_unless_allowed():
    t = ready(authenticator=MemoryAuthenticator(USERS))
    assert "AUTH" not in t.cmd("EHLO c.example", "250")[0]
    t.cmd("AUTH PLAIN " + b64("\0jane@example.com\0jane-pw"), "530 5.7.0")
    t = ready(config=SmtpConfig(auth_without_tls=True), authenticator=MemoryAuthenticator(USERS))
    t.cmd("AUTH PLAIN " + b64("\0jane@example.com\0jane-pw"), "235 2.7.0")


def test_auth_failures_end_the_session():
    t = auth_ready(config=SmtpConfig(max_auth_failures=3))
    bad = "AUTH PLAIN " + b64("\0jane@example.com\0wrong")
    t.cmd(bad, "535 5.7.8")
    t.cmd(bad, "535 5.7.8")
    t.cmd(bad, "535 5.7.8", "421 4.7.0")
    assert t.closed
    assert [(o.success, o.authcid, o.failures) for o in t.auth_outcomes] == \
        [(False, "jane@example.com", 1), (False, "jane@example.com", 2), (False, "jane@example.com", 3)]


def test_auth_directory_unavailable_is_temporary():
    t = auth_ready(authenticator="tempfail")
    t.cmd("AUTH PLAIN " + b64("\0jane@example.com\0jane-pw"), "454 4.7.0")
    assert t.m.auth_failures == 0


def test_auth_line_too_long():
    t = auth_ready()
    t.cmd("AUTH PLAIN", "334")
    t.cmd("A" * 13000, "500 5.5.6")
    t.cmd("NOOP", "250")


def test_submission_requires_auth():
    t = auth_ready(config=SmtpConfig(submission=True))
    t.cmd("MAIL FROM:<jane@example.com>", "530 5.7.0")
    t.cmd("AUTH PLAIN " + b64("\0jane@example.com\0jane-pw"), "235")
    t.cmd("MAIL FROM:<jane@example.com>", "250")


# ---------------------------------------------------------------------- odds and ends
def test_shutdown_and_replies_of():
    m = SmtpMachine(SmtpConfig())
    m.shutdown()
    assert m.next_event() is CLOSE
    assert replies_of(m.data_to_send()) == ["220 localhost ESMTP ready",
                                            "421 4.3.2 Server shutting down, closing connection"]
    m2 = SmtpMachine(SmtpConfig())
    assert m2.next_event() is NEED_DATA


def test_reply_formatting():
    r = codes.reply(250, "2.0.0", "one", "two")
    assert r.to_bytes() == b"250-2.0.0 one\r\n250 2.0.0 two\r\n"
    with pytest.raises(ValueError):
        codes.reply(250, "5.0.0", "mismatch")
    with pytest.raises(ValueError):
        codes.reply(250, "2.0.0", "a\r\nb")
