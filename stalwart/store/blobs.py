"""Content-addressed blob files: raw messages, attachments, Sieve scripts.

A blob is named by the SHA-256 of its bytes and lives at ``ROOT/ab/cd/<64 hex>``. The process
that received the bytes writes and fsyncs the blob (temp file, fsync, rename, fsync of the
directory) *before* it asks the store to commit metadata that points at it, so an
acknowledged message always has its bytes on disk. A crash in between leaves at most an
orphan file, which the purger removes once no BLOB_REF record names it and it is older than
a grace period (a blob being written right now is not referenced yet).

Blob files are immutable: the same content always has the same name, so two deliveries of
the same bytes share one file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Iterator

HASH_LEN = 32


def blob_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    """Blob files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, digest: bytes) -> Path:
        h = digest.hex()
        return self.root / h[:2] / h[2:4] / h

    def exists(self, digest: bytes) -> bool:
        return len(digest) == HASH_LEN and self.path(digest).is_file()

    def get(self, digest: bytes) -> bytes:
        return self.path(digest).read_bytes()

    def get_range(self, digest: bytes, start: int, end: int) -> bytes:
        with open(self.path(digest), "rb") as f:
            f.seek(start)
            return f.read(max(0, end - start))

    def put(self, data: bytes) -> bytes:
        """Write ``data`` durably and return its hash. Idempotent."""
        digest = blob_hash(data)
        if len(digest) == HASH_LEN:
            try:
                # Already stored: refresh its mtime so the purger's grace period protects it
                # until the metadata that will point at it is committed.
                os.utime(self.path(digest))
                return digest
            except FileNotFoundError:
                pass
        tmp = self.root / "tmp" / f"{os.getpid()}.{time.monotonic_ns()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._install(tmp, digest)
        return digest

    async def put_async(self, data: bytes) -> bytes:
        """``put`` in a thread, so an fsync never stalls the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.put, data)

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def _install(self, tmp: Path, digest: bytes) -> None:
        final = self.path(digest)
        parent = final.parent
        if not parent.is_dir():
            parent.mkdir(parents=True, exist_ok=True)
            _fsync_dir(parent.parent)
            _fsync_dir(parent.parent.parent)
        os.replace(tmp, final)
        _fsync_dir(parent)

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
