"""Failed-login penalties and bans for IMAP and POP3, shared with SMTP, through the whole
daemon: TWO imap worker processes, one pop3 and one smtp worker, all mapping one limit
table (``run/limits-<slots>.table``). Failures from one address add up whatever protocol
and process they land on; the growing delay is on the NO / -ERR; the ban then turns away
new connections of every protocol and a connection opened before the ban cannot try
again. Each failure is one fail2ban line. Ports 22000-22099.
"""

from __future__ import annotations

import imaplib
import poplib
import re
import socket
import ssl
import time

from .configs import certificate
from .certs import daemon_certificate

PORTS = iter(range(22000, 22100))

PRINCIPALS = """
[directory.memory]
type = "memory"

[[directory.memory.principals]]
name = "jane"
class = "individual"
secret = "jane-password"
email = ["jane@example.com"]
"""

# delay-after 3: the 3rd failure waits 1 s, the 4th 2 s, the 5th and 6th 3 s (max); the
# 6th bans. (A wrong password costs an argon2 check besides, so only the lower bounds of
# the delays are asserted.)
PENALTY = """
[smtp.limits]
exempt = []
connection-rate = "unlimited"

[smtp.auth-penalty]
delay-after = 3
delay = "1s"
max-delay = "3s"
ban-after = 6
window = "10m"
ban-time = "10m"
"""

FAIL_LINE = re.compile(r"auth failed: protocol=(\w+) remote_ip=127\.0\.0\.1 login=")


def _start(daemon, penalty: str = PENALTY, *, submission: bool = False) -> dict:
    ports = {"imap": next(PORTS), "pop3": next(PORTS), "smtp": next(PORTS)}
    listeners = [("imap", "imap", ports["imap"]), ("pop3", "pop3", ports["pop3"]),
                 ("smtp", "smtp", ports["smtp"])]
    if submission:
        ports["submission"] = next(PORTS)
        listeners.append(("submission", "smtp", ports["submission"]))
        daemon_certificate(daemon.root)
        penalty += f"""
{certificate(daemon.root)}
"""
    daemon.configure(listeners=listeners,
                     workers={"imap": 2}, extra=PRINCIPALS + penalty)
    daemon.start()
    daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=20)
    daemon.wait_for(lambda: len(daemon.workers("imap")) == 2, message="two imap workers")
    return ports


def _imap_fail(port: int) -> float:
    """One wrong LOGIN on a new connection: the seconds its NO took."""
    client = imaplib.IMAP4("127.0.0.1", port, timeout=20)
    try:
        start = time.monotonic()
        try:
            client.login("jane", "wrong")
        except imaplib.IMAP4.error as exc:
            assert "AUTHENTICATIONFAILED" in str(exc) or "Invalid credentials" in str(exc)
            return time.monotonic() - start
        raise AssertionError("a wrong password was accepted")
    finally:
        try:
            client.shutdown()
        except OSError:
            pass


def _pop3_fail(port: int) -> float:
    client = poplib.POP3("127.0.0.1", port, timeout=20)
    try:
        client.user("jane")
        start = time.monotonic()
        try:
            client.pass_("wrong")
        except poplib.error_proto as exc:
            assert b"[AUTH]" in exc.args[0]
            return time.monotonic() - start
        raise AssertionError("a wrong password was accepted")
    finally:
        client.close()


