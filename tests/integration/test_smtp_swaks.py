"""swaks, a real SMTP client, against the whole daemon: STARTTLS, implicit TLS (RFC 8314),
AUTH PLAIN and LOGIN on submission, PIPELINING, SMTPUTF8 and relay refusal."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .configs import certificate
from .certs import daemon_certificate

SWAKS = shutil.which("swaks")
CLI = [sys.executable, "-m", "stalwart.cli.main"]


def _swaks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SWAKS, "--server", "127.0.0.1", "--timeout", "15", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def server(daemon):
    if SWAKS is None:
        pytest.fail("swaks is not installed (tests/install-peers.sh installs it)")
    daemon_certificate(daemon.root, "mx.test.invalid")
    ports = {"smtp": daemon.port(), "submission": daemon.port(), "submissions": daemon.port(),
             "http": daemon.port()}
    daemon.configure(listeners=[("smtp", "smtp", ports["smtp"]),
                                ("submission", "smtp", ports["submission"]),
                                ("http", "http", ports["http"])],
                     extra=f"""
[[server.listener]]
id = "submissions"
protocol = "smtp"
bind = "127.0.0.1:{ports['submissions']}"
tls.implicit = true

{certificate(daemon.root)}
""")
    daemon.start()
    for args in (("domain", "create", "example.org"),
                 ("account", "create", "alice", "--email", "alice@example.org",
                  "--password", "-")):
        subprocess.run([*CLI, "--config", str(daemon.config_path), *args], check=True,
                       capture_output=True, input=b"alice-password\n", timeout=60)
    return daemon, ports


def test_swaks_inbound_starttls_pipelining_and_relay_refusal(server):
    daemon, ports = server
    r = _swaks("--port", str(ports["smtp"]), "--from", "bob@remote.test", "--to",
               "alice@example.org", "--tls", "--pipeline",
               "--header", "Subject: swaks tls", "--body", "over TLS")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout and "PIPELINING" in r.stdout
    assert "250 2.0.0" in r.stdout
    r = _swaks("--port", str(ports["smtp"]), "--from", "bob@remote.test",
               "--to", "someone@elsewhere.test")
    assert r.returncode != 0 and "550 5.7.1" in r.stdout
    r = _swaks("--port", str(ports["smtp"]), "--from", "bob@remote.test",
               "--to", "alice%elsewhere.test@example.org")
    assert r.returncode != 0 and "550" in r.stdout


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_submission_auth_after_starttls(server, mechanism):
    daemon, ports = server
    r = _swaks("--port", str(ports["submission"]), "--from", "alice@example.org",
               "--to", "alice@example.org", "--tls", "--auth", mechanism,
               "--auth-user", "alice", "--auth-password", "alice-password")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout
    r = _swaks("--port", str(ports["submission"]), "--from", "alice@example.org",
               "--to", "alice@example.org", "--tls", "--auth", mechanism,
               "--auth-user", "alice", "--auth-password", "wrong")
    assert r.returncode != 0 and "535 5.7.8" in r.stdout
    assert 'auth failed: protocol=smtp remote_ip=127.0.0.1 login="alice"' in daemon.log()


def test_swaks_implicit_tls_submission_and_sender_ownership(server):
    daemon, ports = server
    r = _swaks("--port", str(ports["submissions"]), "--tls-on-connect", "--auth", "PLAIN",
               "--auth-user", "alice", "--auth-password", "alice-password",
               "--from", "alice@example.org", "--to", "alice@example.org")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _swaks("--port", str(ports["submissions"]), "--tls-on-connect", "--auth", "PLAIN",
               "--auth-user", "alice", "--auth-password", "alice-password",
               "--from", "ceo@example.org", "--to", "alice@example.org")
    assert r.returncode != 0
    # AUTH is not offered before TLS on the submission port.
    r = _swaks("--port", str(ports["submission"]), "--from", "alice@example.org",
               "--to", "alice@example.org", "--auth", "PLAIN", "--auth-user", "alice",
               "--auth-password", "alice-password")
    assert r.returncode != 0


def test_smtputf8_addresses_need_the_parameter(server):
    import smtplib

    daemon, ports = server
    subprocess.run([*CLI, "--config", str(daemon.config_path), "account", "update", "alice",
                    "--add-alias", "j\u00f6rg@example.org"], check=True, capture_output=True,
                   timeout=60)
    # swaks (2020) cannot send the SMTPUTF8 parameter: RFC 6531 3.4 says refuse.
    r = _swaks("--port", str(ports["smtp"]), "--from", "bob@remote.test",
               "--to", "j\u00f6rg@example.org", "--quit-after", "RCPT")
    assert "250-SMTPUTF8" in r.stdout and "553 5.6.7" in r.stdout
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as s:
        s.ehlo("client.test")
        refused = s.sendmail("b\u00f6b@remote.test", ["j\u00f6rg@example.org"],
                             "From: b\u00f6b@remote.test\r\nSubject: utf8\r\n\r\nhej\r\n"
                             .encode("utf-8"), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}
