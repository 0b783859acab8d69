"""RocksDB through rocksdict: the primary (only in the store process) and secondaries.

RocksDB allows one read-write process per database. The store process opens the primary and
is the only writer; every worker opens a *secondary* (its own directory for the secondary's
info log and manifest copy) and calls ``catch_up()`` only when it knows it is behind
(``latest_sequence_number() < needed``): see ``stalwart.store.api``.

Secondaries are opened with ``max_open_files=-1`` (every table file stays open, so a catch-up
does not reopen files: about 0.8 ms -> 20-50 us per catch-up in the design prototype) and one
file-opening thread. Memtables are kept small because every secondary replays the WAL into a
memtable of its own.
"""

from __future__ import annotations

from pathlib import Path

from rocksdict import AccessType, Checkpoint, Options, Rdict, WriteBatch, WriteOptions

WRITE_BUFFER_SIZE = 8 * 1024 * 1024
SECONDARY_WRITE_BUFFER_SIZE = 1024 * 1024


def _options(secondary: bool) -> Options:
    opt = Options(raw_mode=True)
    opt.create_if_missing(not secondary)
    # A secondary only replays the WAL into its memtable: a small buffer keeps the arena
    # (a write_buffer_size/8 block) of every worker small.
    opt.set_write_buffer_size(SECONDARY_WRITE_BUFFER_SIZE if secondary else WRITE_BUFFER_SIZE)
    opt.set_max_write_buffer_number(2)
    opt.set_paranoid_checks(True)
    if secondary:
        opt.set_max_open_files(-1)
        opt.set_max_file_opening_threads(1)
    return opt


class _Reader:
    _db: Rdict

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False):
        it = self._db.iter()
        if not reverse:
            it.seek(start)
            while it.valid():
                k = it.key()
                if end is not None and k >= end:
                    break
                yield k, it.value()
                it.next()
        else:
            if end is None:
                it.seek_to_last()
            else:
                it.seek_for_prev(end)
                if it.valid() and it.key() >= end:
                    it.prev()
            while it.valid():
                k = it.key()
                if k < start:
                    break
                yield k, it.value()
                it.prev()

    def latest_sequence_number(self) -> int:
        return self._db.latest_sequence_number()


class RocksPrimary(_Reader):
    """The read-write database, opened by the store process only."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), _options(secondary=False))
        self._sync = WriteOptions()
        self._sync.sync = True

    def write(self, writes: dict[bytes, bytes | None]) -> int:
        """Write one group-commit batch durably (fsync of the WAL); return its sequence."""
        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch, self._sync)
        return self._db.latest_sequence_number()

    def checkpoint(self, target: Path) -> None:
        """An online, consistent copy of the database (hard links where possible)."""
        Checkpoint(self._db).create_checkpoint(str(target))

    def close(self) -> None:
        self._db.close()


class RocksSecondary(_Reader):
    """A worker's read-only follower of the primary."""

    def __init__(self, path: Path, secondary_path: Path) -> None:
        secondary_path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), _options(secondary=True),
                         access_type=AccessType.secondary(str(secondary_path)))

    def catch_up(self) -> int:
        self._db.try_catch_up_with_primary()
        return self._db.latest_sequence_number()

    def close(self) -> None:
        self._db.close()
