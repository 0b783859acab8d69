"""Acting on the queue: the control socket of the queue process, the /api/queue endpoints
and ``stalwart-cli queue``, against an in-process API server whose loop also runs a
``Queue`` (memory store, not delivering) behind a real control socket."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from stalwart.cli import main as cli
from stalwart.cli.client import EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNREACHABLE
from stalwart.dns import FakeBackend, Resolver
from stalwart.http.api import build_router
from stalwart.http.router import Router
from stalwart.http.server import StoreHandle
from stalwart.http.testing import ServerThread
from stalwart.queue import Queue, QueuedMessage, QueuedRecipient, QueueSettings, RcptStatus
from stalwart.queue.control import ControlServer, QueueUnavailable, control_request
from stalwart.store.api import Store

CONFIG = SimpleNamespace(fallback_admin=("admin", "admin-pass"), principals=[])


class Server:
    def __init__(self, tmp_path: Path, *, queue_running: bool = True) -> None:
        self.control_path = tmp_path / "queue.sock"
        self.store: Store | None = None
        self.queue: Queue | None = None

        async def make_app():
            self.store = Store.memory()
            self.queue = Queue(self.store, self.store.blobs, Resolver(FakeBackend({})),
                               QueueSettings(), clock=lambda: 1_000_000.0)
            if queue_running:
                self.control = ControlServer(self.queue, self.control_path)
                await self.control.start()
            router = Router()
            router.mount("/api", build_router(CONFIG, StoreHandle(self._store),
                                              queue_control=self.control_path))
            return router.dispatch

        self.thread = ServerThread(make_app, unix=True, tcp=False).start()
        self.socket = self.thread.unix_path

    async def _store(self) -> Store:
        return self.store

    def enqueue(self, *rcpts: str, sender: str = "jane@example.org") -> int:
        async def put():
            return await self.queue.enqueue(b"Subject: hi\r\n\r\nbody\r\n", return_path=sender,
                                            recipients=[QueuedRecipient(r) for r in rcpts])
        return self.thread.call(put)

    def record(self, qid: int) -> dict | None:
        async def get():
            return self.store.queue_get(qid)
        return self.thread.call(get)

    def run_cli(self, capsys, *argv: str) -> tuple[int, str, str]:
        code = cli.main(["--socket", str(self.socket), *argv])
        out = capsys.readouterr()
        return code, out.out, out.err


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    yield srv
    srv.thread.stop()


def test_list_show_retry_cancel_through_the_cli(server, capsys):
    first = server.enqueue("a@remote.test", "b@remote.test")
    second = server.enqueue("c@other.test")
    code, out, _ = server.run_cli(capsys, "queue", "list")
    assert code == EXIT_OK
    rows = [re.split(r"\s{2,}", line) for line in out.splitlines()]
    assert rows[0] == ["ID", "FROM", "TO", "PENDING", "SIZE", "TRIES", "NEXT ATTEMPT"]
    assert rows[1][:6] == [str(first), "jane@example.org", "a@remote.test, b@remote.test",
                           "2/2", "21", "0"]
    assert rows[2][:4] == [str(second), "jane@example.org", "c@other.test", "1/1"]

    code, out, _ = server.run_cli(capsys, "--json", "queue", "show", str(first))
    shown = json.loads(out)
    assert shown["id"] == first and shown["history"] == []
    assert [r["address"] for r in shown["recipients"]] == ["a@remote.test", "b@remote.test"]

    # Retry: the queue process rewrites the entry due now (its clock says 1_000_000).
    record = server.record(first)
    record["due"] = 2_000_000.0
    server.thread.call(lambda: server.store.queue_update(first, record))
    code, out, _ = server.run_cli(capsys, "queue", "retry", str(first))
    assert (code, out.strip()) == (EXIT_OK, f"message {first} is due now")
    assert server.record(first)["due"] == 1_000_000.0

    code, out, _ = server.run_cli(capsys, "queue", "cancel", str(second))
    assert (code, out.strip()) == (EXIT_OK, f"removed message {second} from the queue")
    assert server.record(second) is None
    code, _, err = server.run_cli(capsys, "queue", "cancel", str(second))
    assert code == EXIT_NOT_FOUND and "does not exist" in err
    code, _, err = server.run_cli(capsys, "queue", "retry", "999")
    assert code == EXIT_NOT_FOUND


def test_list_pages_through_everything_and_limit(server, capsys):
    ids = [server.enqueue(f"r{i}@remote.test") for i in range(5)]
    api = server.thread.call
    assert api(lambda: _get(server, "/api/queue?limit=2"))["next"] == ids[1]
    page = api(lambda: _get(server, f"/api/queue?limit=2&after={ids[3]}"))
    assert [m["id"] for m in page["messages"]] == [ids[4]] and page["next"] is None
    code, out, _ = server.run_cli(capsys, "--json", "queue", "list")
    assert [m["id"] for m in json.loads(out)["messages"]] == ids
    code, out, _ = server.run_cli(capsys, "--json", "queue", "list", "--limit", "3")
    assert [m["id"] for m in json.loads(out)["messages"]] == ids[:3]


async def _get(server: Server, path: str) -> dict:
    reader, writer = await asyncio.open_unix_connection(str(server.socket))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    return json.loads(body)


@pytest.mark.parametrize("argv,code,message", [
    (("queue", "show", "0"), EXIT_INVALID, "not a positive number"),
    (("queue", "show", "x"), EXIT_INVALID, "not a positive number"),
    (("queue", "show", "12345"), EXIT_NOT_FOUND, "queue message 12345 does not exist"),
])
def test_cli_errors(server, capsys, argv, code, message):
    try:
        got, _, err = server.run_cli(capsys, *argv)
    except SystemExit as exc:              # argparse rejects the id before any request
        got, err = exc.code, capsys.readouterr().err
    assert got == code and message in err


def test_retry_and_cancel_need_the_queue_process(tmp_path, capsys):
    srv = Server(tmp_path, queue_running=False)
    try:
        qid = srv.enqueue("a@remote.test")
        code, out, _ = srv.run_cli(capsys, "queue", "list")
        assert code == EXIT_OK and "a@remote.test" in out          # reading needs no queue
        for action in ("retry", "cancel"):
            code, _, err = srv.run_cli(capsys, "queue", action, str(qid))
            assert code == EXIT_UNREACHABLE and "does not answer" in err
        assert srv.record(qid) is not None
    finally:
        srv.thread.stop()


def test_control_socket_protocol(tmp_path):
    async def main():
        store = Store.memory()
        queue = Queue(store, store.blobs, Resolver(FakeBackend({})), QueueSettings())
        control = ControlServer(queue, tmp_path / "q.sock")
        (tmp_path / "q.sock").write_text("stale")           # left by a killed process
        await control.start()
        assert (tmp_path / "q.sock").stat().st_mode & 0o777 == 0o600
        assert await control_request(tmp_path / "q.sock", "wake") == {"ok": True}
        assert await control_request(tmp_path / "q.sock", "retry", 5) == {"ok": True,
                                                                        "found": False}
        bad = await control_request(tmp_path / "q.sock", "retry", 0)
        assert bad["ok"] is False and bad["error"] == "invalid"
        bad = await control_request(tmp_path / "q.sock", "delete-everything", 1)
        assert bad["ok"] is False and "unknown operation" in bad["detail"]
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "q.sock"))
        writer.write(b"not json\n[1]\n")
        assert json.loads(await reader.readline())["detail"] == "not JSON"
        assert json.loads(await reader.readline())["detail"] == "a request is a JSON object"
        writer.close()
        await control.close()
        assert not (tmp_path / "q.sock").exists()
        with pytest.raises(QueueUnavailable):
            await control_request(tmp_path / "q.sock", "wake", timeout=1)
    asyncio.run(main())


def test_retry_leaves_a_message_in_flight_alone():
    """The attempt in progress owns the entry: a retry must not write it."""
    async def main():
        store = Store.memory()
        queue = Queue(store, store.blobs, Resolver(FakeBackend({})), QueueSettings())
        qid = await queue.enqueue(b"x\r\n", return_path="a@example.org",
                                  recipients=["b@remote.test"])
        record = store.queue_get(qid)
        record["rcpt"][0]["s"] = RcptStatus.DELIVERED.value   # what the attempt will write
        blocker = asyncio.Event()
        queue._inflight[qid] = asyncio.ensure_future(blocker.wait())
        assert await queue.retry(qid) is True
        assert QueuedMessage.from_record(store.queue_get(qid)).pending  # untouched
        queue._inflight[qid].cancel()
        del queue._inflight[qid]
    asyncio.run(main())
