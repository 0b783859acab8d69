"""The shared limit table (stalwart.limits): rates, concurrency, failures and bans, within
one process and across forked processes sharing the file, as the SMTP workers do."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from stalwart.limits import (AuthPenalty, ClientLimits, LimitTable, Rate, client_key,
                             parse_networks)

FORK = multiprocessing.get_context("fork")


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("text, count, period", [
    ("60/1m", 60, 60.0), ("500/1h", 500, 3600.0), ("10/30s", 10, 30.0), ("3/d", 3, 86400.0),
    (" 5 / 2s ", 5, 2.0), ("1/500ms", 1, 0.5), ("unlimited", 0, 0.0), ("0/1m", 0, 0.0),
])
def test_rate_parse(text, count, period):
    rate = Rate.parse(text)
    assert (rate.count, rate.period) == (count, period)


@pytest.mark.parametrize("text", ["", "60", "x/1m", "60/1y", "-1/1m", "60/0s", 60, None])
def test_rate_parse_rejects(text):
    with pytest.raises(ValueError):
        Rate.parse(text)


def test_rate_str_round_trips():
    for text in ("60/1m", "500/1h", "10/30s", "unlimited"):
        assert str(Rate.parse(text)) == text


def test_client_key_groups_ipv6_by_64_and_unmaps_ipv4():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:a::1") == client_key("2001:db8:1:2:b::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("not an ip") == "not an ip"


def test_parse_networks_names_the_bad_item():
    assert len(parse_networks(["127.0.0.0/8", "::1", "192.0.2.7"])) == 3
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks(["10.0.0.0/33"])


# ------------------------------------------------------------------ one process
def test_gcra_allows_burst_then_refuses_then_refills():
    t = LimitTable(None, 64)
    rate = Rate(3, 60.0)
    assert [t.hit("c", "k", rate, now=1000.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = t.hit("c", "k", rate, now=1000.0)
    assert wait == pytest.approx(20.0)                 # one token comes back every 20 s
    assert t.hit("c", "other", rate, now=1000.0) == 0.0  # other keys are independent
    assert t.hit("c", "k", rate, now=1019.0) > 0
    assert t.hit("c", "k", rate, now=1020.0) == 0.0
    assert t.hit("c", "k", rate, now=1020.0) > 0
    # After a whole period of silence the bucket is full again.
    assert [t.hit("c", "k", rate, now=1100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert t.hit("c", "k", Rate(0, 0), now=1100.0) == 0.0   # unlimited never counts


def test_concurrency_acquire_release():
    t = LimitTable(None, 64)
    assert t.acquire("ip", 2) and t.acquire("ip", 2)
    assert not t.acquire("ip", 2)
    assert t.connections("ip") == 2
    t.release("ip")
    assert t.acquire("ip", 2)
    t.release("ip")
    t.release("ip")
    t.release("ip")                                    # one too many: harmless
    assert t.connections("ip") == 0


def test_failures_window_and_ban():
    t = LimitTable(None, 64)
    assert [t.add_failure("ip", 60.0, now=100.0 + i) for i in range(3)] == [1, 2, 3]
    assert t.failures("ip", now=150.0) == 3
    assert t.failures("ip", now=161.0) == 0            # the window (from the first) is over
    assert t.add_failure("ip", 60.0, now=161.0) == 1
    t.ban("ip", 30.0, now=200.0)
    assert t.banned("ip", now=210.0) == pytest.approx(20.0)
    assert t.banned("ip", now=231.0) == 0.0
    assert t.failures("ip", now=200.0) == 0            # a ban starts the count again


def test_full_window_evicts_the_soonest_expiring_rate():
    t = LimitTable(None, 32)                           # one probe window: the whole table
    rate = Rate(1, 60.0)
    for i in range(32):
        assert t.hit("c", f"k{i}", rate, now=1000.0 + i) == 0.0
    assert t.hit("c", "new", rate, now=1040.0) == 0.0  # evicted k0, the oldest
    assert t.hit("c", "new", rate, now=1040.0) > 0     # and is counted itself
    assert t.hit("c", "k0", rate, now=1040.0) == 0.0   # k0 was forgotten (fail open)


def test_client_limits_policy():
    t = LimitTable(None, 256)
    limits = ClientLimits(t, exempt=parse_networks(["127.0.0.0/8"]), concurrency=1,
                          connection_rate=Rate(2, 60.0), message_rate=Rate(1, 60.0),
                          account_message_rate=Rate(2, 3600.0),
                          auth=AuthPenalty(delay_after=2, delay=1.0, max_delay=3.0,
                                           ban_after=4, window=600.0, ban_time=60.0))
    assert limits.connect("192.0.2.1") is None
    refusal = limits.connect("192.0.2.1")
    assert refusal.reason == "connections"
    limits.disconnect("192.0.2.1")
    assert limits.connect("192.0.2.1").reason == "connection-rate"
    for _ in range(5):                                 # loopback is exempt
        assert limits.connect("127.0.0.1") is None
    assert limits.message("192.0.2.1") is None
    assert limits.message("192.0.2.1").reason == "message-rate"
    assert limits.message("127.0.0.1", "jane") is None
    assert limits.message("127.0.0.1", "jane") is None
    refusal = limits.message("127.0.0.1", "jane")      # accounts are limited everywhere
    assert refusal.reason == "account-message-rate" and refusal.retry_after > 0
    assert [limits.auth_failed("192.0.2.9") for _ in range(4)] == [
        (0.0, False), (1.0, False), (2.0, False), (3.0, True)]
    assert limits.banned("192.0.2.9") > 0
    assert limits.connect("192.0.2.9").reason == "banned"
    assert limits.auth_failed("127.0.0.1") == (0.0, False)


# ------------------------------------------------------------------ across processes
def _hammer(path, n, queue):
    t = LimitTable(path, 1024)
    allowed = sum(1 for _ in range(n) if t.hit("c", "shared", Rate(50, 3600.0)) == 0.0)
    queue.put(allowed)


def test_rate_is_shared_by_processes(tmp_path):
    path = tmp_path / "limits.table"
    LimitTable(path, 1024).close()
    queue = FORK.Queue()
    procs = [FORK.Process(target=_hammer, args=(path, 40, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    total = sum(queue.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(10)
    # 160 attempts, 50 allowed in the hour whatever process made them (not 50 each).
    assert total == 50


def _hold(path, n, ready, release):
    t = LimitTable(path, 1024)
    for _ in range(n):
        assert t.acquire("ip", 0)
    ready.set()
    if release is None:
        os._exit(0)                  # a killed worker: its connections are never released
    release.wait(30)
    for _ in range(n):
        t.release("ip")


def test_concurrency_counts_other_processes_and_forgets_dead_ones(tmp_path):
    path = tmp_path / "limits.table"
    table = LimitTable(path, 1024)
    ready, release = FORK.Event(), FORK.Event()
    alive = FORK.Process(target=_hold, args=(path, 2, ready, release))
    alive.start()
    assert ready.wait(30)
    ready.clear()
    dead = FORK.Process(target=_hold, args=(path, 3, ready, None))
    dead.start()
    assert ready.wait(30)
    dead.join(10)
    assert table.connections("ip") == 5                # the dead one's are still recorded
    assert table.acquire("ip", 4)                      # refusing checks pids: 2 live + 1
    assert table.connections("ip") == 3
    assert table.acquire("ip", 4)
    assert not table.acquire("ip", 4)
    release.set()
    alive.join(10)
    assert table.connections("ip") == 2                # ours
    table.close()


def test_new_epoch_forgets_connections_but_keeps_bans(tmp_path):
    path = tmp_path / "limits.table"
    t = LimitTable(path, 256, epoch=1)
    t.acquire("ip", 0)
    t.ban("bad", 600.0)
    t.close()
    t = LimitTable(path, 256, epoch=2)                 # a restarted daemon
    assert t.connections("ip") == 0
    assert t.banned("bad") > 0
    t.close()
    t = LimitTable(path, 512, epoch=2)                 # another size: a fresh table
    assert t.banned("bad") == 0.0
    t.close()


def test_corrupt_file_is_reinitialised(tmp_path):
    path = tmp_path / "limits.table"
    path.write_bytes(b"garbage" * 100)
    t = LimitTable(path, 64)
    assert t.hit("c", "k", Rate(1, 60.0)) == 0.0
    assert t.hit("c", "k", Rate(1, 60.0)) > 0
    t.close()
