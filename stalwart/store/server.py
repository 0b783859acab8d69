"""The store process: the only writer of the RocksDB database.

Theory of operation
-------------------
Workers connect to ``run/store.sock`` and send requests (see wire.py). The server runs each
operation as soon as its frame is decoded, one after another on one thread, through
``Engine.execute`` on a ``Txn`` layered over

    current batch (being assembled)  ->  in-flight batch (being fsynced)  ->  RocksDB

so every operation sees the effects of all earlier ones, durable or not. A successful
operation's writes join the current batch; its reply waits.

Group commit: when nothing is being written, the current batch is handed to a writer thread
at the end of this loop turn (``call_soon``), and written as one ``WriteBatch`` with
``sync=True``. While that fsync runs, new operations accumulate in the next batch, which is
written as soon as the previous one returns. Replies (with the commit's sequence number) and
change events go out only after the write returned: an acknowledged operation is durable.

If a write fails (I/O error, disk full), every operation in that batch and in the batch built
on top of it is answered ``unavailable`` and their writes are dropped: the in-memory view
falls back to what is on disk, so nothing acknowledged is lost and nothing unacknowledged is
half-kept.

The process can be killed at any moment (SIGKILL): RocksDB recovers its WAL on the next
open, and the master respawns the store in its slot. Clients see their connection drop and
get ``unavailable`` for requests without a reply; they reconnect on the next call.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import signal
import socket
from pathlib import Path

from .blobs import BlobStore
from .engine import Engine
from .errors import StoreError
from .kv import Txn
from .wire import FrameDecoder, FrameError, encode

log = logging.getLogger("stalwart.store")

#: Replies above this many bytes buffered in a connection's transport make the server stop
#: reading from that connection until the buffer drains (backpressure).
HIGH_WATER = 4 * 1024 * 1024


class _Conn(asyncio.Protocol):
    def __init__(self, server: "StoreServer") -> None:
        self.server = server
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.subscribed = False
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        self.server.conns.add(self)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.server.conns.discard(self)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            log.warning("store: closing a client connection: %s", exc)
            self.transport.close()
            return
        for frame in frames:
            if not (isinstance(frame, list) and len(frame) == 3 and isinstance(frame[0], int)
                    and frame[0] > 0 and isinstance(frame[1], str)):
                log.warning("store: closing a client connection: malformed request")
                self.transport.close()
                return
            self.server.handle(self, *frame)

    def send(self, value) -> None:
        if not self.closed:
            self.transport.write(encode(value))


class StoreServer:
    def __init__(self, db, blobs: BlobStore, *, group_commit: bool = True) -> None:
        self.db = db
        # group_commit=False writes every operation on its own (one fsync each): only for
        # bench/ to measure what group commit buys.
        self.group_commit = group_commit
        self.blobs = blobs
        self.engine = Engine(blobs.exists)
        self.conns: set[_Conn] = set()
        self._current: dict[bytes, bytes | None] = {}
        self._current_replies: list[tuple[_Conn, int, object]] = []
        self._current_events: dict[int, dict] = {}
        self._inflight: dict[bytes, bytes | None] | None = None
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._server: asyncio.AbstractServer | None = None
        self.commits = 0
        self.operations = 0
        #: Called with a commit's events once it is durable (stalwart.scheduler.MailPoker).
        self.on_commit = None

    # ------------------------------------------------------------------ requests
    def handle(self, conn: _Conn, req_id: int, op: str, args) -> None:
        if op == "subscribe":
            conn.subscribed = True
            conn.send([req_id, 0, True, self.db.latest_sequence_number()])
            return
        if op == "ping":
            conn.send([req_id, 0, {"pid": os.getpid(), "commits": self.commits,
                                   "operations": self.operations},
                       self.db.latest_sequence_number()])
            return
        if op == "purge_blobs":
            asyncio.get_running_loop().create_task(self._purge_blobs(conn, req_id, args))
            return
        txn = Txn(self.db, self._layers())
        try:
            result, events = self.engine.execute(txn, op, args)
        except StoreError as exc:
            conn.send([req_id, 1, exc.to_wire(), self.db.latest_sequence_number()])
            return
        except Exception:  # a bug in an operation: report it, keep serving, change nothing
            log.exception("store: operation %s failed", op)
            conn.send([req_id, 1, ["unavailable", f"internal error in {op}"],
                       self.db.latest_sequence_number()])
            return
        self.operations += 1
        if not self.group_commit:
            seqno = self.db.write(txn.writes)
            self.commits += 1
            conn.send([req_id, 0, result, seqno])
            frame = encode([0, "event", events, seqno])
            for other in self.conns:
                if other.subscribed and not other.closed:
                    other.transport.write(frame)
            if self.on_commit is not None and events:
                self.on_commit(events)
            return
        self._current.update(txn.writes)
        self._current_replies.append((conn, req_id, result))
        for acc, event in events.items():
            merged = self._current_events.setdefault(acc, {"change": 0, "types": []})
            merged["change"] = max(merged["change"], event["change"])
            merged["types"] = sorted(set(merged["types"]) | set(event["types"]))
        self._schedule()

    def _layers(self) -> tuple:
        return (self._current,) if self._inflight is None else (self._current, self._inflight)

    async def _purge_blobs(self, conn: _Conn, req_id: int, args) -> None:
        """Delete blob files no record references, older than ``grace`` seconds.

        Runs here, in the writer's thread, a few files per loop turn: the reference check
        reads through the batches not yet durable, and no operation can commit a reference
        between that check and the unlink, because operations run on this same thread (an
        operation that comes later finds the blob missing and is refused, unacknowledged).
        """
        from . import keys

        grace = args.get("grace", 3600) if isinstance(args, dict) else 3600
        if not isinstance(grace, (int, float)) or grace < 0:
            conn.send([req_id, 1, ["invalid", "grace must be a non-negative number"], 0])
            return
        removed = checked = 0
        for digest, path in self.blobs.purge_candidates(grace):
            checked += 1
            if Txn(self.db, self._layers()).get(keys.blob_ref(digest)) is None:
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
            if checked % 64 == 0:
                await asyncio.sleep(0)
        removed += self.blobs.purge_tmp(grace)
        conn.send([req_id, 0, {"removed": removed, "checked": checked},
                   self.db.latest_sequence_number()])

    # ------------------------------------------------------------------ group commit
    def _schedule(self) -> None:
        if not self._scheduled and self._inflight is None:
            self._scheduled = True
            self._idle.clear()
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._inflight is not None or not self._current_replies:
            if self._inflight is None:
                self._idle.set()
            return
        batch, self._current = self._current, {}
        replies, self._current_replies = self._current_replies, []
        events, self._current_events = self._current_events, {}
        self._inflight = batch
        loop = asyncio.get_running_loop()
        if len(replies) == 1:
            # A lone operation: the hand-off to the writer thread would cost more than the
            # overlap it buys. Requests arriving meanwhile wait in the socket buffers and
            # form the next batch, so grouping still happens under load.
            fut = loop.create_future()
            try:
                fut.set_result(self.db.write(batch))
            except Exception as exc:  # reported by _flushed like a failed threaded write
                fut.set_exception(exc)
            self._flushed(fut, replies, events)
            return
        fut = loop.run_in_executor(self._writer, self.db.write, batch)
        fut.add_done_callback(lambda f: self._flushed(f, replies, events))

    def _flushed(self, fut, replies, events) -> None:
        self._inflight = None
        exc = fut.exception()
        if exc is not None:
            log.error("store: durable write failed, %d operations refused: %s",
                      len(replies) + len(self._current_replies), exc)
            # Everything built on top of the failed batch is invalid too.
            replies = replies + self._current_replies
            self._current, self._current_replies, self._current_events = {}, [], {}
            for conn, req_id, _ in replies:
                conn.send([req_id, 1, ["unavailable", "the store could not write to disk"], 0])
            self._idle.set()
            return
        seqno = fut.result()
        self.commits += 1
        for conn, req_id, result in replies:
            conn.send([req_id, 0, result, seqno])
        # Every commit is announced, even one that changed no account (a domain, say):
        # the sequence number is the watermark that tells each worker's secondary it is
        # behind, so a read in any process after this point sees the commit.
        frame = encode([0, "event", events, seqno])
        for conn in self.conns:
            if conn.subscribed and not conn.closed:
                conn.transport.write(frame)
        if self.on_commit is not None and events:
            self.on_commit(events)
        if self._current_replies:
            self._schedule()
        else:
            self._idle.set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, sock_path: Path | None = None, sock: socket.socket | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sock is None:
            sock_path = Path(sock_path)
            try:
                sock_path.unlink()
            except FileNotFoundError:
                pass
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o077)
            try:
                sock.bind(str(sock_path))
            finally:
                os.umask(old)
            sock.listen(1024)
        self._server = await loop.create_unix_server(lambda: _Conn(self), sock=sock)

    async def close(self) -> None:
        """Stop accepting, write what is pending, close the database."""
        if self._server is not None:
            self._server.close()
        while not self._idle.is_set() or self._inflight is not None:
            await self._idle.wait()
            await asyncio.sleep(0)
        for conn in list(self.conns):
            conn.transport.close()
        self._writer.shutdown(wait=True)
        self.db.close()


def open_server(data_path: Path, blob_path: Path, *, group_commit: bool = True) -> StoreServer:
    from .backends.rocksdb import RocksPrimary

    return StoreServer(RocksPrimary(Path(data_path)), BlobStore(Path(blob_path)),
                       group_commit=group_commit)


async def serve(ctx) -> None:
    """Entry point of the ``store`` process kind (see stalwart.worker)."""
    settings = ctx.config.store
    if settings.type != "rocksdb":
        raise RuntimeError(f"the store process serves rocksdb stores, not {settings.type!r}")
    server = open_server(settings.path, settings.blob_path)
    run_dir = Path(ctx.config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    await server.start(run_dir / "store.sock")
    if ctx.config.get("server.on-demand"):      # new mail starts a dormant scheduler
        from ..scheduler import SOCKET_NAME, MailPoker
        server.on_commit = MailPoker(run_dir / SOCKET_NAME)
    log.info("store: serving %s on %s", settings.path, run_dir / "store.sock")
    principals = list(getattr(ctx.config, "principals", None) or ())
    if principals:
        await _sync_principals(settings, run_dir, principals)
    await ctx.shutdown.wait()
    await server.close()
    log.info("store: closed after %d operations in %d commits", server.operations, server.commits)


async def _sync_principals(settings, run_dir: Path, principals: list[dict]) -> None:
    """Accounts declared by a memory directory in the config become store accounts
    (stalwart.directory.sync), through this process's own socket like any client."""
    from ..directory.sync import sync_principals
    from .api import Store

    store = await Store.connect(Path(settings.path), Path(settings.blob_path),
                                run_dir / "store.sock", run_dir / "secondary" / f"{os.getpid()}",
                                subscribe=False)
    try:
        result = await sync_principals(store, principals)
        log.info("store: memory directory synced: %s", result)
    except StoreError as exc:
        log.error("store: memory directory not synced: %s", exc)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> None:
    """Run a store process on its own (tests, benchmarks): ``python -m stalwart.store.server``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--blobs", required=True, type=Path)
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--no-group-commit", action="store_true",
                        help="one fsync per operation (benchmarks only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass

    async def run() -> None:
        server = open_server(args.data, args.blobs, group_commit=not args.no_group_commit)
        await server.start(args.socket)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
