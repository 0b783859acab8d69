"""The whole daemon, as a user meets it: stalwart-master (uvloop workers, the store process),
accounts made with stalwart-cli, mail sent with smtplib and read with imaplib and poplib."""

from __future__ import annotations

import imaplib
import smtplib
import subprocess
import sys

CLI = [sys.executable, "-m", "stalwart.cli.main"]


def _cli(daemon, *args: str, stdin: bytes = b"") -> str:
    out = subprocess.run([*CLI, "--config", str(daemon.config_path), *args], check=True,
                         capture_output=True, timeout=60, input=stdin)
    return out.stdout.decode()


def test_smtp_in_imap_out_through_the_master(daemon):
    smtp, imap, http = daemon.port(), daemon.port(), daemon.port()
    daemon.configure(listeners=[("smtp", "smtp", smtp), ("imap", "imap", imap),
                                ("http", "http", http)])
    daemon.start()
    _cli(daemon, "domain", "create", "example.org")
    _cli(daemon, "account", "create", "alice", "--email", "alice@example.org",
         "--password", "-", stdin=b"correct horse\n")
    assert "alice@example.org" in _cli(daemon, "account", "list")

    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as s:
        s.sendmail("bob@remote.test", ["alice+news@example.org"],
                   b"From: bob@remote.test\r\nTo: alice@example.org\r\nSubject: first\r\n"
                   b"\r\nHello Alice\r\n.leading dot\r\n")
        refused = None
        try:
            s.sendmail("bob@remote.test", ["someone@elsewhere.test"], b"Subject: relay\r\n\r\nx\r\n")
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients["someone@elsewhere.test"][0]
        assert refused == 550

    m = imaplib.IMAP4("127.0.0.1", imap, timeout=10)
    try:
        assert m.login("alice@example.org", "correct horse")[0] == "OK"
        typ, data = m.select("INBOX")
        assert (typ, data) == ("OK", [b"1"])
        typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
        body = data[0][1]
        assert b"Subject: first" in body and b"\r\n.leading dot\r\n" in body
        assert body.startswith(b"Return-Path: <bob@remote.test>\r\nReceived: ")
        assert m.store("1", "+FLAGS", "\\Seen")[0] == "OK"
        typ, data = m.fetch("1", "(FLAGS)")
        assert b"\\Seen" in data[0]
        typ, data = m.list()
        names = b"\n".join(data)
        for special in (b"\\Sent", b"\\Drafts", b"\\Junk", b"\\Trash", b"\\Archive"):
            assert special in names
    finally:
        m.logout()
    try:
        imaplib.IMAP4("127.0.0.1", imap, timeout=10).login("alice", "wrong")
        raise AssertionError("a wrong password logged in")
    except imaplib.IMAP4.error:
        pass
    assert 'auth failed: protocol=imap remote_ip=127.0.0.1 login="alice"' in daemon.log()
    assert daemon.stop() == 0


def test_memory_directory_accounts_receive_and_read_mail(daemon):
    smtp, imap = daemon.port(), daemon.port()
    daemon.configure(listeners=[("smtp", "smtp", smtp), ("imap", "imap", imap)], extra="""
[directory.memory]
type = "memory"

[[directory.memory.principals]]
name = "jane"
class = "individual"
secret = "jane-password"
email = ["jane@example.com"]
""")
    daemon.start()
    daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=20)
    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as s:
        s.sendmail("bob@remote.test", ["jane@example.com"], b"Subject: hi jane\r\n\r\nhello\r\n")
    m = imaplib.IMAP4("127.0.0.1", imap, timeout=10)
    try:
        assert m.login("jane", "jane-password")[0] == "OK"
        assert m.select("INBOX") == ("OK", [b"1"])
        assert b"Subject: hi jane" in m.fetch("1", "(BODY.PEEK[])")[1][0][1]
    finally:
        m.logout()
    assert daemon.stop() == 0
