"""A small router: (method, path pattern) -> async handler.

Patterns are absolute paths whose segments are literals or parameters::

    /healthz
    /api/domains/{name}
    /jmap/download/{account}/{blob}/{name}
    /admin/{rest:path}          # the rest of the path, slashes included (may be empty)

Matching works on the raw path split at "/" and percent-decodes each segment afterwards,
so an encoded slash (``%2F``) stays inside one parameter and can never select another
route. A path that matches no pattern is a 404; one that matches with another method is a
405 with an ``Allow`` header (RFC 9110 section 15.5.6). ``HEAD`` is served by the ``GET``
handler; the connection drops the body.

Routers compose: ``router.mount("/api", api_router)`` adds every route of ``api_router``
under the prefix, so JMAP, the REST API and the WebAdmin each build their own router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import unquote

from .message import HTTPError, Request, Response

Handler = Callable[[Request], Awaitable[Response]]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class _Segment:
    literal: str | None      # a literal segment, or None for a parameter
    param: str | None = None
    rest: bool = False       # {name:path}: swallow the remaining segments


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    segments: tuple[_Segment, ...]
    handler: Handler


def _compile(pattern: str) -> tuple[_Segment, ...]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    parts = pattern[1:].split("/") if pattern != "/" else [""]
    out: list[_Segment] = []
    seen: set[str] = set()
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name, _, kind = part[1:-1].partition(":")
            if not name.isidentifier() or name in seen:
                raise ValueError(f"bad or repeated parameter {part!r} in {pattern!r}")
            if kind not in ("", "path"):
                raise ValueError(f"unknown parameter kind {kind!r} in {pattern!r}")
            if kind == "path" and index != len(parts) - 1:
                raise ValueError(f"{{{name}:path}} must be the last segment of {pattern!r}")
            seen.add(name)
            out.append(_Segment(None, name, kind == "path"))
        elif "{" in part or "}" in part:
            raise ValueError(f"malformed segment {part!r} in {pattern!r}")
        else:
            out.append(_Segment(part))
    return tuple(out)


def _match(segments: tuple[_Segment, ...], parts: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, seg in enumerate(segments):
        if seg.rest:
            params[seg.param] = unquote("/".join(parts[index:]))
            return params
        if index >= len(parts):
            return None
        if seg.literal is not None:
            if unquote(parts[index]) != seg.literal:
                return None
        else:
            value = unquote(parts[index])
            if not value:
                return None
            params[seg.param] = value
    return params if len(parts) == len(segments) else None


class Router:
    """Routes requests to handlers by method and path pattern."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"unsupported method {method!r}")
        segments = _compile(pattern)
        for route in self._routes:
            if route.method == method and route.segments == segments:
                raise ValueError(f"route {method} {pattern} is already defined")
        self._routes.append(Route(method, pattern, segments, handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator form of ``add``."""
        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler
        return register

    def mount(self, prefix: str, other: "Router") -> None:
        """Add every route of ``other`` below ``prefix`` (e.g. ``/api``)."""
        prefix = prefix.rstrip("/")
        if not prefix.startswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must start with '/'")
        for route in other.routes:
            pattern = prefix + (route.pattern if route.pattern != "/" else "")
            self.add(route.method, pattern or "/", route.handler)

    def resolve(self, method: str, raw_path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters for a request, or HTTPError 404/405."""
        if not raw_path.startswith("/"):
            raise HTTPError(400, "the request target must be an absolute path",
                            code="bad_target")
        parts = raw_path[1:].split("/")
        lookup = "GET" if method == "HEAD" else method
        allowed: set[str] = set()
        for route in self._routes:
            params = _match(route.segments, parts)
            if params is None:
                continue
            if route.method == lookup:
                return route.handler, params
            allowed.add(route.method)
        if not allowed:
            raise HTTPError(404, f"no resource at {unquote(raw_path)}")
        if "GET" in allowed:
            allowed.add("HEAD")
        raise HTTPError(405, f"{method} is not allowed here",
                        headers=[("allow", ", ".join(sorted(allowed)))])

    async def dispatch(self, request: Request) -> Response:
        handler, params = self.resolve(request.method, request.raw_path)
        request.path_params = params
        return await handler(request)
