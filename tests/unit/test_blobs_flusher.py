"""The blob flusher (stalwart/store/blobs.py): concurrent puts are synced in groups, a
waiter is released only once its file and directory entries are synced, and an fsync error
fails exactly the puts it concerns. fsync is injected, so every call is seen."""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import itertools
import os
import stat
import threading
from pathlib import Path

import pytest

from stalwart.store.blobs import BlobStore, blob_hash


class Recorder:
    """An fsync that records what it synced and can hold or fail chosen calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: list[int] = []            # inode numbers of synced regular files
        self.dirs: list[str] = []             # paths of synced directories
        self.hold = None                      # predicate(fd) -> threading.Event to wait on
        self.fail = None                      # predicate(fd) -> True: raise EIO

    def __call__(self, fd: int) -> None:
        if self.hold is not None:
            gate = self.hold(fd)
            if gate is not None:
                assert gate.wait(10), "test gate never opened"
        if self.fail is not None and self.fail(fd):
            raise OSError(errno.EIO, "injected fsync failure")
        os.fsync(fd)
        st = os.fstat(fd)
        with self.lock:
            if stat.S_ISDIR(st.st_mode):
                self.dirs.append(os.readlink(f"/proc/self/fd/{fd}"))
            else:
                self.files.append(st.st_ino)


def same_shard(count: int, prefix: bytes = b"m") -> list[bytes]:
    """``count`` distinct payloads whose hashes share one shard directory (ab/cd)."""
    want = None
    found = []
    for i in itertools.count():
        data = prefix + str(i).encode()
        shard = hashlib.sha256(data).hexdigest()[:4]
        if want is None:
            want = shard
        if shard == want:
            found.append(data)
            if len(found) == count:
                return found


def shard_of(store: BlobStore, data: bytes) -> str:
    return str(store.path(blob_hash(data)).parent)


def is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def aio(fn):
    """Run an async test on a fresh event loop."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))
    return run


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def store(tmp_path: Path, rec: Recorder) -> BlobStore:
    return BlobStore(tmp_path / "blobs", fsync=rec, sync_threads=4)


async def _queued_behind_a_held_put(store: BlobStore, rec: Recorder, payloads: list[bytes]):
    """Start one put whose file fsync is held, queue ``payloads`` behind it, release it;
    return (the held put's result, the payloads' results)."""
    gate = threading.Event()
    entered = threading.Event()
    blocker = b"blocker" * 100

    def hold(fd):
        if not is_dir(fd) and os.fstat(fd).st_size == len(blocker):
            entered.set()
            return gate
        return None
    rec.hold = hold
    first = asyncio.ensure_future(store.put_async(blocker))
    assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
    rest = [asyncio.ensure_future(store.put_async(p)) for p in payloads]
    await asyncio.sleep(0.05)
    assert not any(f.done() for f in rest)    # all waiting behind the held batch
    gate.set()
    return await first, await asyncio.gather(*rest, return_exceptions=True)


@aio
async def test_concurrent_puts_are_synced_as_one_batch(store, rec):
    payloads = [os.urandom(3000) for _ in range(20)] + same_shard(5)
    _, results = await _queued_behind_a_held_put(store, rec, payloads)
    assert results == [blob_hash(p) for p in payloads]
    for p in payloads:
        assert store.get(blob_hash(p)) == p
    # Two rounds (the held put, then everything queued meanwhile), not one per put.
    assert store.batches == 2
    assert len(rec.files) == len(payloads) + 1
    # The five blobs of one shard cost one fsync of that directory, not five.
    assert rec.dirs.count(shard_of(store, payloads[-1])) == 1
    # The held put synced its shard, the shard's parent and the root; the second round
    # syncs every directory it touched exactly once.
    second = rec.dirs[3:]
    assert len(second) == len(set(second))
    assert os.listdir(store.root / "tmp") == []


@aio
async def test_waiter_released_only_after_its_file_and_directory(store, rec):
    data = os.urandom(4000)
    shard = shard_of(store, data)
    file_gate, dir_gate = threading.Event(), threading.Event()

    def hold(fd):
        if not is_dir(fd):
            return file_gate
        if os.readlink(f"/proc/self/fd/{fd}") == shard:
            return dir_gate
        return None
    rec.hold = hold
    put = asyncio.ensure_future(store.put_async(data))
    await asyncio.sleep(0.1)
    assert not put.done()                     # file fsync still running
    file_gate.set()
    for _ in range(100):                      # until the file is renamed into its shard
        if store.path(blob_hash(data)).exists():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert store.path(blob_hash(data)).exists()
    assert not put.done()                     # its name is not durable yet
    assert shard not in rec.dirs
    dir_gate.set()
    assert await put == blob_hash(data)
    ino = store.path(blob_hash(data)).stat().st_ino
    assert ino in rec.files and shard in rec.dirs
    # A new shard: its entry in the parent and the parent's in the root are synced too.
    assert str(Path(shard).parent) in rec.dirs and str(store.root) in rec.dirs


