"""The HTTP/1.1 connection: keep-alive, pipelining, split input, limits, timeouts, errors,
draining. Real sockets (a temporary Unix socket), raw bytes in, h11-parsed replies out."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from pathlib import Path

import orjson
import pytest

from stalwart.http.connection import Limits
from stalwart.http.message import HTTPError, Request, Response
from stalwart.http.router import Router
from stalwart.http.testing import RawClient, serving

GET = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"


def make_app(events: list | None = None) -> Router:
    router = Router()

    async def echo(request: Request) -> Response:
        if events is not None:
            events.append(request.target)
        return Response.json({"method": request.method, "target": request.target,
                              "body": request.body.decode("latin-1"),
                              "peer_uid": request.peer.uid,
                              "admin": request.peer.admin_socket})

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_param("s", "0.3")))
        return Response.text("slow done")

    async def boom(request: Request) -> Response:
        raise RuntimeError("secret internal detail")

    async def refuse(request: Request) -> Response:
        raise HTTPError(409, "already there", code="exists")

    async def wrong(request: Request) -> Response:
        return "not a response"  # type: ignore[return-value]

    async def json_in(request: Request) -> Response:
        return Response.json({"got": request.json()})

    async def stream(request: Request) -> Response:
        async def chunks():
            for i in range(3):
                yield f"part{i};".encode()
        return Response(200, [("content-type", "text/plain")], stream=chunks())

    for method in ("GET", "POST", "PUT"):
        router.add(method, "/echo", echo)
    router.add("GET", "/slow", slow)
    router.add("GET", "/boom", boom)
    router.add("GET", "/refuse", refuse)
    router.add("GET", "/wrong", wrong)
    router.add("POST", "/json", json_in)
    router.add("GET", "/stream", stream)
    return router


@pytest.fixture
def sock_path():
    tmp = tempfile.mkdtemp(prefix="sw-http-", dir="/tmp")
    yield Path(tmp) / "s.sock"
    shutil.rmtree(tmp, ignore_errors=True)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _with_client(sock_path, body, limits=Limits(), app=None):
    async with serving((app or make_app()).dispatch, unix_path=sock_path,
                       limits=limits) as (server, _):
        client = await RawClient.unix(sock_path)
        try:
            return await body(client, server)
        finally:
            await client.close()


def test_get_and_keep_alive(sock_path):
    async def body(c, server):
        for i in range(3):
            await c.send(f"GET /echo?i={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, headers, data = await c.response()
            assert head.status_code == 200
            assert orjson.loads(data)["target"] == f"/echo?i={i}"
            assert headers["content-type"] == "application/json"
            assert "date" in headers and int(headers["content-length"]) == len(data)
        assert len(server.connections) == 1
    run(_with_client(sock_path, body))


def test_unix_peer_credentials_reach_the_request(sock_path):
    import os

    async def body(c, server):
        await c.send(GET)
        _, _, data = await c.response()
        reply = orjson.loads(data)
        assert reply["peer_uid"] == os.geteuid()
        assert reply["admin"] is True
    run(_with_client(sock_path, body))


def test_pipelined_requests_answered_in_order(sock_path):
    events: list = []
    burst = b"".join(
        f"POST /echo?n={i} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nb{i:02d}".encode()
        for i in range(20))
    burst += b"GET /slow?s=0.05 HTTP/1.1\r\nHost: x\r\n\r\n" + GET

    async def body(c, server):
        await c.send(burst)
        for i in range(20):
            _, _, data = await c.response()
            reply = orjson.loads(data)
            assert reply["target"] == f"/echo?n={i}" and reply["body"] == f"b{i:02d}"
        assert (await c.response())[2] == b"slow done"
        assert orjson.loads((await c.response())[2])["target"] == "/echo"
    run(_with_client(sock_path, body, app=make_app(events)))
    assert events[:3] == ["/echo?n=0", "/echo?n=1", "/echo?n=2"]


@pytest.mark.parametrize("split", ["whole", "bytes", "random"])
def test_split_input(sock_path, split):
    request = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    if split == "whole":
        pieces = [request]
    elif split == "bytes":
        pieces = [request[i:i + 1] for i in range(len(request))]
    else:
        rnd = random.Random(7)
        cuts = sorted(rnd.sample(range(1, len(request)), 12))
        pieces = [request[a:b] for a, b in zip([0] + cuts, cuts + [len(request)])]

    async def body(c, server):
        for piece in pieces:
            await c.send(piece)
        _, _, data = await c.response()
        assert orjson.loads(data)["body"] == "hello world"
    run(_with_client(sock_path, body))


@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /echo HTTP/1.1\r\n\r\n", 400),                          # no Host (RFC 9112 3.2)
    (b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"GET /echo HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    (b"GET /echo HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
])
def test_malformed_requests_get_an_error_and_close(sock_path, raw, status):
    async def body(c, server):
        await c.send(raw)
        head, headers, data = await c.response()
        assert head.status_code == status
        assert headers["connection"] == "close"
        assert set(orjson.loads(data)) == {"error", "detail"}
        assert await c.closed()
    run(_with_client(sock_path, body))


def test_header_limit_is_431(sock_path):
    async def body(c, server):
        await c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
        head, _, data = await c.response()
        assert head.status_code == 431
        assert orjson.loads(data)["error"] == "headers_too_large"
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(max_header_bytes=1024)))


def test_header_limit_when_the_head_arrives_in_pieces(sock_path):
    async def body(c, server):
        await c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        for _ in range(5):       # 31 + 5 * 210 bytes: only the last piece crosses 1024
            await c.send(b"X-Part: " + b"b" * 200 + b"\r\n")
            await asyncio.sleep(0.01)
        head, _, _ = await c.response()
        assert head.status_code == 431
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(max_header_bytes=1024)))


def test_long_target_is_414(sock_path):
    async def body(c, server):
        await c.send(b"GET /echo?" + b"q" * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, _ = await c.response()
        assert head.status_code == 414
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(max_target_bytes=512)))


def test_body_limit_by_content_length_is_413_before_reading(sock_path):
    async def body(c, server):
        await c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        head, _, data = await c.response()
        assert head.status_code == 413
        assert orjson.loads(data)["error"] == "too_large"
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(max_body_bytes=100)))


def test_body_limit_for_chunked_body(sock_path):
    async def body(c, server):
        await c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"40\r\n" + b"x" * 64 + b"\r\n" + b"40\r\n" + b"y" * 64 + b"\r\n")
        head, _, _ = await c.response()
        assert head.status_code == 413
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(max_body_bytes=100)))


def test_body_at_the_limit_is_accepted(sock_path):
    async def body(c, server):
        await c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"z" * 100)
        head, _, data = await c.response()
        assert head.status_code == 200 and len(orjson.loads(data)["body"]) == 100
    run(_with_client(sock_path, body, limits=Limits(max_body_bytes=100)))


def test_expect_100_continue(sock_path):
    async def body(c, server):
        await c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await c.send(b"ok")
        head, _, data = await c.response()
        assert head.status_code == 200 and orjson.loads(data)["body"] == "ok"
    run(_with_client(sock_path, body))


def test_handler_errors(sock_path):
    async def body(c, server):
        await c.send(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, data = await c.response()
        assert head.status_code == 500
        assert b"secret" not in data and orjson.loads(data)["error"] == "internal"
        await c.send(b"GET /refuse HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, data = await c.response()
        assert head.status_code == 409
        assert orjson.loads(data) == {"error": "exists", "detail": "already there"}
        await c.send(b"GET /wrong HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await c.response())[0].status_code == 500
        await c.send(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await c.response())[0].status_code == 404
        await c.send(b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        head, headers, _ = await c.response()
        assert head.status_code == 405 and headers["allow"] == "GET, HEAD, POST, PUT"
        # The connection survived all of that.
        await c.send(GET)
        assert (await c.response())[0].status_code == 200
    run(_with_client(sock_path, body))


def test_json_body_errors(sock_path):
    async def body(c, server):
        for payload, status, code in [(b'{"a":[1,2]}', 200, None), (b"{nope", 400, "invalid_json"),
                                      (b"[]", 400, "invalid_json")]:
            await c.send(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            head, _, data = await c.response()
            assert head.status_code == status
            if code:
                assert orjson.loads(data)["error"] == code
    run(_with_client(sock_path, body))


def test_head_has_length_but_no_body(sock_path):
    async def body(c, server):
        await c.send(b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        head, headers, data = await c.response(head=True)
        assert head.status_code == 200 and data == b""
        assert int(headers["content-length"]) > 0
        await c.send(GET)
        assert (await c.response())[0].status_code == 200
    run(_with_client(sock_path, body))


def test_streamed_response_is_chunked(sock_path):
    async def body(c, server):
        await c.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head, headers, data = await c.response()
        assert headers["transfer-encoding"] == "chunked"
        assert data == b"part0;part1;part2;"
    run(_with_client(sock_path, body))


def test_http10_closes_after_the_response(sock_path):
    async def body(c, server):
        await c.send(b"GET /echo HTTP/1.0\r\n\r\n")
        raw = await asyncio.wait_for(c.reader.read(), 5)
        assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"}")
    run(_with_client(sock_path, body))


def test_half_closed_client_still_gets_its_answer(sock_path):
    async def body(c, server):
        await c.send(GET)
        c.writer.write_eof()
        head, _, _ = await c.response()
        assert head.status_code == 200
        assert await c.closed()
    run(_with_client(sock_path, body))


def test_idle_timeout_closes_silently(sock_path):
    async def body(c, server):
        await c.send(GET)
        await c.response()
        assert await c.closed(timeout=3)   # no 408 for an idle keep-alive connection
    run(_with_client(sock_path, body, limits=Limits(idle_timeout=0.2)))


def test_slow_head_gets_408(sock_path):
    async def body(c, server):
        await c.send(b"GET /echo HTTP/1.1\r\nHo")
        for _ in range(2):                      # dribbling does not extend the deadline
            await asyncio.sleep(0.1)
            await c.send(b"s")
        head, _, data = await c.response()
        assert head.status_code == 408 and orjson.loads(data)["error"] == "timeout"
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(header_timeout=0.25, idle_timeout=5)))


def test_stalled_body_gets_408(sock_path):
    async def body(c, server):
        await c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        head, _, _ = await c.response()
        assert head.status_code == 408
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(body_timeout=0.2)))


def test_max_requests_per_connection(sock_path):
    async def body(c, server):
        await c.send(GET)
        assert "connection" not in (await c.response())[1]
        await c.send(GET)
        assert (await c.response())[1]["connection"] == "close"
        assert await c.closed()
    run(_with_client(sock_path, body, limits=Limits(max_requests=2)))


def test_drain_closes_idle_and_finishes_busy_connections(sock_path):
    async def main():
        async with serving(make_app().dispatch, unix_path=sock_path) as (server, _):
            idle = await RawClient.unix(sock_path)
            busy = await RawClient.unix(sock_path)
            await idle.send(GET)
            await idle.response()
            await busy.send(b"GET /slow?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.1)
            drain = asyncio.create_task(server.drain(5))
            assert await idle.closed()
            head, headers, data = await busy.response()
            assert data == b"slow done" and headers["connection"] == "close"
            assert await busy.closed()
            await drain
            assert not server.connections
            with pytest.raises(OSError):
                await RawClient.unix(sock_path)   # no longer accepting
            await idle.close()
            await busy.close()
    run(main())


def test_drain_aborts_what_does_not_finish_in_time(sock_path):
    async def main():
        async with serving(make_app().dispatch, unix_path=sock_path) as (server, _):
            busy = await RawClient.unix(sock_path)
            await busy.send(b"GET /slow?s=10 HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.1)
            loop = asyncio.get_running_loop()
            start = loop.time()
            await server.drain(0.2)
            assert loop.time() - start < 2
            assert await busy.closed()
            await busy.close()
    run(main())
