"""The store process for real: RocksDB, group commit, several client processes, SIGKILL.

Each test runs ``python -m stalwart.store.server`` in a temp directory and drives it from
other processes through the Store API (IPC for writes, a RocksDB secondary for reads).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stalwart.store import Store, StoreError

HERE = Path(__file__).resolve().parent
LOAD = HERE / "_store_load.py"


class StoreProcess:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stalwart.store.server", "--data", str(self.base / "data"),
             "--blobs", str(self.base / "blobs"), "--socket", str(self.base / "store.sock")],
            stdout=subprocess.PIPE, stderr=open(self.base / "store.log", "ab"))
        line = self.proc.stdout.readline()
        assert line == b"ready\n", f"store did not start: {line!r}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(30)
        return self.proc.returncode if self.proc else 0


@pytest.fixture
def store_proc(tmp_path):
    sp = StoreProcess(tmp_path)
    sp.start()
    yield sp
    sp.stop()


async def _connect(base: Path, name: str) -> Store:
    return await Store.connect(base / "data", base / "blobs", base / "store.sock",
                               base / "sec" / name, connect_timeout=30)


async def _account(base: Path) -> int:
    s = await _connect(base, "setup")
    await s.create_domain("example.org")
    acc = (await s.create_account("alice", emails=["alice@example.org"]))["id"]
    await s.close()
    return acc


def _load(base: Path, acc: int, tag: str, count: int, concurrency: int, out: Path):
    return subprocess.Popen([sys.executable, str(LOAD), str(base), str(acc), tag, str(count),
                             str(concurrency), str(out)], stderr=subprocess.PIPE)


def _read_acks(out: Path) -> list[tuple[str, int, int, int]]:
    acks = []
    for line in out.read_text().splitlines():
        tag, seq, eid, uid = line.split()
        acks.append((tag, int(seq), int(eid), int(uid)))
    return acks


def _check_acks(base: Path, acks, tags) -> None:
    """Every acknowledged append is there, with its UID and content; UIDs strictly increase
    per client in acknowledgement order and are never shared."""
    async def verify():
        s = await _connect(base, "verify")
        uids = dict((uid, eid) for uid, eid in s.mailbox_uids(1, 1))
        for tag, seq, eid, uid in acks:
            assert uids.get(uid) == eid, f"acknowledged {tag}-{seq} (uid {uid}) is missing"
            body = s.read_message(1, eid)
            assert body.endswith(f"message {tag}-{seq}\r\n".encode())
        await s.close()
    asyncio.run(verify())
    assert len({uid for *_, uid in acks}) == len(acks)
    for tag in tags:
        mine = [uid for t, _, _, uid in acks if t == tag]
        assert mine == sorted(mine) and len(set(mine)) == len(mine)


def test_concurrent_processes_get_unique_increasing_uids(store_proc, tmp_path):
    acc = asyncio.run(_account(tmp_path))
    tags = ["p0", "p1", "p2", "p3"]
    procs = [_load(tmp_path, acc, t, 150, 16, tmp_path / f"{t}.acks") for t in tags]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read().decode()
    acks = [a for t in tags for a in _read_acks(tmp_path / f"{t}.acks")]
    assert len(acks) == 600
    _check_acks(tmp_path, acks, tags)
    # No gaps either: nothing failed, so UIDs are exactly 1..600.
    assert sorted(uid for *_, uid in acks) == list(range(1, 601))


def test_sigkill_of_the_store_loses_no_acknowledged_operation(store_proc, tmp_path):
    acc = asyncio.run(_account(tmp_path))
    tags = ["k0", "k1", "k2"]
    procs = [_load(tmp_path, acc, t, 400, 8, tmp_path / f"{t}.acks") for t in tags]
    kills = 0
    deadline = time.monotonic() + 120
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.3)
        if kills < 6:
            store_proc.kill()
            kills += 1
            store_proc.start()
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read().decode()
    assert kills >= 3
    acks = [a for t in tags for a in _read_acks(tmp_path / f"{t}.acks")]
    assert len({(t, s) for t, s, *_ in acks}) == 1200
    store_proc.kill()          # and once more at the very end
    store_proc.start()
    _check_acks(tmp_path, acks, tags)


def test_read_your_writes_and_events_across_processes(store_proc, tmp_path):
    acc = asyncio.run(_account(tmp_path))

    async def t():
        writer = await _connect(tmp_path, "writer")
        watcher = await Store.connect(tmp_path / "data", tmp_path / "blobs",
                                      tmp_path / "store.sock", tmp_path / "sec" / "watcher",
                                      subscribe=True)
        events = asyncio.Queue()
        watcher.subscribe(lambda a, change, types: events.put_nowait((a, change)))
        for i in range(100):
            r = await writer.append(acc, 1, b"Subject: x\r\n\r\n%d\r\n" % i)
            # The writer's own secondary sees its write at once, without waiting.
            assert writer.get_email(acc, r["id"])["mb"] == {1: r["uid"]}
            a, change = await asyncio.wait_for(events.get(), 5)
            assert a == acc and change >= r["modseq"]
            # The watcher, once told, reads the new state.
            assert watcher.get_email(acc, r["id"]) is not None
            assert watcher.get_mailbox(acc, 1)["uidnext"] == r["uid"] + 1
        await writer.close()
        await watcher.close()
    asyncio.run(t())


def test_errors_over_ipc_change_nothing_and_the_connection_survives(store_proc, tmp_path):
    acc = asyncio.run(_account(tmp_path))

    async def t():
        s = await _connect(tmp_path, "errors")
        before = s.account_state(acc)
        for call in (s.create_domain("example.org"), s.create_mailbox(acc, "Inbox"),
                     s.expunge(acc, 9999, [1]), s._writer.call("nope", {}),
                     s._writer.call("append", {"account": acc, "mailbox": 1,
                                               "blob": b"\0" * 32, "size": 1})):
            with pytest.raises(StoreError):
                await call
        assert s.account_state(acc) == before
        assert (await s.create_mailbox(acc, "Fine"))["name"] == "Fine"
        await s.close()
    asyncio.run(t())


def test_garbage_on_the_socket_closes_only_that_connection(store_proc, tmp_path):
    import socket as _socket

    for junk in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x03abc", b"\x00\x00\x00\x01\xc1",
                 b"\x00\x00\x00\x02\x91\x01"):
        c = _socket.socket(_socket.AF_UNIX)
        c.connect(str(tmp_path / "store.sock"))
        c.sendall(junk)
        c.settimeout(5)
        assert c.recv(10) == b""  # the server closed this connection
        c.close()
    assert store_proc.proc.poll() is None
    asyncio.run(_account(tmp_path))  # still serving


def test_sigterm_flushes_and_exits_cleanly(store_proc, tmp_path):
    acc = asyncio.run(_account(tmp_path))
    assert store_proc.stop() == 0
    store_proc.start()

    async def t():
        s = await _connect(tmp_path, "after")
        assert s.get_account("alice")["id"] == acc
        await s.close()
    asyncio.run(t())


def test_scheduler_purges_unreferenced_blobs_and_dead_secondaries(store_proc, tmp_path):
    from stalwart import scheduler
    from stalwart.store.blobs import BlobStore

    acc = asyncio.run(_account(tmp_path))
    blobs = BlobStore(tmp_path / "blobs")

    async def t():
        s = await _connect(tmp_path, "purge")
        kept = await s.append(acc, 1, b"Subject: kept\r\n\r\nkept\r\n")
        gone = await s.append(acc, 1, b"Subject: gone\r\n\r\ngone\r\n")
        orphan = blobs.put(b"never committed")
        await s.expunge(acc, 1, [gone["uid"]])
        dead = tmp_path / "run" / "secondary" / "999999999"
        dead.mkdir(parents=True)
        alive = tmp_path / "run" / "secondary" / str(os.getpid())
        alive.mkdir(parents=True)
        stop = asyncio.Event()
        (tmp_path / "run" / "store.sock").symlink_to(tmp_path / "store.sock")
        task = asyncio.ensure_future(scheduler.run(tmp_path / "run", stop, blob_period=3600,
                                                   blob_grace=0, clean_period=3600,
                                                   first_delay=0.05))
        await asyncio.sleep(1.0)
        stop.set()
        await task
        kept_hash = s.get_email(acc, kept["id"])["blob"]
        assert blobs.exists(kept_hash)
        assert not blobs.exists(orphan)
        from stalwart.store.blobs import blob_hash
        assert not blobs.exists(blob_hash(b"Subject: gone\r\n\r\ngone\r\n"))
        assert not dead.exists() and alive.exists()
        assert s.read_message(acc, kept["id"]).endswith(b"kept\r\n")
        await s.close()
    asyncio.run(t())
