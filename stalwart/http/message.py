"""Requests, responses and errors of the HTTP server, independent of any transport.

A handler is ``async def handler(request: Request) -> Response``. It reads a fully received
``Request`` (head and body; the connection enforces the size limits before the handler runs)
and returns a ``Response``. To refuse a request it raises ``HTTPError``; the connection turns
that into the JSON error body every part of the server shares::

    {"error": "<code>", "detail": "<human readable message>"}

``Request.json()`` is the one place request bodies are decoded: it checks the media type,
decodes with orjson and checks the top-level type, so every endpoint reports bad JSON the
same way (400 ``invalid_json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable
from urllib.parse import parse_qs, unquote

import orjson

#: Reason phrases for the status codes this server sends (RFC 9110 section 15).
REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    415: "Unsupported Media Type", 422: "Unprocessable Content",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}

#: Default error code used in the JSON body for a status when the raiser gives none.
STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 408: "timeout", 409: "conflict", 411: "length_required",
    413: "too_large", 414: "uri_too_long", 415: "unsupported_media_type",
    431: "headers_too_large", 500: "internal", 501: "not_implemented", 503: "unavailable",
    505: "http_version",
}


class HTTPError(Exception):
    """Refuse a request with ``status`` and a JSON body ``{"error": code, "detail": ...}``."""

    def __init__(self, status: int, detail: str, *, code: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.detail = detail
        self.headers = list(headers)

    def to_response(self) -> "Response":
        return Response.json({"error": self.code, "detail": self.detail},
                             status=self.status, headers=self.headers)


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection.

    ``address`` is ``(ip, port)`` for TCP and ``None`` on a Unix socket; ``uid`` is the
    SO_PEERCRED user id on a Unix socket and ``None`` for TCP.
    """

    address: tuple[str, int] | None
    uid: int | None = None
    pid: int | None = None
    tls: bool = False
    admin_socket: bool = False
    listener: str = ""

    @property
    def ip(self) -> str:
        """The remote IP address, or ``"local"`` on a Unix socket (used in log lines)."""
        return self.address[0] if self.address else "local"


@dataclass
class Request:
    """One fully received HTTP request."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: Peer
    http_version: str = "1.1"
    #: Filled by the router from the matched pattern, e.g. ``{"name": "example.org"}``.
    path_params: dict[str, str] = field(default_factory=dict)
    #: Free slot for middleware (the authenticated principal, for instance).
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        raw_path, _, self.raw_query = self.target.partition("?")
        # Percent-decoding happens per path segment in the router; here the path is kept
        # raw so that an encoded "/" (%2F) never changes the route.
        self.raw_path = raw_path

    @property
    def path(self) -> str:
        """The decoded path (for display and logs; routing uses the raw segments)."""
        return unquote(self.raw_path)

    @property
    def query(self) -> dict[str, list[str]]:
        try:
            return parse_qs(self.raw_query, keep_blank_values=True, strict_parsing=False,
                            max_num_fields=100)
        except ValueError as exc:
            raise HTTPError(400, f"bad query string: {exc}", code="bad_query") from None

    def query_param(self, name: str, default: str | None = None) -> str | None:
        """The single value of query parameter ``name``; 400 if it is given twice."""
        values = self.query.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise HTTPError(400, f"query parameter {name!r} given more than once",
                            code="bad_query")
        return values[0]

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (case-insensitive); repeated headers are joined."""
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        if not values:
            return default
        return ", ".join(values)

    def json(self, expect: type | tuple[type, ...] = dict) -> Any:
        """Decode the body as JSON and check its top-level type, or raise 400/415."""
        ctype = (self.header("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise HTTPError(415, f"expected an application/json body, got {ctype!r}")
        if not self.body:
            raise HTTPError(400, "the request needs a JSON body", code="invalid_json")
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise HTTPError(400, f"the body is not valid JSON: {exc}",
                            code="invalid_json") from None
        if not isinstance(value, expect):
            names = expect.__name__ if isinstance(expect, type) else \
                " or ".join(t.__name__ for t in expect)
            kind = {"dict": "a JSON object", "list": "a JSON array"}.get(names, names)
            raise HTTPError(400, f"the body must be {kind}", code="invalid_json")
        return value


@dataclass
class Response:
    """A response with a complete body, or a streamed one (``stream``).

    A streamed response is sent with chunked transfer-encoding to HTTP/1.1 clients; the
    connection pulls the iterator only as fast as the client reads.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200,
             headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, [("content-type", "application/json"), *headers],
                   orjson.dumps(value))

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
             headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, [("content-type", content_type), *headers], text.encode("utf-8"))

    @classmethod
    def empty(cls, status: int = 204, headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, list(headers))

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None
