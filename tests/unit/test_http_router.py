"""The HTTP router: patterns, parameters, 404/405, HEAD, mounting, bad patterns."""

from __future__ import annotations

import asyncio

import pytest

from stalwart.http.message import HTTPError, Peer, Request, Response
from stalwart.http.router import Router


def handler(tag: str):
    async def run(request: Request) -> Response:
        return Response.json({"tag": tag, "params": request.path_params})
    return run


def make_router() -> Router:
    r = Router()
    r.add("GET", "/", handler("root"))
    r.add("GET", "/healthz", handler("health"))
    r.add("GET", "/domains/{name}", handler("get-domain"))
    r.add("DELETE", "/domains/{name}", handler("delete-domain"))
    r.add("PUT", "/domains/{name}/catch-all", handler("catch-all"))
    r.add("GET", "/files/{rest:path}", handler("files"))
    return r


def resolve(router: Router, method: str, path: str):
    found, params = router.resolve(method, path)
    return found, params


@pytest.mark.parametrize("method,path,params", [
    ("GET", "/", {}),
    ("GET", "/healthz", {}),
    ("GET", "/domains/example.org", {"name": "example.org"}),
    ("DELETE", "/domains/example.org", {"name": "example.org"}),
    ("PUT", "/domains/ex%C3%A4mple.org/catch-all", {"name": "exämple.org"}),
    ("GET", "/domains/a%2Fb", {"name": "a/b"}),
    ("GET", "/files/", {"rest": ""}),
    ("GET", "/files/a/b%20c/d", {"rest": "a/b c/d"}),
    ("HEAD", "/healthz", {}),
])
def test_match(method, path, params):
    _, got = resolve(make_router(), method, path)
    assert got == params


@pytest.mark.parametrize("path", ["/nothing", "/domains", "/domains/", "/domains/x/y",
                                  "/healthz/", "/domains/x/catch-all/more"])
def test_not_found(path):
    with pytest.raises(HTTPError) as info:
        resolve(make_router(), "GET", path)
    assert info.value.status == 404
    assert info.value.code == "not_found"


def test_wrong_method_is_405_with_allow():
    with pytest.raises(HTTPError) as info:
        resolve(make_router(), "POST", "/domains/example.org")
    assert info.value.status == 405
    assert dict(info.value.headers)["allow"] == "DELETE, GET, HEAD"


def test_encoded_slash_never_selects_another_route():
    # "/domains/x%2Fcatch-all" is one segment: GET matches get-domain, PUT is not allowed.
    router = make_router()
    _, params = router.resolve("GET", "/domains/x%2Fcatch-all")
    assert params == {"name": "x/catch-all"}
    with pytest.raises(HTTPError) as info:
        router.resolve("PUT", "/domains/x%2Fcatch-all")
    assert info.value.status == 405


def test_relative_target_is_400():
    with pytest.raises(HTTPError) as info:
        make_router().resolve("GET", "*")
    assert info.value.status == 400


def test_mount_and_dispatch():
    api = Router()
    api.add("GET", "/domains/{name}", handler("api"))
    api.add("GET", "/", handler("api-root"))
    root = Router()
    root.mount("/api", api)
    peer = Peer(address=("127.0.0.1", 1))
    response = asyncio.run(root.dispatch(Request("GET", "/api/domains/x.org?a=1", [], b"", peer)))
    assert response.status == 200
    assert response.body == b'{"tag":"api","params":{"name":"x.org"}}'
    response = asyncio.run(root.dispatch(Request("GET", "/api", [], b"", peer)))
    assert response.body.startswith(b'{"tag":"api-root"')


@pytest.mark.parametrize("pattern", ["nope", "/a/{", "/a/{x}/{x}", "/a/{1x}", "/a/{r:path}/b",
                                     "/a/{x:int}", "/a/b{x}"])
def test_bad_patterns(pattern):
    with pytest.raises(ValueError):
        Router().add("GET", pattern, handler("x"))


def test_duplicate_route_and_bad_method():
    r = make_router()
    with pytest.raises(ValueError):
        r.add("GET", "/healthz", handler("again"))
    with pytest.raises(ValueError):
        r.add("BREW", "/coffee", handler("x"))


def test_decorator_registers():
    r = Router()

    @r.route("post", "/things")
    async def create(request: Request) -> Response:
        return Response.empty(201)

    found, _ = r.resolve("POST", "/things")
    assert found is create


def test_request_json_and_query_errors():
    peer = Peer(address=None)

    def req(body: bytes, ctype: str = "application/json", target: str = "/") -> Request:
        return Request("POST", target, [("content-type", ctype)], body, peer)

    assert req(b'{"a": 1}').json() == {"a": 1}
    assert req(b"[1]", ctype="application/merge-patch+json").json(list) == [1]
    for body, ctype, status in [(b"", "application/json", 400), (b"{", "application/json", 400),
                                (b"[1]", "application/json", 400), (b"{}", "text/plain", 415),
                                (b"\xff", "application/json", 400)]:
        with pytest.raises(HTTPError) as info:
            req(body, ctype).json()
        assert info.value.status == status
    r = req(b"", target="/x?domain=a.org&domain=b.org&flag")
    assert r.query_param("flag") == ""
    assert r.query_param("missing", "d") == "d"
    with pytest.raises(HTTPError) as info:
        r.query_param("domain")
    assert info.value.code == "bad_query"