def _greeting(port: int, *, rest: bool = True) -> tuple[bytes, bytes]:
    """The first line a new connection gets, and (``rest``) what follows it until the
    server closes (b"": closed at once)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        reader = sock.makefile("rb")
        line = reader.readline()
        return line, reader.read() if rest else b""
    finally:
        sock.close()


def _failures(daemon) -> list[str]:
    return FAIL_LINE.findall(daemon.log())


def test_failures_add_up_across_imap_workers_and_pop3_then_ban_everywhere(daemon):
    ports = _start(daemon)
    # An IMAP session opened before the ban: it will not be allowed to guess again.
    early = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    early_pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=20)
    # Failures 1-5 over new connections (spread over the two imap workers by
    # SO_REUSEPORT) and the pop3 worker: each answered later than the one before.
    delays = [_imap_fail(ports["imap"]), _imap_fail(ports["imap"]),
              _pop3_fail(ports["pop3"]), _imap_fail(ports["imap"]),
              _imap_fail(ports["imap"])]
    for got, want in zip(delays[2:], (1.0, 2.0, 3.0)):
        assert got >= want - 0.05, delays
    # Not banned yet: a new IMAP connection gets the normal greeting.
    assert _greeting(ports["imap"], rest=False)[0].startswith(b"* OK ")
    # The 6th failure (POP3) bans the address: -ERR, then the connection is closed.
    client = poplib.POP3("127.0.0.1", ports["pop3"], timeout=20)
    client.user("jane")
    try:
        client.pass_("wrong")
        raise AssertionError("a wrong password was accepted")
    except poplib.error_proto as exc:
        assert b"[AUTH]" in exc.args[0]
    rest = client.file.read()
    assert rest == b"-ERR [SYS/TEMP] Too many failed logins from this address, " \
                   b"try again later\r\n", rest
    client.close()
    daemon.wait_for(lambda: "pop3: 127.0.0.1 banned for 600s" in daemon.log(),
                    message="the ban logged")
    # Every protocol now turns the address away at connect; many IMAP connections so
    # that both imap workers answer some of them.
    for _ in range(8):
        line, rest = _greeting(ports["imap"])
        assert line == b"* BYE [UNAVAILABLE] Too many failed logins from 127.0.0.1, " \
                       b"try again later\r\n"
        assert rest == b""
    line, rest = _greeting(ports["pop3"])
    assert (line, rest) == (b"-ERR [SYS/TEMP] Too many failed logins from this address, "
                            b"try again later\r\n", b"")
    line, rest = _greeting(ports["smtp"])
    assert line.startswith(b"421 4.7.0 ") and b"too many failed logins" in line, line
    assert rest == b""
    # The session opened before the ban cannot try, even with the right password.
    typ, data = early._simple_command("LOGIN", "jane", early._quote("jane-password"))
    assert typ == "NO" and b"[UNAVAILABLE]" in data[-1], (typ, data)
    # ... then BYE, and the connection is closed.
    assert early.file.read() == b"* BYE Too many failed logins from 127.0.0.1, try again " \
                                b"later\r\n"
    early.shutdown()
    early_pop.user("jane")
    try:
        early_pop.pass_("jane-password")
        raise AssertionError("a banned address logged in")
    except poplib.error_proto as exc:
        assert exc.args[0] == b"-ERR [SYS/TEMP] Too many failed logins from this address, " \
                              b"try again later"
    assert early_pop.file.read() == b""
    early_pop.close()
    # One fail2ban line per failure, and only those: 6 (5 before the ban, the 6th).
    assert sorted(_failures(daemon)) == ["imap"] * 4 + ["pop3"] * 2
    assert daemon.stop() == 0


def test_smtp_failures_count_towards_an_imap_ban(daemon):
    import smtplib

    ports = _start(daemon, PENALTY.replace("ban-after = 6", "ban-after = 3")
                   .replace('delay = "1s"', 'delay = "50ms"'), submission=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    for _ in range(2):
        smtp = smtplib.SMTP("127.0.0.1", ports["submission"], timeout=20)
        smtp.starttls(context=tls)
        smtp.ehlo()
        smtp.user, smtp.password = "jane", "wrong"
        try:
            smtp.auth("PLAIN", smtp.auth_plain)     # one mechanism: one failure
            raise AssertionError("a wrong password was accepted")
        except smtplib.SMTPAuthenticationError:
            pass
        smtp.close()
    # The third failure, over IMAP, bans: NO, then BYE and the connection closes.
    client = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    typ, data = client._simple_command("LOGIN", "jane", "wrong")
    assert typ == "NO" and b"AUTHENTICATIONFAILED" in data[-1]
    assert client.file.read() == b"* BYE Too many failed logins from 127.0.0.1, try again " \
                                 b"later\r\n"
    client.shutdown()
    assert _greeting(ports["imap"])[0].startswith(b"* BYE [UNAVAILABLE] ")
    assert sorted(_failures(daemon)) == ["imap", "smtp", "smtp"]
    assert daemon.stop() == 0


def test_exempt_addresses_are_never_banned(daemon):
    ports = _start(daemon, PENALTY.replace("exempt = []", 'exempt = ["127.0.0.0/8"]')
                   .replace("ban-after = 6", "ban-after = 2"))
    # IMAP closes a connection after 3 failures of its own; the address stays welcome.
    for _ in range(4):
        _imap_fail(ports["imap"])
    assert _greeting(ports["imap"], rest=False)[0].startswith(b"* OK ")
    client = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=20)
    assert client.login("jane", "jane-password")[0] == "OK"
    client.logout()
    assert _failures(daemon) == ["imap"] * 4
    assert daemon.stop() == 0
