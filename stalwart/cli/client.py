"""The management API client of stalwart-cli (standard library only).

Two transports:

- the admin Unix socket (``UnixHTTPConnection``): no password; the server trusts the
  peer's uid, so the CLI must run as root or as the server's user;
- TCP, plain or TLS (``--url``), with HTTP Basic credentials.

Every failure becomes a ``CliError`` carrying the process exit code, so ``main`` has one
place that prints errors:

====  ==========================================================
0     success
1     unexpected error (a 5xx other than 503, a malformed reply)
2     invalid input (command line, or the server said 400)
3     the server is not running, cannot be reached, or answered 503
4     authentication or authorization failed (401/403, socket permission)
5     not found (404)
6     conflict (409: exists, in use)
====  ==========================================================
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_CONFLICT = 6

_EXIT_FOR_STATUS = {400: EXIT_INVALID, 401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND,
                    405: EXIT_ERROR, 409: EXIT_CONFLICT, 413: EXIT_INVALID,
                    415: EXIT_INVALID, 503: EXIT_UNREACHABLE}


class CliError(Exception):
    """Something the user must hear about; ``exit_code`` is the process status."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix stream socket."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Target:
    """Where the server is: a Unix socket path, or a URL with credentials."""

    socket_path: Path | None = None
    url: str | None = None
    user: str | None = None
    password: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout: float = 30.0

    def describe(self) -> str:
        return str(self.socket_path) if self.socket_path is not None else str(self.url)


class ApiClient:
    """Calls the management API and decodes its JSON replies."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._base_path = ""
        if target.url is not None:
            parts = urlsplit(target.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise CliError(f"--url must look like https://host:port, not {target.url!r}",
                               EXIT_INVALID)
            if parts.username or parts.password:
                raise CliError("put credentials in --user/--password (or the environment), "
                               "not in the URL", EXIT_INVALID)
            try:
                self._port = parts.port
            except ValueError:
                raise CliError(f"bad port in --url {target.url!r}", EXIT_INVALID) from None
            self._scheme = parts.scheme
            self._host = parts.hostname
            self._base_path = parts.path.rstrip("/")
        elif target.socket_path is None:
            raise CliError("no server address: give --url or a socket", EXIT_INVALID)

    def _connection(self) -> http.client.HTTPConnection:
        t = self.target
        if t.socket_path is not None:
            return UnixHTTPConnection(t.socket_path, timeout=t.timeout)
        if self._scheme == "https":
            context = ssl.create_default_context(cafile=t.ca_file)
            if not t.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self._host, self._port, timeout=t.timeout,
                                               context=context)
        return http.client.HTTPConnection(self._host, self._port, timeout=t.timeout)

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": "stalwart-cli"}
        if body is not None:
            headers["content-type"] = "application/json"
        t = self.target
        if t.socket_path is None:
            if not t.user or t.password is None:
                raise CliError("--url needs credentials: --user and --password, or "
                               "STALWART_ADMIN_USER and STALWART_ADMIN_PASSWORD", EXIT_AUTH)
            token = base64.b64encode(f"{t.user}:{t.password}".encode("utf-8")).decode("ascii")
            headers["authorization"] = f"Basic {token}"
        return headers

    def _unreachable(self, exc: BaseException) -> CliError:
        t = self.target
        if t.socket_path is not None:
            if isinstance(exc, FileNotFoundError):
                return CliError(f"the server is not running: {t.socket_path} does not exist "
                                f"(start stalwart-master, or point --config/--socket/--url "
                                f"at the right server)", EXIT_UNREACHABLE)
            if isinstance(exc, PermissionError):
                return CliError(f"permission denied on {t.socket_path}: run stalwart-cli as "
                                f"root or as the user the server runs as", EXIT_AUTH)
            if isinstance(exc, ConnectionRefusedError):
                return CliError(f"the server is not running: nobody listens on "
                                f"{t.socket_path}", EXIT_UNREACHABLE)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return CliError(f"TLS certificate of {t.url} is not trusted: {exc.verify_message}"
                            f" (use --ca-file, or --insecure for a self-signed test server)",
                            EXIT_UNREACHABLE)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return CliError(f"no answer from {t.describe()} within {t.timeout:g}s",
                            EXIT_UNREACHABLE)
        return CliError(f"cannot reach the server at {t.describe()}: {exc}", EXIT_UNREACHABLE)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; the decoded JSON reply (None for 204), or CliError."""
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = self._headers(payload)
        conn = self._connection()
        try:
            conn.request(method, self._base_path + path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:          # includes TLS errors, timeouts, refused, reset
            raise self._unreachable(exc) from None
        except http.client.HTTPException as exc:
            raise CliError(f"malformed reply from the server: {exc!r}") from None
        finally:
            conn.close()
        data = None
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                raise CliError(f"the server answered {response.status} with a body that is "
                               f"not JSON") from None
        if response.status >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            code = data.get("error") if isinstance(data, dict) else None
            message = detail or f"the server answered {response.status} {response.reason}"
            if response.status == 401:
                message = f"authentication failed: {message}"
            elif response.status == 403:
                message = f"not allowed: {message}"
            elif code == "unavailable":
                message = f"the server is not ready: {message}"
            raise CliError(message, _EXIT_FOR_STATUS.get(response.status, EXIT_ERROR))
        return data


def segment(value: str) -> str:
    """A path segment with everything but unreserved characters percent-encoded."""
    return quote(value, safe="@")
