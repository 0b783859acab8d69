"""The queue.* and resolver.* declarations: defaults of the issue, routes, and the errors
an operator sees for a bad route or name server."""

from __future__ import annotations

import pytest

from stalwart.config import ConfigError, loads
from stalwart.queue import DEFAULT_RETRY, QueueSettings, Route
from stalwart.queue.server import resolver_from_config


def test_defaults_are_the_issues_schedule():
    settings = QueueSettings.from_config(loads("[server]\nhostname = \"mx.example.org\"\n"))
    assert settings.retry == DEFAULT_RETRY == (120, 300, 600, 900, 1800, 3600, 7200)
    assert settings.expire == 5 * 86400
    assert settings.notify_delay == 4 * 3600
    assert (settings.concurrency, settings.max_connections_per_host) == (32, 8)
    assert (settings.prefer_ipv6, settings.ipv4, settings.ipv6) == (True, True, True)
    assert (settings.mx_port, settings.poll_interval) == (25, 1.0)
    assert settings.hostname == "mx.example.org"
    assert settings.routes == {"*": Route()}


def test_routes_and_overrides():
    config = loads("""
[queue]
retry = ["30s", "1m"]
expire = "2d"
notify-delay = 0
mx-port = 2525
ipv6 = false

[queue.route.smarthost]
type = "relay"
domains = ["*"]
host = "smtp.provider.test"
port = 587
tls = "starttls"
auth.username = "me"
auth.secret = "pw"

[queue.route.internal]
type = "mx"
domains = ["Corp.Example.", ".corp.example"]
""")
    settings = QueueSettings.from_config(config)
    assert settings.retry == (30.0, 60.0) and settings.expire == 2 * 86400
    assert settings.notify_delay is None                      # 0 turns delay DSNs off
    assert settings.mx_port == 2525 and settings.ipv6 is False
    relay = Route(kind="relay", host="smtp.provider.test", port=587, tls="starttls",
                  username="me", password="pw")
    assert settings.route_for("anywhere.test") == relay
    assert settings.route_for("corp.example").kind == "mx"
    assert settings.route_for("a.b.corp.example").kind == "mx"


@pytest.mark.parametrize("text,key,message", [
    ('[queue.route.r]\ntype = "relay"\ndomains = ["*"]\n', "queue.route.r",
     "a relay route needs a host"),
    ('[queue.route.a]\ntype = "mx"\ndomains = ["x.test"]\n'
     '[queue.route.b]\ntype = "local"\ndomains = ["X.test"]\n', "queue.route.b.domains",
     "already routed by queue.route.a"),
])
def test_route_errors_name_the_key(text, key, message):
    with pytest.raises(ConfigError) as exc:
        QueueSettings.from_config(loads(text))
    assert exc.value.key == key and message in exc.value.message


@pytest.mark.parametrize("text,message", [
    ('[queue.route.r]\ndomains = ["*"]\n', "queue.route.r.type: is required"),
    ('[queue.route.r]\ntype = "smarthost"\ndomains = ["*"]\n', "unknown value 'smarthost'"),
    ('[queue.route.r]\ntype = "mx"\ndomains = []\n', "needs at least 1 item"),
    ('[queue]\nretry = []\n', "needs at least 1 item"),
    ('[queue]\nconcurrency = 0\n', "must be at least 1"),
    ('[resolver]\nnameservers = ["dns.google"]\n', "is not an IP address"),
    ('[resolver]\nnameservers = ["127.0.0.1:70000"]\n', "out of range"),
])
def test_bad_values_are_refused_at_load(text, message):
    with pytest.raises(ConfigError) as exc:
        loads(text)
    assert message in str(exc.value)


def test_resolver_settings_reach_the_backend():
    config = loads('[resolver]\nnameservers = ["127.0.0.1:5353", "[::1]:53", "192.0.2.53"]\n'
                   'timeout = "2s"\nlifetime = "7s"\ncache-size = 50\n')
    resolver = resolver_from_config(config)
    inner = resolver.backend._resolver
    assert [(ns.address, ns.port) for ns in inner.nameservers] == [
        ("127.0.0.1", 5353), ("::1", 53), ("192.0.2.53", 53)]
    assert (inner.timeout, inner.lifetime) == (2.0, 7.0)
    assert resolver.cache.max_entries == 50
