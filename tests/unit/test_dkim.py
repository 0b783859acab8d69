"""DKIM (RFC 6376, RFC 8463): the RFC examples and keys, canonicalization, every verdict of
the verifier, hostile signatures and key records, signing, and both directions against
dkimpy (an independent implementation) over real messages of the SpamAssassin corpus."""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from stalwart.dns import NXDOMAIN, TEMPFAIL, FakeBackend, Resolver
from stalwart.mailauth import dkim, keys
from stalwart.mailauth.canon import (TagListError, canonical_body, parse_tags, relaxed_header,
                                     split_message, strip_b_value)

# ---------------------------------------------------------------- RFC 8463 appendix A
ED25519_SEED = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
ED25519_RECORD = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
RSA_PEM = """-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi
Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM
KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB
AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm
6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe
zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy
6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc
uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy
WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd
WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a
licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst
o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe
uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL
-----END RSA PRIVATE KEY-----
"""
RSA_RECORD = ("v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
              "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
              "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
              "Ip3G+2kryOTIKT+l/K4w3QIDAQAB")
ED25519_SIG = (
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n")
RSA_SIG = (
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    " date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n")
MESSAGE = (
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n")
SIGNED = (ED25519_SIG + RSA_SIG + MESSAGE).encode()
RFC_ZONE = {"brisbane._domainkey.football.example.com": {"TXT": ED25519_RECORD},
            "test._domainkey.football.example.com": {"TXT": RSA_RECORD}}
NOW = 1528637909 + 3600

# ---------------------------------------------------------------- RFC 6376 appendix A and C
# (with errata 3192 and 4926 applied: one space in "game. Are", the published indentation)
RFC6376_RECORD = ("v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkM"
                  "oGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/R"
                  "tdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToI"
                  "MmPSPDdQPNUYckcQ2QIDAQAB")
RFC6376_SIGNED = (
    "DKIM-Signature: v=1; a=rsa-sha256; s=brisbane; d=example.com;\r\n"
    "      c=simple/simple; q=dns/txt; i=joe@football.example.com;\r\n"
    "      h=Received : From : To : Subject : Date : Message-ID;\r\n"
    "      bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    "      b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB\r\n"
    "      4nujc7YopdG5dWLSdNg6xNAZpOPr+kHxt1IrE+NahM6L/LbvaHut\r\n"
    "      KVdkLLkpVaVVQPzeRDI009SO2Il5Lu7rDNH6mZckBdrIx0orEtZV\r\n"
    "      4bmp/YzhwvcubU4=;\r\n"
    "Received: from client1.football.example.com  [192.0.2.1]\r\n"
    "      by submitserver.example.com with SUBMISSION;\r\n"
    "      Fri, 11 Jul 2003 21:01:54 -0700 (PDT)\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game. Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n").encode()

VALID = {"pass", "fail", "neutral", "policy", "temperror", "permerror"}


def resolver(zone: dict) -> Resolver:
    return Resolver(FakeBackend(zone))


def run_verify(message: bytes, zone: dict = RFC_ZONE, **kw) -> list[dkim.DkimResult]:
    kw.setdefault("now", NOW)
    return asyncio.run(dkim.verify(message, resolver(zone), **kw))


def rsa_only(replace: str = "", by: str = "", body: str = MESSAGE) -> bytes:
    return (RSA_SIG.replace(replace, by) if replace else RSA_SIG).encode() + body.encode()


def ed_key():
    return ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(ED25519_SEED))


def dnsfunc_for(zone: dict):
    """dkimpy's DNS hook over the same zone dict the FakeBackend uses."""
    def lookup(name, timeout=5):
        text = name.decode() if isinstance(name, bytes) else name
        entry = zone.get(text.rstrip(".").lower())
        if not isinstance(entry, dict) or "TXT" not in entry:
            return None
        value = entry["TXT"]
        return value.encode() if isinstance(value, str) else value
    return lookup


# ---------------------------------------------------------------- RFC examples

def test_rfc8463_example_both_signatures_pass():
    results = run_verify(SIGNED)
    assert [r.result for r in results] == ["pass", "pass"]
    ed, rs = results
    assert (ed.domain, ed.selector, ed.algorithm) == ("football.example.com", "brisbane",
                                                       "ed25519-sha256")
    assert (rs.domain, rs.selector, rs.algorithm) == ("football.example.com", "test", "rsa-sha256")
    assert ed.header_b == "/gCrinpc" and rs.header_b == "F45dVWDf"
    assert rs.auth_results() == ("dkim=pass header.d=football.example.com "
                                 "header.i=@football.example.com header.s=test "
                                 "header.a=rsa-sha256 header.b=F45dVWDf")


def test_rfc8463_published_signatures_reproduced_from_the_published_keys():
    """RSA PKCS#1 v1.5 and Ed25519 are deterministic: the RFC's private keys over the
    RFC's header text must give exactly the published b= values."""
    fields, _ = split_message(SIGNED)
    index = dkim.HeaderIndex(fields)
    rsa_key = keys.load_private_key(RSA_PEM)
    for field, key, algorithm in ((fields[0], ed_key(), "ed25519-sha256"),
                                  (fields[1], rsa_key, "rsa-sha256")):
        sig = dkim.parse_signature(field)
        data = index.signed_data(sig.names, sig.header_canon, field.raw)
        assert dkim.sign_data(algorithm, key, data) == sig.signature


def test_rfc8463_public_keys_match_the_private_keys():
    assert ED25519_RECORD.endswith(keys.public_key_b64(ed_key()))
    assert RSA_RECORD.endswith(keys.public_key_b64(keys.load_private_key(RSA_PEM)))


def test_rfc6376_appendix_a_example_with_errata():
    zone = {"brisbane._domainkey.example.com": {"TXT": RFC6376_RECORD}}
    [result] = run_verify(RFC6376_SIGNED, zone)
    assert result.result == "pass", result
    assert result.identity == "joe@football.example.com"
    # simple/simple: any change of white space in a signed field breaks it
    [changed] = run_verify(RFC6376_SIGNED.replace(b"Subject: Is", b"Subject:  Is"), zone)
    assert (changed.result, changed.reason) == ("fail", "signature did not verify")


def test_rfc6376_canonicalization_example_3_4_6():
    assert relaxed_header(b"A: X\r\n") == b"a:X\r\n"
    assert relaxed_header(b"B : Y\t\r\n\tZ  \r\n") == b"b:Y Z\r\n"
    body = b" C \r\nD \t E\r\n\r\n\r\n"
    assert canonical_body(body, "relaxed") == b" C\r\nD E\r\n"
    assert canonical_body(body, "simple") == b" C \r\nD \t E\r\n"


@pytest.mark.parametrize("body,simple,relaxed", [
    (b"", b"\r\n", b""),
    (b"\r\n", b"\r\n", b""),
    (b"\r\n\r\n \r\n", b"\r\n\r\n \r\n", b""),
    (b"x", b"x\r\n", b"x\r\n"),
    (b"x  \t", b"x  \t\r\n", b"x\r\n"),
    (b"a\r\n \r\n", b"a\r\n \r\n", b"a\r\n"),
    (b"a\r\r\n\r\n", b"a\r\r\n", b"a\r\r\n"),
    (b"a\r\n\t\r\n b\r\n\r\n", b"a\r\n\t\r\n b\r\n", b"a\r\n\r\n b\r\n"),
    ("caf\u00e9 \u00a0\r\n".encode(), "caf\u00e9 \u00a0\r\n".encode(), "caf\u00e9 \u00a0\r\n".encode()),
])
def test_body_canonicalization_edges(body, simple, relaxed):
    assert canonical_body(body, "simple") == simple
    assert canonical_body(body, "relaxed") == relaxed


def test_split_message_fields_folding_and_bare_lf():
    fields, body = split_message(b"From jm@x  Mon Jun 24 17:03:24 2002\nA: 1\nB:\n 2\n\tthree\nC :x\n\nbody\n")
    assert [f.lname for f in fields] == [b"a", b"b", b"c"]
    assert fields[1].raw == b"B:\r\n 2\r\n\tthree\r\n"
    assert body == b"body\r\n"
    assert split_message(b"A: 1\r\n") == ([split_message(b"A: 1\r\n\r\n")[0][0]], b"")
    assert split_message(b"\r\nonly body") == ([], b"only body")


def test_tag_list_syntax():
    assert parse_tags(" a = 1 ;b=x y;\r\n c=\r\n\t3;") == {"a": "1", "b": "x y", "c": "3"}
    assert parse_tags("") == {}
    for bad in ("a=1;;b=2", "a", "1a=2", "a=1; a=2", "a=\x01", "a=1; =2"):
        with pytest.raises(TagListError):
            parse_tags(bad)


def test_strip_b_value_keeps_everything_else():
    raw = b"DKIM-Signature: a=1; bh=xyz;\r\n b=ab\r\n cd; c=2\r\n"
    assert strip_b_value(raw) == b"DKIM-Signature: a=1; bh=xyz;\r\n b=; c=2\r\n"


# ---------------------------------------------------------------- verdicts

def test_changed_body_and_header_fail():
    for r in run_verify(SIGNED.replace(b"hungry", b"angry")):
        assert (r.result, r.reason) == ("fail", "body hash did not verify")
    for r in run_verify(SIGNED.replace(b"dinner", b"lunch")):
        assert (r.result, r.reason) == ("fail", "signature did not verify")


def test_added_from_breaks_the_oversigned_signature():
    message = SIGNED.replace(b"From: Joe", b"From: mallory@evil.example\r\nFrom: Joe")
    assert [r.result for r in run_verify(message)] == ["fail", "fail"]


def test_relaxed_tolerates_white_space_and_refolding():
    message = SIGNED.replace(b"Subject: Is dinner ready?", b"SUBJECT:   Is  dinner\r\n\tready?  ")
    message = message.replace(b"Joe.\r\n", b"Joe.   \r\n\r\n\r\n")
    assert [r.result for r in run_verify(message)] == ["pass", "pass"]


def test_bare_lf_message_verifies_like_crlf():
    assert [r.result for r in run_verify(SIGNED.replace(b"\r\n", b"\n"))] == ["pass", "pass"]


def test_no_signature_gives_no_result():
    assert run_verify(MESSAGE.encode()) == []


def test_key_lookup_outcomes():
    name = "test._domainkey.football.example.com"

    def one(record):
        zone = dict(RFC_ZONE)
        zone[name] = record
        [r] = run_verify(rsa_only(), zone)
        return r

    assert (one(NXDOMAIN).result, one(NXDOMAIN).reason) == ("permerror", "no key for signature")
    assert one({"A": "192.0.2.1"}).reason == "no key for signature"
    assert one(TEMPFAIL).result == "temperror"
    assert one({"TXT": TEMPFAIL}).result == "temperror"
    assert (one({"TXT": "v=DKIM1; k=rsa; p="}).reason) == "key revoked"
    assert one({"TXT": RSA_RECORD + "; s=voice"}).reason == "key is not for email (s=)"
    assert one({"TXT": RSA_RECORD + "; s=voice:email"}).result == "pass"
    assert one({"TXT": RSA_RECORD + "; h=sha1"}).reason == "key h= does not allow sha256"
    assert one({"TXT": RSA_RECORD + "; h=sha1:sha256"}).result == "pass"
    assert one({"TXT": RSA_RECORD.replace("k=rsa", "k=ed25519")}).result == "permerror"
    assert one({"TXT": RSA_RECORD.replace("v=DKIM1", "v=DKIM2")}).result == "permerror"
    assert one({"TXT": "k=rsa; v=DKIM1; " + RSA_RECORD[16:]}).result == "permerror"
    assert one({"TXT": RSA_RECORD.replace("k=rsa", "k=dsa")}).reason == "unknown key type k=dsa"
    testing = one({"TXT": RSA_RECORD + "; t=y"})
    assert testing.result == "pass" and testing.testing
    assert "(test key)" in testing.auth_results()
    # t=s: i= must be exactly d=, not a subdomain
    strict = one({"TXT": RSA_RECORD + "; t=s"})
    assert strict.result == "pass"
    # several records: the first that parses is used
    assert one({"TXT": ["garbage", RSA_RECORD]}).result == "pass"
    # TXT split in character-strings is joined (RFC 6376 3.6.2.2)
    assert one({"TXT": (RSA_RECORD[:100], RSA_RECORD[100:])}).result == "pass"


def test_strict_key_flag_refuses_subdomain_identity():
    signer = dkim.DkimSigner("example.org", "s1", keys.load_private_key(RSA_PEM),
                             identity="joe@mail.example.org")
    message = b"From: joe@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    signed = dkim.sign(message, [signer], now=NOW) + message
    record = "v=DKIM1; p=" + keys.public_key_b64(signer.private_key)
    [r] = run_verify(signed, {"s1._domainkey.example.org": {"TXT": record}})
    assert r.result == "pass" and r.identity == "joe@mail.example.org"
    [r] = run_verify(signed, {"s1._domainkey.example.org": {"TXT": record + "; t=s"}})
    assert (r.result, r.reason) == ("permerror", "key t=s forbids an i= in a subdomain of d=")


SMALL_RSA_PEM = """-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAvB9+mUsl5j9Fo5N0
N2sIRENn393zUluB5bi2bZNr82uwvaU7Jv5By51RIwZ++fSWXiFjS0CRS/OHvWYH
Frx3eQIDAQABAkEAoHrxgY3Ex/Uj0BYC5x+sTqd93lC1uIUNe82l+jXvuhemO5tC
EiywARZ0OJkguar3FuKv9r15H8O/bRTCNFnt8QIhAOXw0sh2gt5KYjCOAcokoUgX
nbUyEJRgop3l0HlwD8fNAiEA0XFudQb8UKwaM95mfqaJzCBThegAhuOS0Y9vpGde
al0CIQCriJ4WAaLbJW5efnGDVRQj7cous+x+ZCCr3hdJoHmFOQIgTv84yV00J/1x
+KRnBlgsW1jKCBTEthv6EZ7HXjw66WUCIHdMpLVhvhA4ks7We7+34+Fk6cK5Voa5
vP7e2sktK2oL
-----END PRIVATE KEY-----
"""   # 512 bits (made with openssl genrsa 512; cryptography will not generate one)


def test_short_rsa_key_is_refused():
    small = keys.load_private_key(SMALL_RSA_PEM)
    record = "v=DKIM1; p=" + keys.public_key_b64(small)
    message = b"From: a@example.org\r\n\r\nhi\r\n"
    # sign with the 512-bit key by hand: our DkimSigner itself refuses such keys
    with pytest.raises(ValueError):
        dkim.DkimSigner("example.org", "s", small)
    signer = dkim.DkimSigner.__new__(dkim.DkimSigner)
    signer.__dict__.update(domain="example.org", selector="s", private_key=small,
                           algorithm="rsa-sha256", headers=("from",), oversign=(),
                           header_canon="relaxed", body_canon="relaxed", identity=None,
                           expire=None)
    signed = dkim.sign(message, [signer], now=NOW) + message
    [r] = run_verify(signed, {"s._domainkey.example.org": {"TXT": record}})
    assert r.result == "permerror" and "512 bits is too short" in r.reason


@pytest.mark.parametrize("record,reason", [
    ("v=DKIM1; k=rsa; p=" + "A" * 9000, "key record is longer than 8192 characters"),
    ("v=DKIM1; k=rsa; p=MIGf!!!", "key p= is not valid base64"),
    ("v=DKIM1; k=rsa; p=" + base64.b64encode(b"not a key").decode(), "key p= is not an RSA public key"),
    ("v=DKIM1; k=ed25519; p=" + base64.b64encode(b"x" * 31).decode(), "Ed25519 key p= must be 32 octets (RFC 8463)"),
    ("v=DKIM1; k=rsa", "key record has no p= tag"),
    ("v=DKIM1; k=rsa;; p=x", "key record syntax: empty tag in tag list"),
    ("v=DKIM1; k=rsa; p=x; p=y", "key record syntax: duplicate tag p"),
    ("\x00\xff", f"key record syntax: tag {chr(0) + chr(255)!r} has no '='"),
])
def test_hostile_key_records(record, reason):
    zone = {"test._domainkey.football.example.com": {"TXT": record}}
    [r] = run_verify(rsa_only(), zone)
    assert (r.result, r.reason) == ("permerror", reason)


@pytest.mark.parametrize("old,new,reason", [
    ("a=rsa-sha256", "a=rsa-sha1", "rsa-sha1 signatures are not accepted (RFC 8301)"),
    ("a=rsa-sha256", "a=rsa-md5", "unknown signature algorithm a=rsa-md5"),
    ("v=1;", "v=2;", "unsupported version v=2"),
    ("v=1;", "", "signature has no v= tag"),
    ("s=test;", "", "signature has no s= tag"),
    ("s=test;", "s=test; s=test;", "signature syntax: duplicate tag s"),
    ("s=test;", "s=te st;", "s= is not a valid selector"),
    ("d=football.example.com;", "d=foot ball;", "d= is not a domain name"),
    ("h=from : to : subject :\r\n date : message-id : from : subject : date",
     "h=to : subject :\r\n date : message-id : subject : date",
     "From is not signed (h= must include From)"),
    ("h=from : to", "h=from :: to", "h= has an empty header field name"),
    ("i=@football.example.com", "i=@other.example.com", "i= domain is not d= or a subdomain of it"),
    ("i=@football.example.com", "i=nobody", "i= domain is not d= or a subdomain of it"),
    ("q=dns/txt", "q=http", "unsupported query method q=http"),
    ("c=relaxed/relaxed", "c=relaxed/fancy", "unknown canonicalization c=relaxed/fancy"),
    ("t=1528637909;", "t=1528637909; x=1528637910;", "signature expired"),
    ("t=1528637909;", "t=1528637909; x=1528637000;", "x= is not after t="),
    ("t=1528637909;", "t=9999999999;", "signature timestamp is in the future"),
    ("t=1528637909;", "t=1528637909; x=soon;", "x= is not a number of at most 12 digits"),
    ("t=1528637909;", "t=99999999999999999999;", "t= is not a number of at most 12 digits"),
    ("t=1528637909;", "t=1528637909; l=-5;", "l= is not a number of at most 76 digits"),
    ("t=1528637909;", "t=1528637909; l=" + "9" * 80 + ";", "l= is not a number of at most 76 digits"),
    ("t=1528637909;", "t=1528637909; l=100000;", "l= is longer than the body"),
    ("bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=", "bh=2jUSOH9N$$", "bh= is not valid base64"),
    (" b=F45dVWDf", " b=!F45dVWDf", "b= is not valid base64"),
    ("t=1528637909;", "t=1528637909;;", "signature syntax: empty tag in tag list"),
    ("q=dns/txt;", "q=dns/txt; 9x=1;", "signature syntax: bad tag name '9x'"),
])
def test_hostile_signature_fields(old, new, reason):
    assert old in RSA_SIG or old in RSA_SIG.replace("\r\n", "")
    [r] = run_verify(rsa_only(old, new))
    assert (r.result, r.reason) == ("permerror", reason)
    assert r.domain in ("football.example.com", "foot ball")


def test_empty_b_is_a_permerror():
    sig = re.sub(r" b=[^;]*$", " b=", RSA_SIG.rstrip("\r\n"), flags=re.S) + "\r\n"
    [r] = run_verify(sig.encode() + MESSAGE.encode())
    assert (r.result, r.reason) == ("permerror", "b= is empty")


def test_body_length_tag():
    key = keys.load_private_key(RSA_PEM)
    zone = {"test._domainkey.football.example.com": {"TXT": RSA_RECORD}}
    canon = canonical_body(split_message(MESSAGE.encode())[1], "relaxed")

    def signed_with_l(length: int, body_extra: bytes = b"") -> bytes:
        # a hand-made l= signature: our signer never emits l=
        bh = base64.b64encode(__import__("hashlib").sha256(canon[:length]).digest()).decode()
        prefix = (f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=football.example.com;"
                  f" s=test; l={length}; h=from:subject; bh={bh};\r\n\tb=").encode()
        fields, _ = split_message(MESSAGE.encode())
        data = dkim.HeaderIndex(fields).signed_data([b"from", b"subject"], "relaxed", prefix)
        b = base64.b64encode(dkim.sign_data("rsa-sha256", key, data)).decode()
        return prefix + b.encode() + b"\r\n" + MESSAGE.encode() + body_extra

    [full] = run_verify(signed_with_l(len(canon)), zone)
    assert full.result == "pass"
    [appended] = run_verify(signed_with_l(len(canon), b"Click http://evil.example/\r\n"), zone)
    assert appended.result == "policy"
    assert appended.reason == "l= leaves 28 body octets unsigned"
    [partial] = run_verify(signed_with_l(10), zone)
    assert partial.result == "policy"
    [zero] = run_verify(signed_with_l(0), zone)
    assert zero.result == "policy"


def test_signatures_over_the_limit_are_neutral():
    message = (RSA_SIG * 3).encode() + MESSAGE.encode()
    results = run_verify(message, max_signatures=2)
    assert [r.result for r in results] == ["pass", "pass", "neutral"]
    assert results[2].reason == "not checked: more than 2 signatures"


def test_a_flood_of_signatures_is_bounded():
    message = (RSA_SIG * 5000).encode() + MESSAGE.encode()
    results = run_verify(message)
    assert len(results) == dkim.MAX_REPORTED
    assert [r.result for r in results[:dkim.MAX_SIGNATURES]] == ["pass"] * dkim.MAX_SIGNATURES
    assert {r.result for r in results[dkim.MAX_SIGNATURES:]} == {"neutral"}


def test_header_b_prefixes_are_unique():
    a = "F45dVWDfMbQDGHJF" + "A" * 40
    b = "F45dVWDfMbQDxxxx" + "A" * 40
    assert dkim.unique_prefixes([a, b, "zzzzzzzzzz", a]) == [a[:13], b[:13], "zzzzzzzz", a[:13]]


def test_random_mutations_never_crash():
    rng = random.Random(6376)
    base = SIGNED
    alphabet = b"=;: \t\r\n\x00\xffabAZ09+/-"
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[pos] = rng.choice(alphabet)
            elif action < 0.7:
                del data[pos:pos + rng.randint(1, 20)]
            else:
                data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        for r in run_verify(bytes(data)):
            assert r.result in VALID


# ---------------------------------------------------------------- signing

def test_sign_output_shape():
    signer = dkim.DkimSigner("Football.Example.COM.", "test", RSA_PEM)
    assert signer.algorithm == "rsa-sha256" and signer.domain == "football.example.com"
    header = dkim.sign(MESSAGE.encode(), [signer], now=1528637909)
    text = header.decode()
    assert text.startswith("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert "d=football.example.com; s=test; t=1528637909;" in text.replace("\r\n\t", " ")
    assert "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=" in text
    assert all(len(line) <= 78 for line in text.split("\r\n"))
    assert text.endswith("\r\n") and text.count("DKIM-Signature:") == 1
    tags = parse_tags(text.split(":", 1)[1])
    assert tags["h"].replace("\r\n\t", "") == "from:subject:date:message-id:to:from"
    # deterministic (RSA PKCS#1 v1.5)
    assert dkim.sign(MESSAGE.encode(), [signer], now=1528637909) == header
    [r] = run_verify(header + MESSAGE.encode())
    assert r.result == "pass"


def test_sign_ed25519_and_rsa_with_options():
    signers = [dkim.DkimSigner("football.example.com", "brisbane", ed_key(), "ed25519-sha256",
                               oversign=("from", "subject", "to"), expire=600),
               dkim.DkimSigner("football.example.com", "test", RSA_PEM,
                               canonicalization=("simple", "simple"),
                               identity="joe@football.example.com")]
    now = int(time.time())
    headers = dkim.sign(MESSAGE.encode(), signers, now=now)
    signed = headers + MESSAGE.encode()
    results = run_verify(signed, now=now)
    assert [r.result for r in results] == ["pass", "pass"]
    assert results[1].identity == "joe@football.example.com"
    assert f"x={now + 600}" in headers.decode()
    assert [r.result for r in run_verify(signed, now=now + 601)] == ["permerror", "pass"]
    # simple/simple: white space matters; relaxed does not
    changed = signed.replace(b"Subject: Is", b"Subject:  Is")
    assert [r.result for r in run_verify(changed, now=now)] == ["pass", "fail"]
    # dkimpy agrees on both
    d = dkimpy.DKIM(signed)
    lookup = dnsfunc_for(RFC_ZONE)
    assert d.verify(idx=0, dnsfunc=lookup) and d.verify(idx=1, dnsfunc=lookup)


def test_signer_refuses_bad_input():
    key = keys.load_private_key(RSA_PEM)
    with pytest.raises(ValueError):
        dkim.DkimSigner("bad domain", "s", key)
    with pytest.raises(ValueError):
        dkim.DkimSigner("example.com", "bad selector", key)
    with pytest.raises(ValueError):
        dkim.DkimSigner("example.com", "s", key, "ed25519-sha256")
    with pytest.raises(ValueError):
        dkim.DkimSigner("example.com", "s", key, headers=("subject",), oversign=())
    with pytest.raises(ValueError):
        dkim.DkimSigner("example.com", "s", key, identity="a@other.example")
    with pytest.raises(ValueError):
        dkim.DkimSigner("example.com", "s", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        dkim.sign(b"Subject: no from\r\n\r\nx\r\n", [dkim.DkimSigner("example.com", "s", key)])


def test_key_helpers():
    ed = keys.generate("ed25519-sha256")
    record = keys.dns_record("example.org", "ed-1", ed)
    assert record.name == "ed-1._domainkey.example.org"
    assert record.value.startswith("v=DKIM1; k=ed25519; p=") and len(record.strings) == 1
    assert dkim.parse_key_record(record.value).key_type == "ed25519"
    big = keys.generate("rsa-sha256", 2048)
    record = keys.dns_record("example.org", "r", big)
    assert record.value.startswith("v=DKIM1; k=rsa; p=MIIBIj")
    assert all(len(s) <= 255 for s in record.strings) and "".join(record.strings) == record.value
    assert record.zone_line().startswith('r._domainkey.example.org. IN TXT ( "v=DKIM1;')
    assert dkim.parse_key_record(record.value).bits == 2048
    assert keys.load_private_key(keys.private_key_pem(big)).private_numbers() == big.private_numbers()
    with pytest.raises(ValueError):
        keys.generate("rsa-sha256", 512)
    with pytest.raises(ValueError):
        keys.generate("dsa")
    assert keys.new_selector("rsa-sha256", [], now=0) == "rsa-19700101"
    assert keys.new_selector("ed25519-sha256", ["ed25519-19700101"], now=0) == "ed25519-19700101-2"
    assert keys.from_domain(b"From: \"A, B\" <a@Example.ORG>\r\n\r\n") == "example.org"
    assert keys.from_domain(b"From: a@x.org, b@y.org\r\n\r\n") is None
    assert keys.from_domain(b"From: a@x.org\r\nFrom: b@x.org\r\n\r\n") is None
    assert keys.from_domain(b"Subject: none\r\n\r\n") is None


# ---------------------------------------------------------------- dkimpy, real messages

def _corpus_sample() -> list[bytes]:
    from bench.micro.mime import CORPUS, load_corpus

    if not CORPUS.exists():
        pytest.fail(f"corpus {CORPUS} is missing (see ../shared/corpora/README.md)")
    messages = [re.sub(rb"\r?\n", b"\r\n", raw) for _, raw in load_corpus()]
    sample = messages[::15]
    folded = [m for m in messages if re.search(rb"\r\n[ \t]", m.split(b"\r\n\r\n", 1)[0])][:20]
    eight_bit = [m for m in messages if re.search(rb"[\x80-\xff]", m.split(b"\r\n\r\n", 1)[-1])][:20]
    empty = [m.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" for m in messages[:10]]
    no_newline = [m.rstrip(b"\r\n") for m in messages[10:15]]
    assert folded and eight_bit
    return sample + folded + eight_bit + empty + no_newline


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    return [m for m in _corpus_sample() if keys.from_domain(m) is not None
            or re.search(rb"(?im)^from:", m)]


@pytest.fixture(scope="module")
def generated():
    rsa_key = keys.generate("rsa-sha256", 2048)
    ed = keys.generate("ed25519-sha256")
    zone = {}
    for selector, key in (("r", rsa_key), ("e", ed)):
        rec = keys.dns_record("example.org", selector, key)
        zone[rec.name] = {"TXT": rec.value}
    return rsa_key, ed, zone


def test_dkimpy_verifies_our_signatures_on_real_mail(corpus, generated):
    rsa_key, ed, zone = generated
    signers = [dkim.DkimSigner("example.org", "r", rsa_key),
               dkim.DkimSigner("example.org", "e", ed),
               dkim.DkimSigner("example.org", "r", rsa_key, canonicalization=("simple", "simple"))]
    lookup = dnsfunc_for(zone)
    disagreements = []
    for message in corpus:
        signed = dkim.sign(message, signers) + message
        d = dkimpy.DKIM(signed)
        verdicts = [d.verify(idx=i, dnsfunc=lookup) for i in range(3)]
        if not all(verdicts):
            disagreements.append((message[:200], verdicts))
    assert len(corpus) > 300
    assert disagreements == []


def test_we_verify_dkimpy_signatures_on_real_mail(corpus, generated):
    rsa_key, ed, zone = generated
    rsa_pem = keys.private_key_pem(rsa_key).encode()
    ed_seed = base64.b64encode(ed.private_bytes_raw())
    res = resolver(zone)
    disagreements = []
    for message in corpus:
        sigs = (dkimpy.sign(message, b"r", b"example.org", rsa_pem,
                            canonicalize=(b"relaxed", b"relaxed"))
                + dkimpy.sign(message, b"e", b"example.org", ed_seed,
                              signature_algorithm=b"ed25519-sha256",
                              canonicalize=(b"relaxed", b"relaxed"))
                + dkimpy.sign(message, b"r", b"example.org", rsa_pem,
                              canonicalize=(b"simple", b"simple")))
        results = asyncio.run(dkim.verify(sigs + message, res))
        if [r.result for r in results] != ["pass"] * 3:
            disagreements.append((message[:200], results))
    assert disagreements == []


def test_both_fail_the_same_tampered_messages(corpus, generated):
    rsa_key, _, zone = generated
    signer = dkim.DkimSigner("example.org", "r", rsa_key)
    lookup = dnsfunc_for(zone)
    res = resolver(zone)
    for message in corpus[:40]:
        signed = dkim.sign(message, [signer]) + message
        tampered = signed + b"appended line\r\n"
        [ours] = asyncio.run(dkim.verify(tampered, res))
        assert ours.result == "fail"
        assert dkimpy.verify(tampered, dnsfunc=lookup) is False
