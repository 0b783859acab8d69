"""The outbound queue in the management API (mounted by ``stalwart.http.api``)::

    GET    /api/queue[?limit=N&after=ID]    -> 200 {"messages": [Message], "next": ID|null}
    GET    /api/queue/{id}                  -> 200 Message (with its attempt history)
    POST   /api/queue/{id}/retry            -> 200 {"id", "retry": true}   (due now)
    DELETE /api/queue/{id}                  -> 204 (removed; nobody is notified)

    Message = {"id", "from", "size", "created", "due", "expires" (epoch seconds; 0 until
               the first attempt), "attempts", "requiretls", "dsn",
               "recipients": [{"address", "status": "pending"|"delivered"|"failed",
                               "reply", "host"}],
               "history": [{"at", "domain", "host", "ip", "reply"}]   (show only)}

Listing pages in id order: ``next`` is the ``after`` for the next page, null on the last.

Reads go to the store. Retry and cancel change an entry, which only the queue process
may do (see ``stalwart.queue.control``): they are forwarded to its control socket
``<run_dir>/queue.sock``; 503 ``unavailable`` when it does not answer (not running, or
restarting), 404 ``not_found`` when it has no such message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stalwart.queue.control import SOCKET_NAME, QueueUnavailable, control_request
from stalwart.queue.model import QueuedMessage

from ..message import HTTPError, Request, Response
from .endpoints import ManagementApi

__all__ = ["QueueApi", "MAX_PAGE"]

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_param(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise HTTPError(400, f"query parameter {name!r} must be an integer from {low} to "
                        f"{high}", code="bad_query")
    return int(text)


def _path_id(request: Request) -> int:
    text = request.path_params["id"]
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise HTTPError(404, f"queue message {text!r} does not exist", code="not_found")
    return int(text)


class QueueApi:
    """The /api/queue handlers. ``control_path`` is the queue process's socket (default:
    ``<config.run_dir>/queue.sock``)."""

    def __init__(self, config: Any, control_path: str | os.PathLike | None = None) -> None:
        if control_path is None and getattr(config, "run_dir", None) is not None:
            control_path = Path(config.run_dir) / SOCKET_NAME
        self.control_path = control_path

    @staticmethod
    def _view(record: dict, *, history: bool) -> dict:
        view = QueuedMessage.from_record(record).summary()
        if not history:
            view.pop("history", None)
        return view

    async def _control(self, op: str, qid: int) -> dict:
        if self.control_path is None:
            raise HTTPError(503, "this server has no queue process", code="unavailable")
        try:
            answer = await control_request(self.control_path, op, qid)
        except QueueUnavailable as exc:
            raise HTTPError(503, str(exc), code="unavailable") from None
        if not answer.get("ok"):
            raise HTTPError(400, str(answer.get("detail") or "refused by the queue"),
                            code=str(answer.get("error") or "invalid"))
        if not answer.get("found"):
            raise HTTPError(404, f"queue message {qid} does not exist", code="not_found")
        return answer

    async def list_messages(self, request: Request, store: Any) -> Response:
        limit = _query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        after = _query_int(request, "after", 0, 0, 2**63 - 1)
        records = store.queue_list(limit + 1, after)
        more = len(records) > limit
        records = records[:limit]
        return Response.json({"messages": [self._view(r, history=False) for r in records],
                              "next": records[-1]["id"] if more else None})

    async def get_message(self, request: Request, store: Any) -> Response:
        qid = _path_id(request)
        record = store.queue_get(qid)
        if record is None:
            raise HTTPError(404, f"queue message {qid} does not exist", code="not_found")
        return Response.json(self._view(record, history=True))

    async def retry_message(self, request: Request, store: Any) -> Response:
        qid = _path_id(request)
        await self._control("retry", qid)
        ManagementApi._audit(request, f"queue message {qid}: retry now")
        return Response.json({"id": qid, "retry": True})

    async def cancel_message(self, request: Request, store: Any) -> Response:
        qid = _path_id(request)
        await self._control("cancel", qid)
        ManagementApi._audit(request, f"queue message {qid}: cancelled")
        return Response.empty()

