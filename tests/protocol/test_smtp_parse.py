"""SMTP path and parameter parsing (RFC 5321 4.1.2, RFC 6531, RFC 1870, RFC 3461, RFC 4954,
RFC 8689): inputs and expected results side by side."""

from __future__ import annotations

import pytest

from stalwart.protocols.smtp.address import (SmtpSyntaxError, parse_path,
                                             split_path_params)
from stalwart.protocols.smtp.params import (Extensions, parse_mail_params, parse_rcpt_params,
                                            xtext_decode)

ALL = Extensions(requiretls=True)

VALID = [
    # text, reverse, utf8, str(path), domain_key
    ("<user@example.com>", False, False, "<user@example.com>", "example.com"),
    ("<>", True, False, "<>", None),
    ("<Postmaster>", False, False, "<Postmaster>", None),
    ("<@relay.example,@hop.example:user@example.com>", False, False, "<user@example.com>", "example.com"),
    ('<"john doe"@example.com>', False, False, '<"john doe"@example.com>', "example.com"),
    ('<"john\\"q"@example.com>', False, False, '<"john\\"q"@example.com>', "example.com"),
    ('<"plain"@example.com>', False, False, "<plain@example.com>", "example.com"),
    ("<user@[192.0.2.1]>", False, False, "<user@[192.0.2.1]>", "[192.0.2.1]"),
    ("<user@[IPv6:2001:DB8::1]>", False, False, "<user@[IPv6:2001:db8::1]>", "[ipv6:2001:db8::1]"),
    ("<USER@EXAMPLE.COM>", False, False, "<USER@EXAMPLE.COM>", "example.com"),
    ("<a.b+tag@sub.example.com>", False, False, "<a.b+tag@sub.example.com>", "sub.example.com"),
    ("<δοκιμή@παράδειγμα.δοκιμή>", False, True, "<δοκιμή@παράδειγμα.δοκιμή>",
     "xn--hxajbheg2az3al.xn--jxalpdlp"),
    ("<user%remote@example.com>", False, False, "<user%remote@example.com>", "example.com"),
]


@pytest.mark.parametrize("text,reverse,utf8,shown,domain", VALID)
def test_valid_paths(text, reverse, utf8, shown, domain):
    path = parse_path(text, reverse=reverse, utf8=utf8)
    assert str(path) == shown
    if domain is not None:
        assert path.address.domain_key == domain


INVALID = [
    # text, reverse, utf8, reply prefix
    ("user@example.com", False, False, "501 5.1.3"),          # no angle brackets
    ("<user@example.com", False, False, "501 5.1.3"),
    ("<>", False, False, "501 5.1.3"),                          # null forward path
    ("<user>", False, False, "501 5.1.3"),                      # no domain
    ("<@example.com>", False, False, "501 5.1.3"),
    ("<user@>", False, False, "501 5.1.3"),
    ("<user@example.com.>", False, False, "501 5.1.3"),         # trailing dot
    ("<user.@example.com>", False, False, "501 5.1.3"),
    ("<.user@example.com>", False, False, "501 5.1.3"),
    ("<us..er@example.com>", False, False, "501 5.1.3"),
    ("<us er@example.com>", False, False, "501 5.1.3"),
    ("<user@exa_mple.com>", False, False, "501 5.1.3"),
    ("<user@-example.com>", False, False, "501 5.1.3"),
    ("<user@@example.com>", False, False, "501 5.1.3"),
    ("<a@b@example.com>", False, False, "501 5.1.3"),
    ('<"unterminated@example.com>', False, False, "501 5.1.3"),
    ("<@relay.example user@example.com>", False, False, "501 5.1.3"),
    ("<@:user@example.com>", False, False, "501 5.1.3"),
    ("<user@[300.1.1.1]>", False, False, "501 5.1.3"),
    ("<user@[IPv6:zz::1]>", False, False, "501 5.1.3"),
    ("<user@[1.2.3]>", False, False, "501 5.1.3"),
    ("<" + "a" * 65 + "@example.com>", False, False, "501 5.1.3 Local part too long"),
    ("<a@" + "b" * 250 + ".com>", False, False, "501 5.1.3"),
    ("<a@" + ".".join(["b" * 60] * 5) + ">", False, False, "501 5.1.3"),
    ("<δοκιμή@example.com>", False, False, "553 5.6.7"),        # UTF-8 without SMTPUTF8
    ("<user@παράδειγμα.δοκιμή>", False, False, "553 5.6.7"),
    ("<user@ｅxample.com>", False, True, "501 5.1.3"),          # full-width look-alike
    ("<user@EXÄMPLE.com>", False, True, "501 5.1.3"),           # IDNA would map the case
]


