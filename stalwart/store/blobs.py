"""Content-addressed blob files: raw messages, attachments, Sieve scripts.

A blob is named by the SHA-256 of its bytes and lives at ``ROOT/ab/cd/<64 hex>``. The process
that received the bytes writes and fsyncs the blob (temp file, fsync, rename, fsync of the
directory) *before* it asks the store to commit metadata that points at it, so an
acknowledged message always has its bytes on disk. A crash in between leaves at most an
orphan file, which the purger removes once no BLOB_REF record names it and it is older than
a grace period (a blob being written right now is not referenced yet).

Blob files are immutable: the same content always has the same name, so two deliveries of
the same bytes share one file.

Group flushing (``put_async``, ``put``)
---------------------------------------
Every process has one flusher thread per ``BlobStore`` (started on first use, and again
after a fork; it ends after ``IDLE_EXIT`` seconds without work). Puts queue up; the flusher
takes all that are waiting as one batch and, for the batch:

1. writes each blob to a temp file (``os.open``/``os.write``, no buffered file object);
   a blob already stored only gets its mtime refreshed (the purger's grace period);
2. fsyncs the temp files, spread over ``sync_threads`` threads (each fsync is a round
   trip to the device; concurrent ones overlap, and on a journalling file system the
   kernel merges them into fewer journal commits);
3. creates missing shard directories and renames each file to its final name;
4. fsyncs each distinct directory whose entries changed once, also spread over threads:
   the shard directory of every blob, and for a shard (``ab/cd``) or parent (``ab``) this
   process has not seen synced yet, the directory holding its entry (it may have been
   created a moment ago, here or by another process that has not synced it yet); a blob
   that already existed has its directory synced too, for the same reason;
5. releases every waiter of the batch, one wake-up per event loop.

A waiter is released only after its own file and the directory entries leading to it are
synced (POSIX: an fsync of the file does not make its name durable; the directory's does).
An error fails exactly the puts it concerns: a failed write or file fsync the one blob, a
failed directory fsync the blobs in that directory (and below it, for a new shard). While a
batch is on disk the next one accumulates, so under load one wake-up and a handful of
thread hand-offs serve many messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

HASH_LEN = 32

#: Seconds without a put after which a process's flusher thread ends.
IDLE_EXIT = 10.0

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def blob_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _fsync_dir(path: Path, fsync: Callable[[int], None] = os.fsync) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Put:
    """One blob waiting in the flusher."""

    __slots__ = ("data", "digest", "final", "dir", "tmp", "fd", "error", "waiter", "loop",
                 "same")

    def __init__(self, data, waiter, loop) -> None:
        self.data = data
        self.digest: bytes | None = None
        self.final = self.dir = self.tmp = ""
        self.fd = -1
        self.error: BaseException | None = None
        self.waiter = waiter                  # asyncio.Future (loop set) or concurrent Future
        self.loop = loop
        self.same: "_Put | None" = None       # an earlier put of the same bytes in the batch


def _release(puts: list[_Put]) -> None:
    """Settle the asyncio futures of ``puts`` (runs on their event loop)."""
    for p in puts:
        if p.waiter.done():                   # the caller was cancelled
            continue
        if p.error is not None:
            p.waiter.set_exception(p.error)
        else:
            p.waiter.set_result(p.digest)


class _Flusher:
    """The per-process flusher thread of one ``BlobStore`` (see the module docstring)."""

    def __init__(self, store: "BlobStore") -> None:
        self.store = store
        self.pid = os.getpid()
        self.stopped = False
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[_Put] = []
        self._pool = (concurrent.futures.ThreadPoolExecutor(
            store.sync_threads - 1, thread_name_prefix="blob-sync")
            if store.sync_threads > 1 else None)
        self._thread = threading.Thread(target=self._run, name="blob-flusher", daemon=True)
        self._thread.start()

    def submit(self, put: _Put) -> bool:
        """Queue ``put``; False if this flusher has stopped (idle) and a new one is needed."""
        with self._cv:
            if self.stopped:
                return False
            self._queue.append(put)
            if len(self._queue) == 1:
                self._cv.notify()
            return True

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue:
                    if not self._cv.wait(IDLE_EXIT) and not self._queue:
                        # Idle: end the thread (and the sync threads); the next put starts
                        # a new flusher, so an idle process or a finished test keeps none.
                        self.stopped = True
                        if self._pool is not None:
                            self._pool.shutdown(wait=False)
                        return
                batch, self._queue = self._queue, []
            try:
                self.store._flush_batch(batch, self._parallel)
            except BaseException as exc:      # a bug: fail the batch, keep the thread
                error = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
                for p in batch:
                    if p.error is None:
                        p.error = error
            self.store.batches += 1
            self._settle(batch)

    @staticmethod
    def _settle(batch: list[_Put]) -> None:
        by_loop: dict[object, list[_Put]] = {}
        for p in batch:
            if p.loop is None:
                if p.waiter.done():
                    continue
                if p.error is not None:
                    p.waiter.set_exception(p.error)
                else:
                    p.waiter.set_result(p.digest)
            else:
                by_loop.setdefault(p.loop, []).append(p)
        for loop, puts in by_loop.items():
            try:
                loop.call_soon_threadsafe(_release, puts)
            except RuntimeError:              # that loop is closed: nobody waits any more
                pass

    def _parallel(self, fn: Callable, items: list) -> list:
        """``[fn(x) for x in items]`` spread over the sync threads, this one included;
        each result is the return value or the exception raised."""
        def run(chunk):
            out = []
            for x in chunk:
                try:
                    out.append(fn(x))
                except Exception as exc:
                    out.append(exc)
            return out
        n = len(items)
        if self._pool is None or n < 2:
            return run(items)
        k = min(n, self.store.sync_threads)
        chunks = [items[i::k] for i in range(k)]
        futures = [self._pool.submit(run, c) for c in chunks[1:]]
        results = [run(chunks[0])] + [f.result() for f in futures]
        out: list = [None] * n
        for i, chunk_result in enumerate(results):
            out[i::k] = chunk_result
        return out


class BlobWriter:
    """Streams a large blob to a temp file, hashing as it goes; ``commit()`` makes it durable."""

    def __init__(self, store: "BlobStore") -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        self._tmp = store.root / "tmp" / f"{os.getpid()}.{time.monotonic_ns()}.{id(self)}"
        self._file = open(self._tmp, "wb")

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def commit(self) -> bytes:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self._hash.digest()
        self._store._install(self._tmp, digest)
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass


class BlobStore:
    """Blob files under ``root``.

    ``fsync`` is what syncs a file or directory descriptor (tests count or fail it);
    ``sync_threads`` how many fsyncs of one batch may run at once.
    """

    def __init__(self, root: Path, *, fsync: Callable[[int], None] = os.fsync,
                 sync_threads: int = 8) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self._tmp_prefix = os.path.join(self._root, "tmp", "")
        self.fsync = fsync
        self.sync_threads = max(1, int(sync_threads))
        self._flusher: _Flusher | None = None
        self._flusher_lock = threading.Lock()
        self._dirs: set[str] = set()          # shard directories known to exist
        self._seq = 0
        #: Batches flushed by this process (observability and tests).
        self.batches = 0

    def path(self, digest: bytes) -> Path:
        return Path(self._path(digest))

    def _path(self, digest: bytes) -> str:
        h = digest.hex()
        return f"{self._root}/{h[:2]}/{h[2:4]}/{h}"

    def exists(self, digest: bytes) -> bool:
        return len(digest) == HASH_LEN and os.path.isfile(self._path(digest))

    def get(self, digest: bytes) -> bytes:
        return self.path(digest).read_bytes()

    def get_range(self, digest: bytes, start: int, end: int) -> bytes:
        with open(self.path(digest), "rb") as f:
            f.seek(start)
            return f.read(max(0, end - start))

    # ------------------------------------------------------------------ writing
    def _submit(self, put: _Put) -> None:
        while True:
            flusher = self._flusher
            if flusher is None or flusher.stopped or flusher.pid != os.getpid():
                with self._flusher_lock:      # none yet, idle and stopped, or we were forked
                    flusher = self._flusher
                    if flusher is None or flusher.stopped or flusher.pid != os.getpid():
                        flusher = self._flusher = _Flusher(self)
            if flusher.submit(put):
                return

    def put(self, data: bytes) -> bytes:
        """Write ``data`` durably and return its hash. Idempotent. Blocks until synced."""
        waiter: concurrent.futures.Future = concurrent.futures.Future()
        self._submit(_Put(data, waiter, None))
        return waiter.result()

    async def put_async(self, data: bytes) -> bytes:
        """``put`` through the flusher thread: the event loop never waits on the disk."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._submit(_Put(data, waiter, loop))
        return await waiter

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def _tmp_name(self) -> str:
        self._seq += 1
        return f"{self._tmp_prefix}{os.getpid()}.{time.monotonic_ns()}.{self._seq}"

    def _flush_batch(self, batch: list[_Put], parallel: Callable[[Callable, list], list]) -> None:
        """Steps 1-4 of the module docstring for ``batch``; sets ``error`` on failures."""
        first: dict[bytes, _Put] = {}
        written: list[_Put] = []              # new blobs: temp file written, fd open
        placed: list[_Put] = []               # blobs at their final name
        dirs: dict[str, list[_Put]] = {}      # directory to sync -> blobs that need it
        for p in batch:                       # 1. temp files (or refresh an existing blob)
            try:
                p.digest = digest = blob_hash(p.data)
                if digest in first:
                    p.same = first[digest]
                    continue
                first[digest] = p
                h = digest.hex()
                p.dir = f"{self._root}/{h[:2]}/{h[2:4]}"
                p.final = f"{p.dir}/{h}"
                try:
                    # Already stored: refresh its mtime so the purger's grace period
                    # protects it until the metadata that will point at it is committed.
                    os.utime(p.final)
                except FileNotFoundError:
                    pass
                else:
                    for d in self._make_dirs(p.dir):
                        dirs.setdefault(d, []).append(p)
                    placed.append(p)
                    continue
                p.tmp = self._tmp_name()
                p.fd = os.open(p.tmp, _CREATE, 0o644)
                written.append(p)
                _write_all(p.fd, p.data)
            except Exception as exc:
                p.error = exc
            finally:
                p.data = None
        # 2. the temp files' contents and inodes
        written = [p for p in written if p.error is None or self._discard(p)]
        for p, result in zip(written, parallel(self.fsync, [p.fd for p in written])):
            if isinstance(result, Exception):
                p.error = result
        # 3. final names; remember which directories gained an entry
        for p in written:
            try:
                os.close(p.fd)
            except OSError as exc:
                if p.error is None:
                    p.error = exc
            p.fd = -1
            if p.error is not None:
                self._discard(p)
                continue
            try:
                for d in self._make_dirs(p.dir):
                    dirs.setdefault(d, []).append(p)
                try:
                    os.replace(p.tmp, p.final)
                except FileNotFoundError:     # its shard directory vanished meanwhile
                    self._dirs.discard(p.dir)
                    self._dirs.discard(os.path.dirname(p.dir))
                    for d in self._make_dirs(p.dir):
                        dirs.setdefault(d, []).append(p)
                    os.replace(p.tmp, p.final)
                placed.append(p)
            except Exception as exc:
                p.error = exc
                self._discard(p)
        for p in placed:
            dirs.setdefault(p.dir, []).append(p)
        # 4. each directory once
        names = list(dirs)
        for d, result in zip(names, parallel(self._sync_dir, names)):
            if isinstance(result, Exception):
                for p in dirs[d]:
                    if p.error is None:
                        p.error = result
        for p in placed:
            if p.error is None:
                self._known(p.dir)
        for p in batch:
            if p.same is not None:
                p.error = p.same.error

    def _sync_dir(self, path: str) -> None:
        _fsync_dir(path, self.fsync)          # type: ignore[arg-type]

    def _make_dirs(self, shard: str) -> list[str]:
        """Create ``shard`` (``root/ab/cd``) and its parent if needed; return the
        directories to sync so that the entries leading to ``shard`` are durable.

        A shard this process has not seen is synced into its parent even when it existed
        already: another process may have created it a moment ago and not have synced the
        parent yet. Shards are remembered once their entries are synced (``_known``)."""
        if shard in self._dirs:
            return []
        parent = os.path.dirname(shard)
        changed = []
        if parent not in self._dirs:
            try:
                os.mkdir(parent)
            except FileExistsError:
                pass
            changed.append(self._root)
        try:
            os.mkdir(shard)
        except FileExistsError:
            pass
        changed.append(parent)
        return changed

    def _known(self, shard: str) -> None:
        """``shard``'s entry and its parent's are durable (their directories were synced)."""
        self._dirs.add(os.path.dirname(shard))
        self._dirs.add(shard)

    @staticmethod
    def _discard(p: _Put) -> bool:
        if p.fd >= 0:
            try:
                os.close(p.fd)
            except OSError:
                pass
            p.fd = -1
        try:
            os.unlink(p.tmp)
        except OSError:
            pass
        return False

    def _install(self, tmp: Path, digest: bytes) -> None:
        """Move a synced temp file (``BlobWriter``) to its final name, durably."""
        final = self._path(digest)
        shard = os.path.dirname(final)
        changed = self._make_dirs(shard)
        os.replace(tmp, final)
        for d in (shard, *changed):
            self._sync_dir(d)
        self._known(shard)

    def iter_blobs(self) -> Iterator[tuple[bytes, Path]]:
        for first in self.root.iterdir():
            if len(first.name) != 2 or not first.is_dir():
                continue
            for second in first.iterdir():
                for f in second.iterdir():
                    try:
                        yield bytes.fromhex(f.name), f
                    except ValueError:
                        continue

    def purge_candidates(self, grace_seconds: float) -> Iterator[tuple[bytes, Path]]:
        """Blob files older than the grace period (the caller checks references)."""
        cutoff = time.time() - grace_seconds
        for digest, f in self.iter_blobs():
            try:
                if f.stat().st_mtime < cutoff:
                    yield digest, f
            except FileNotFoundError:
                continue

    def purge_tmp(self, grace_seconds: float) -> int:
        """Remove temp files left by writers that crashed more than the grace period ago."""
        cutoff = time.time() - grace_seconds
        removed = 0
        for f in (self.root / "tmp").iterdir():
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class MemoryBlobStore:
    """The same interface in memory, for ``Store.memory()``."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, bytes] = {}

    def exists(self, digest: bytes) -> bool:
        return digest in self._blobs

    def get(self, digest: bytes) -> bytes:
        try:
            return self._blobs[digest]
        except KeyError:
            raise FileNotFoundError(digest.hex()) from None

    def get_range(self, digest: bytes, start: int, end: int) -> bytes:
        return self.get(digest)[start:end]

    def put(self, data: bytes) -> bytes:
        digest = blob_hash(data)
        self._blobs[digest] = bytes(data)
        return digest

    async def put_async(self, data: bytes) -> bytes:
        return self.put(data)
