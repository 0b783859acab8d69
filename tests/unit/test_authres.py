"""Authentication-Results (RFC 8601): the field we write and the forged ones we strip."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass

from stalwart.mailauth import authres
from stalwart.mailauth.dmarc import DmarcResult, parse_record
from stalwart.mailauth.spf import SpfResult


@dataclass
class Dkim:
    result: str
    domain: str
    selector: str
    algorithm: str = "rsa-sha256"
    reason: str = ""
    header_b: str = "AbCdEfGh"


@dataclass
class Arc:
    result: str
    reason: str = ""


SPF = SpfResult("pass", "example.org", "192.0.2.1", "alice@example.org", "mail.example.org")
HELO = SpfResult("neutral", "mail.example.org", "192.0.2.1", "postmaster@mail.example.org",
                 "mail.example.org", identity="helo")


def test_every_result_in_one_field():
    dm = DmarcResult("pass", "example.org", "reject", "none",
                     parse_record("v=DMARC1; p=reject; sp=quarantine"), "example.org", True)
    text = authres.authentication_results(
        "mx.example.net", spf=SPF, spf_helo=HELO,
        dkim=[Dkim("pass", "example.org", "s1"),
              Dkim("fail", "example.org", "s2", "ed25519-sha256", "body hash mismatch",
                   "ZZZZ1111x")],
        dmarc=dm, arc=Arc("pass"))
    assert text.split("\r\n") == [
        "Authentication-Results: mx.example.net;",
        "\tarc=pass;",
        "\tdkim=pass header.d=example.org header.s=s1 header.a=rsa-sha256 header.b=AbCdEfGh;",
        '\tdkim=fail reason="body hash mismatch" header.d=example.org header.s=s2 '
        'header.a=ed25519-sha256 header.b=ZZZZ1111x;',
        "\tspf=pass smtp.mailfrom=alice@example.org;",
        "\tspf=neutral smtp.helo=mail.example.org;",
        "\tdmarc=pass (p=REJECT sp=QUARANTINE dis=NONE) header.from=example.org",
    ]
    # A standard parser reads it back as one field with our authserv-id first.
    msg = email.message_from_bytes(text.encode() + b"\r\n\r\nbody", policy=email.policy.SMTP)
    assert str(msg["Authentication-Results"]).startswith("mx.example.net;")
    assert authres.authserv_id(str(msg["Authentication-Results"])) == "mx.example.net"


def test_none_and_no_signature():
    assert authres.authentication_results("mx.example.net") == \
        "Authentication-Results: mx.example.net; none"
    assert authres.authentication_results("mx", dkim=[]).endswith("\tdkim=none")


def test_hostile_values_are_quoted_not_injected():
    spf = SpfResult("permerror", "evil.example", "192.0.2.1",
                    'a b"\r\nX-Injected: 1@evil.example', "h", reason="bad)(\r\nX-Bad: 1")
    dkim = [Dkim("fail", "evil.example\r\nX-Evil: 1", "s;1", reason="x\"y")]
    text = authres.authentication_results("mx", spf=spf, dkim=dkim)
    assert "\r\nX-" not in text
    assert text.count("\r\n") == 2                       # two resinfo lines, no more
    assert 'reason="x\\"y"' in text and 'header.s="s;1"' in text


def test_authserv_id_parsing():
    assert authres.authserv_id(" mx.example.net; spf=pass") == "mx.example.net"
    assert authres.authserv_id(" (comment (nested)) MX.Example.NET 1; none") == \
        "mx.example.net"
    assert authres.authserv_id(' "mx.example.net"; none') == "mx.example.net"
    assert authres.authserv_id("") == ""


MESSAGE = (b"Received: from x\r\n"
           b"Authentication-Results: mx.example.net;\r\n\tspf=pass smtp.mailfrom=a@b.example\r\n"
           b"Authentication-Results: (forged) MX.EXAMPLE.NET; dkim=pass\r\n"
           b"Authentication-Results: other.example; dkim=fail\r\n"
           b"From: a@b.example\r\n"
           b"BIMI-Location: v=BIMI1; l=https://evil/logo.svg\r\n"
           b"\r\n"
           b"Authentication-Results: mx.example.net; body text, not a header\r\n")


def test_strip_own_results_only():
    out = authres.strip_own_results(MESSAGE, "mx.example.net", also=("bimi-location",))
    assert out == (b"Received: from x\r\n"
                   b"Authentication-Results: other.example; dkim=fail\r\n"
                   b"From: a@b.example\r\n"
                   b"\r\n"
                   b"Authentication-Results: mx.example.net; body text, not a header\r\n")
    # Nothing to strip: the same bytes back.
    assert authres.strip_own_results(out, "mx.example.net") is out


def test_field_values_and_odd_messages():
    assert authres.field_values(MESSAGE, "from") == [" a@b.example"]
    assert authres.strip_own_results(b"\r\nbody", "mx") == b"\r\nbody"
    assert authres.strip_own_results(b"Authentication-Results: mx; none", "mx") == b""