@pytest.mark.parametrize("text,reverse,utf8,reply", INVALID)
def test_invalid_paths(text, reverse, utf8, reply):
    with pytest.raises(SmtpSyntaxError) as info:
        parse_path(text, reverse=reverse, utf8=utf8)
    assert str(info.value.reply).startswith(reply)


def test_path_over_256_octets():
    with pytest.raises(SmtpSyntaxError) as info:
        parse_path("<" + "a" * 60 + "@" + "b" * 200 + ".com>")
    assert str(info.value.reply).startswith("501 5.1.3")


def test_routing_characters_are_flagged():
    for text in ("<a%b@example.com>", "<b!a@example.com>", '<"a@b"@example.com>',
                 '<"a:b"@example.com>'):
        assert parse_path(text).address.has_routing
    assert not parse_path('<"ab"@example.com>').address.has_routing


def test_split_path_params():
    assert split_path_params("<a@b.c> SIZE=10  BODY=8BITMIME") == ("<a@b.c>", ["SIZE=10", "BODY=8BITMIME"])
    assert split_path_params(' <"x> y"@b.c>') == ('<"x> y"@b.c>', [])
    for bad in ("a@b.c", "<a@b.c>SIZE=1", "<a@b.c"):
        with pytest.raises(SmtpSyntaxError):
            split_path_params(bad)


def test_mail_params():
    p = parse_mail_params(["size=1000", "BODY=8bitmime", "SMTPUTF8", "RET=hdrs",
                           "ENVID=QQ+2B1", "AUTH=jane+40example.com", "REQUIRETLS"], ALL)
    assert (p.size, p.body, p.smtputf8, p.ret, p.envid, p.auth, p.requiretls) == \
        (1000, "8BITMIME", True, "HDRS", "QQ+1", "jane@example.com", True)
    assert parse_mail_params(["AUTH=<>"], ALL).auth == "<>"


@pytest.mark.parametrize("words,ext,reply", [
    (["SIZE=abc"], ALL, "501 5.5.4"),
    (["SIZE"], ALL, "501 5.5.4"),
    (["SIZE=" + "9" * 21], ALL, "501 5.5.4"),
    (["BODY=BINARYMIME"], ALL, "504 5.5.4"),
    (["BODY=9BIT"], ALL, "501 5.5.4"),
    (["SMTPUTF8=yes"], ALL, "501 5.5.4"),
    (["RET=ALL"], ALL, "501 5.5.4"),
    (["ENVID=" + "a" * 101], ALL, "501 5.5.4"),
    (["ENVID=bad+zz"], ALL, "501 5.5.4"),
    (["SIZE=1", "size=2"], ALL, "501 5.5.4"),
    (["FOO=bar"], ALL, "555 5.5.4"),
    (["REQUIRETLS"], Extensions(requiretls=False), "555 5.5.4"),
    (["SIZE=1"], Extensions(size=False), "555 5.5.4"),
    (["-X=1"], ALL, "501 5.5.4"),
    (["X=a=b"], ALL, "501 5.5.4"),
])
def test_bad_mail_params(words, ext, reply):
    with pytest.raises(SmtpSyntaxError) as info:
        parse_mail_params(words, ext)
    assert str(info.value.reply).startswith(reply)


def test_rcpt_params():
    p = parse_rcpt_params(["NOTIFY=success,FAILURE", "ORCPT=rfc822;a+2Bb@example.com"], ALL, utf8=False)
    assert p.notify == ("SUCCESS", "FAILURE") and p.orcpt == ("rfc822", "a+b@example.com")
    p = parse_rcpt_params(["NOTIFY=NEVER", "ORCPT=utf-8;\\x{E9}t\u00e9@example.com"], ALL, utf8=True)
    assert p.notify == ("NEVER",) and p.orcpt == ("utf-8", "\u00e9t\u00e9@example.com")


@pytest.mark.parametrize("words", [
    ["NOTIFY=NEVER,SUCCESS"], ["NOTIFY=SOMETIMES"], ["NOTIFY=SUCCESS,SUCCESS"], ["NOTIFY="],
    ["ORCPT=rfc822"], ["ORCPT=;a@b"], ["ORCPT=rfc822;" + "a" * 600], ["ORCPT=rfc822;a+zz"],
])
def test_bad_rcpt_params(words):
    with pytest.raises(SmtpSyntaxError):
        parse_rcpt_params(words, ALL, utf8=False)


def test_xtext():
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"
    with pytest.raises(SmtpSyntaxError):
        xtext_decode("a+2b")        # lower-case hex is not xtext
