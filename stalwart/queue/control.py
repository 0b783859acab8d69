"""The queue process's control socket: other processes ask it to act on queued mail.

The queue process is the only writer of existing queue entries (``stalwart/queue/store.py``):
an entry being delivered is held in memory and written back with the attempt's outcome,
so a second writer (an http worker making a message due now) could be overwritten, or
overwrite recipients already delivered with their old state and deliver them twice. So
"retry now" and "cancel" go to the queue process itself, which knows what is in flight,
over a Unix socket ``<run_dir>/queue.sock`` (mode 0600: the server's own user; the
management API that forwards to it does its own authorization). Postfix's ``postqueue -f``
reaches qmgr the same way, through a private channel instead of the queue files.

Protocol: one JSON object per line each way, in order, on one connection::

    {"op": "retry", "id": 7}    -> {"ok": true, "found": true}
    {"op": "cancel", "id": 7}   -> {"ok": true, "found": false}     (nothing by that id)
    {"op": "wake"}              -> {"ok": true}                     (look for due mail now)
    anything else               -> {"ok": false, "error": "invalid", "detail": "..."}

Reading the queue (list, show) needs no control request: any process reads the store.

Under the master the socket is the master's (``ControlServer(..., sock=...)`` serves the
inherited listening socket and never unlinks it): it exists while the queue process is
down, so a request then waits in its queue and, with ``server.on-demand``, makes the master
start the queue process, which answers it. Standalone (tests) the server binds ``path``.

``control_request(path, op, id)`` is the client side; it raises ``QueueUnavailable`` when
no queue process answers (not running, restarting), which callers report as 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["SOCKET_NAME", "ControlServer", "QueueUnavailable", "QueueWaker", "control_request"]

log = logging.getLogger("stalwart.queue")

SOCKET_NAME = "queue.sock"
MAX_REQUEST = 4096


class QueueUnavailable(Exception):
    """The queue process did not answer on its control socket."""


class ControlServer:
    """Serves the control socket for one ``Queue`` (in the queue process)."""

    def __init__(self, queue: Any, path: str | os.PathLike, *,
                 sock: socket.socket | None = None) -> None:
        self.queue = queue
        self.path = Path(path)
        self.sock = sock                       # the master's listening socket, inherited
        self.requests = 0
        self.last_request = 0.0                # monotonic time of the last request
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.sock is not None:
            self._server = await asyncio.start_unix_server(self._handle, sock=self.sock,
                                                           limit=MAX_REQUEST)
            return
        # A queue process killed with SIGKILL leaves its socket file behind; the master
        # runs one queue process, so a file there now is always stale.
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.path),
                                                           limit=MAX_REQUEST)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.sock is not None:
            return                             # the master's socket: it stays
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.last_request = time.monotonic()
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(_line({"ok": False, "error": "invalid",
                                        "detail": "request too long"}))
                    break
                if not line:
                    break
                writer.write(_line(await self.dispatch(line)))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def dispatch(self, line: bytes) -> dict:
        self.requests += 1
        self.last_request = time.monotonic()
        try:
            request = json.loads(line)
        except ValueError:
            return _invalid("not JSON")
        if not isinstance(request, dict):
            return _invalid("a request is a JSON object")
        op = request.get("op")
        if op == "wake":
            self.queue.wake()
            return {"ok": True}
        if op not in ("retry", "cancel"):
            return _invalid(f"unknown operation {op!r}")
        qid = request.get("id")
        if not isinstance(qid, int) or isinstance(qid, bool) or qid < 1:
            return _invalid("id must be a positive integer")
        found = await (self.queue.retry(qid) if op == "retry" else self.queue.cancel(qid))
        log.info("queue %s: %s requested over the control socket (%s)", qid, op,
                 "done" if found else "not queued")
        return {"ok": True, "found": bool(found)}


class QueueWaker:
    """``waker()`` tells the queue process that entries were just committed (``wake``), so
    their first attempt starts now instead of at the next ``queue.poll-interval``.

    Called by the SMTP workers after each queued message: at most one request is in
    flight, and calls meanwhile fold into one more after it (a burst of 500 messages makes
    two requests, not 500). A queue that does not answer is ignored: it polls anyway."""

    def __init__(self, path: str | os.PathLike, *, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self.requests = 0
        self._task: asyncio.Future | None = None
        self._again = False

    def __call__(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            self.requests += 1
            try:
                await control_request(self.path, "wake", timeout=self.timeout)
            except QueueUnavailable as exc:
                log.debug("queue wake-up not delivered: %s", exc)
            if not self._again:
                return


def _invalid(detail: str) -> dict:
    return {"ok": False, "error": "invalid", "detail": detail}


def _line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"


async def control_request(path: str | os.PathLike, op: str, id: int | None = None, *,
                          timeout: float = 10.0) -> dict:
    """Send one request to the queue process and return its answer."""
    request: dict[str, Any] = {"op": op}
    if id is not None:
        request["id"] = id
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=MAX_REQUEST), timeout)
        writer.write(_line(request))
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError, ValueError) as exc:
        raise QueueUnavailable(f"the queue process does not answer at {path}: "
                               f"{exc or type(exc).__name__}") from None
    finally:
        if writer is not None:
            writer.close()
    try:
        result = json.loads(answer)
    except ValueError:
        raise QueueUnavailable("the queue process sent a malformed answer") from None
    if not isinstance(result, dict):
        raise QueueUnavailable("the queue process sent a malformed answer")
    return result
