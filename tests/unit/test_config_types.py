"""Value types, keys and secrets of the config layer, as tables of input -> result."""

from __future__ import annotations

import pytest

from stalwart.config import REGISTRY, hash_secret, is_hashed, verify_secret
from stalwart.config.keys import format_key, parse_key
from stalwart.config.macros import expand
from stalwart.config.types import (Bool, Duration, Enum, Int, List, Size, SocketAddress,
                                   String, format_duration)

VALID = [
    (Duration(), "30s", 30.0), (Duration(), "500ms", 0.5), (Duration(), "5m", 300.0),
    (Duration(), "1h", 3600.0), (Duration(), "2d", 172800.0), (Duration(), "1w", 604800.0),
    (Duration(), "1.5s", 1.5), (Duration(), 2500, 2.5), (Duration(), "2500", 2.5),
    (Duration(), "10S", 10.0),
    (Size(), "50mb", 50 << 20), (Size(), "1gb", 1 << 30), (Size(), "512kb", 512 << 10),
    (Size(), "100b", 100), (Size(), 4096, 4096), (Size(), "1.5k", 1536), (Size(), "2TB", 2 << 40),
    (SocketAddress(), "0.0.0.0:25", ("0.0.0.0", 25)),
    (SocketAddress(), "[::1]:143", ("::1", 143)),
    (SocketAddress(), "[::]:65535", ("::", 65535)),
    (SocketAddress(), "[2001:DB8::1]:993", ("2001:db8::1", 993)),
    (Int(min=1), "7", 7), (Int(), -3, -3),
    (Bool(), True, True), (Bool(), "false", False), (Bool(), " TRUE ", True),
    (Enum(("text", "json")), "JSON", "json"),
    (String(), "x", "x"), (String(allow_empty=True), "", ""),
    (List(String()), "one", ("one",)), (List(Int()), [1, "2"], (1, 2)),
]


@pytest.mark.parametrize("vtype, raw, expected", VALID,
                         ids=[f"{t.name}-{r!r}" for t, r, _ in VALID])
def test_valid_values(vtype, raw, expected):
    assert vtype.parse(raw) == expected


INVALID = [
    (Duration(), "30 seconds", "expected a duration"),
    (Duration(), -1, "cannot be negative"), (Duration(), True, "expected a duration"),
    (Duration(min=1.0), "10ms", "must be at least 1s"),
    (Size(), "50 MiB", "expected a size"), (Size(), -1, "cannot be negative"),
    (Size(), 1.5, "expected a size"),
    (SocketAddress(), "::1:25", "expected HOST:PORT"),
    (SocketAddress(), "mail:25", "is not an IP address"),
    (SocketAddress(), 25, "expected an address"),
    (Int(), True, "expected an integer"), (Int(), "1.5", "expected an integer"),
    (Int(max=10), 11, "must be at most 10"),
    (Bool(), 1, "expected true or false"), (Bool(), "yes", "expected true or false"),
    (Enum(("a", "b")), 1, "expected one of a, b"),
    (String(), "  ", "must not be empty"), (String(), 5, "expected a string"),
    (List(Int(), min_items=1), [], "needs at least 1"),
    (List(Int()), [1, "x"], "item 2: expected an integer"),
]


@pytest.mark.parametrize("vtype, raw, message", INVALID,
                         ids=[f"{t.name}-{r!r}" for t, r, _ in INVALID])
def test_invalid_values(vtype, raw, message):
    with pytest.raises(ValueError, match=message):
        vtype.parse(raw)


def test_bare_integer_string_duration_is_milliseconds():
    assert Duration().parse("30") == 0.03


@pytest.mark.parametrize("seconds, text", [(30, "30s"), (60, "1m"), (90, "90s"),
                                           (0.25, "250ms"), (86400, "1d"), (3600 * 36, "36h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert Duration().parse(text) == seconds


@pytest.mark.parametrize("text, key", [
    ("server.listener.smtp.bind", ("server", "listener", "smtp", "bind")),
    ('certificate."mail.example.com".cert', ("certificate", "mail.example.com", "cert")),
    ('directory."memory".type', ("directory", "memory", "type")),
    ('a."say \\"hi\\"".b', ("a", 'say "hi"', "b")),
])
def test_keys_round_trip(text, key):
    assert parse_key(text) == key
    assert parse_key(format_key(key)) == key


@pytest.mark.parametrize("text", ["a..b", "", "a.", 'a."b', 'a."b"c'])
def test_malformed_keys(text):
    with pytest.raises(ValueError):
        parse_key(text)


def test_macro_expansion(tmp_path):
    (tmp_path / "crlf.txt").write_bytes(b"line\r\n")
    (tmp_path / "two.txt").write_text("a\n\n")
    env = {"A": "1", "EMPTY": ""}
    assert expand("%{file:crlf.txt}%", base=tmp_path, env=env) == "line"
    assert expand("%{file:two.txt}%", base=tmp_path, env=env) == "a\n"
    assert expand("x%{env:A}%y%{env:EMPTY}%z", base=tmp_path, env=env) == "x1yz"
    assert expand("100%{ not a macro", base=tmp_path, env=env) == "100%{ not a macro"
    # replacement text is not expanded again
    assert expand("%{env:B}%", base=tmp_path, env={"B": "%{env:A}%"}) == "%{env:A}%"
    with pytest.raises(ValueError, match="is a directory"):
        expand(f"%{{file:{tmp_path}}}%", base=tmp_path, env=env)


def test_secrets():
    hashed = hash_secret("correct horse")
    assert is_hashed(hashed) and not is_hashed("correct horse")
    assert verify_secret(hashed, "correct horse")
    assert not verify_secret(hashed, "wrong")
    assert verify_secret("plain", "plain") and not verify_secret("plain", "Plain")
    assert not verify_secret("$argon2id$garbage", "x")


def test_every_declaration_is_documented_and_typed():
    assert len({s.pattern for s in REGISTRY}) == len(REGISTRY.settings)
    for setting in REGISTRY:
        assert setting.doc and setting.section in REGISTRY.sections
        assert not (setting.required and setting.default is not None), setting.key


def test_declaring_twice_or_with_a_bad_default_fails():
    with pytest.raises(ValueError, match="declared twice"):
        REGISTRY.declare("server.hostname", String(), "again", section="server")
    with pytest.raises(ValueError):
        REGISTRY.declare("server.new-one", Duration(), "bad default", section="server",
                         default="soon")
    assert REGISTRY.find(("server", "new-one")) is None
