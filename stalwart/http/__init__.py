"""HTTP for the http pool: an h11 server over asyncio Protocols, a router, the REST API.

- ``message``: Request, Response, HTTPError (the JSON error body shared by all endpoints)
- ``router``: (method, path pattern) -> async handler; routers mount on each other
- ``connection``: one HTTP/1.1 connection (h11), limits, timeouts, backpressure
- ``server``: ``serve(ctx)`` for the http worker, ``HttpServer`` for any socket set
- ``tls``: SSLContext from ``Config.certificates`` with SNI
- ``api``: the REST management API under ``/api``
"""