@aio
async def test_file_fsync_error_fails_only_that_put(store, rec):
    bad = os.urandom(777)
    good = [os.urandom(1000 + i) for i in range(8)]
    rec.fail = lambda fd: not is_dir(fd) and os.fstat(fd).st_size == len(bad)
    _, results = await _queued_behind_a_held_put(store, rec, good[:4] + [bad] + good[4:])
    assert isinstance(results[4], OSError) and results[4].errno == errno.EIO
    assert results[:4] + results[5:] == [blob_hash(g) for g in good]
    assert not store.exists(blob_hash(bad))
    assert all(store.get(blob_hash(g)) == g for g in good)
    assert os.listdir(store.root / "tmp") == []   # the failed temp file is gone
    # The store stays usable: the same bytes go through once the disk is fine again.
    rec.fail = None
    assert await store.put_async(bad) == blob_hash(bad)
    assert store.get(blob_hash(bad)) == bad


@aio
async def test_directory_fsync_error_fails_the_blobs_in_that_directory(store, rec):
    in_bad = same_shard(3, prefix=b"bad-dir ")
    elsewhere = [os.urandom(2000) for _ in range(6)]
    elsewhere = [e for e in elsewhere if shard_of(store, e) != shard_of(store, in_bad[0])]
    bad_dir = shard_of(store, in_bad[0])
    rec.fail = lambda fd: is_dir(fd) and os.readlink(f"/proc/self/fd/{fd}") == bad_dir
    _, results = await _queued_behind_a_held_put(store, rec, in_bad + elsewhere)
    assert all(isinstance(r, OSError) for r in results[:3])
    assert results[3:] == [blob_hash(e) for e in elsewhere]
    # A failed directory sync is retried by the next put into that shard.
    rec.fail = None
    assert await store.put_async(in_bad[0]) == blob_hash(in_bad[0])
    assert bad_dir in rec.dirs


@aio
async def test_stored_blob_refreshes_mtime_and_syncs_its_directory(store, rec):
    data = os.urandom(500)
    digest = await store.put_async(data)
    path = store.path(digest)
    os.utime(path, (1, 1))
    files_before, dirs_before = len(rec.files), len(rec.dirs)
    assert await store.put_async(data) == digest
    assert path.stat().st_mtime > 1               # the purger's grace period restarts
    assert len(rec.files) == files_before         # nothing to write
    assert rec.dirs[dirs_before:] == [str(path.parent)]


@aio
async def test_same_bytes_twice_in_one_batch(store, rec):
    data = os.urandom(600)
    _, results = await _queued_behind_a_held_put(store, rec, [data, data, data])
    assert results == [blob_hash(data)] * 3
    assert len(rec.files) == 2                    # the held put and one copy


def test_blocking_put_from_threads(tmp_path, rec):
    store = BlobStore(tmp_path / "blobs", fsync=rec)
    payloads = [os.urandom(100 + i) for i in range(30)]
    out: dict[int, bytes] = {}

    def worker(i):
        out[i] = store.put(payloads[i])
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [out[i] for i in range(30)] == [blob_hash(p) for p in payloads]
    assert all(store.get(blob_hash(p)) == p for p in payloads)
    assert store.batches <= 30


def test_writer_commit_is_durable_and_named(tmp_path, rec):
    store = BlobStore(tmp_path / "blobs", fsync=rec)
    w = store.writer()
    w.write(b"hello ")
    w.write(b"world")
    digest = w.commit()
    assert digest == blob_hash(b"hello world")
    assert store.get(digest) == b"hello world"
    assert str(store.path(digest).parent) in rec.dirs


@aio
async def test_cancelled_waiter_does_not_break_the_flusher(store, rec):
    gate = threading.Event()
    rec.hold = lambda fd: gate if not is_dir(fd) else None
    put = asyncio.ensure_future(store.put_async(b"x" * 10))
    await asyncio.sleep(0.05)
    put.cancel()
    gate.set()
    rec.hold = None
    assert await store.put_async(b"y" * 10) == blob_hash(b"y" * 10)
    assert store.exists(blob_hash(b"x" * 10))     # written anyway: harmless orphan


def test_idle_flusher_ends_and_a_new_put_starts_another(tmp_path, rec, monkeypatch):
    from stalwart.store import blobs

    monkeypatch.setattr(blobs, "IDLE_EXIT", 0.1)
    store = BlobStore(tmp_path / "blobs", fsync=rec)
    assert store.put(b"first") == blob_hash(b"first")
    thread = store._flusher._thread
    thread.join(5)
    assert not thread.is_alive() and store._flusher.stopped
    assert store.put(b"second") == blob_hash(b"second")
    assert store._flusher._thread is not thread and store._flusher._thread.is_alive()
    assert store.get(blob_hash(b"second")) == b"second"


def test_unexpected_error_fails_the_batch_and_the_flusher_goes_on(tmp_path, rec):
    store = BlobStore(tmp_path / "blobs", fsync=rec)
    real = store._flush_batch
    calls = []

    def broken_once(batch, parallel):
        calls.append(len(batch))
        if len(calls) == 1:
            raise ValueError("a bug")
        return real(batch, parallel)
    store._flush_batch = broken_once
    with pytest.raises(ValueError, match="a bug"):
        store.put(b"one")
    assert store.put(b"two") == blob_hash(b"two")
    assert store.get(blob_hash(b"two")) == b"two"
