"""Logging of every stalwart process: text or JSON lines to stdout, files or journald.

Theory of operation
-------------------
``setup(tracers, label)`` turns the config's tracers (``[tracer.<id>]``, see
``stalwart.config.settings.tracer``) into handlers on the root logger, replacing the ones a
previous call installed (the master calls it again after a reload). Every record carries
the *process label* set with ``set_label`` (``master``, ``store``, ``imap.2``, ...), so the
lines of the master and of each worker can be told apart in one stream.

Each line is written with ONE ``write(2)`` on a file descriptor opened ``O_APPEND`` (or on
standard output), never through a buffered stream: records of several processes sharing a
file or a pipe never interleave within a line, and nothing sits in a user-space buffer that
``fork()`` would duplicate.

Formats (one record, one line)::

    text  2025-05-01T10:00:00.123Z WARN stalwart[4242] imap.2: auth failed: protocol=imap ...
    json  {"timestamp":"2025-05-01T10:00:00.123Z","level":"WARN","pid":4242,
           "process":"imap.2","logger":"stalwart.auth","message":"auth failed: ...", ...}

Destinations:

- ``stdout``: standard output of the process (inherited by the workers from the master).
- ``log``: ``<path>/<prefix>.log``; ``reopen()`` (SIGUSR1, after logrotate moved the file)
  opens the path again. Files are created mode 0640.
- ``journal``: the native journald protocol, written here: one datagram per record to
  ``/run/systemd/journal/socket`` made of ``FIELD=value`` lines, with the length-prefixed
  binary form for values that contain a newline; a record too large for a datagram is
  passed as a sealed memfd (SCM_RIGHTS), as journald expects. Fields: ``MESSAGE``,
  ``PRIORITY``, ``SYSLOG_IDENTIFIER=stalwart``, ``SYSLOG_PID``, ``STALWART_PROCESS``,
  ``LOGGER``, ``CODE_*`` and the record's structured fields upper-cased.

The fail2ban line
-----------------
``auth_failure(protocol, remote_ip, login, reason)`` logs one line at WARN whose message is
always::

    auth failed: protocol=imap remote_ip=203.0.113.5 login="bob" reason="invalid credentials"

``protocol`` and ``remote_ip`` come first and are never attacker-controlled text (the
address is normalized: an IPv4-mapped IPv6 address is logged as IPv4); ``login`` and
``reason`` are quoted JSON strings (quotes, backslashes and control characters escaped), so
a login name cannot forge another address into the line. In JSON mode the same four values
are also separate fields, and ``event`` is ``"auth.failed"``.
``packaging/fail2ban/filter.d/stalwart.conf`` matches both forms.
"""

from __future__ import annotations

import array
import errno
import ipaddress
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable

__all__ = ["setup", "set_label", "label", "reopen", "auth_failure", "format_auth_failure",
           "TRACE", "JOURNAL_SOCKET"]

#: Level below DEBUG for the config's ``trace``.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

#: Config level names -> logging levels.
LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
          "debug": logging.DEBUG, "trace": TRACE}

#: logging level -> the short name printed in lines.
_LEVEL_NAMES = {logging.CRITICAL: "CRIT", logging.ERROR: "ERROR", logging.WARNING: "WARN",
                logging.INFO: "INFO", logging.DEBUG: "DEBUG", TRACE: "TRACE"}

#: logging level -> syslog priority (journald PRIORITY).
_PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
               logging.DEBUG: 7, TRACE: 7}

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "stalwart"

#: Logins longer than this are cut in the auth-failure line (an attacker picks them).
MAX_LOGIN = 256

_label = "master"
_installed: list[logging.Handler] = []

auth_log = logging.getLogger("stalwart.auth")


def set_label(value: str) -> None:
    """Name this process in every line it logs from now on (``imap.2``, ``store``)."""
    global _label
    _label = value


def label() -> str:
    return _label


# --------------------------------------------------------------------------- formats

def _timestamp(created: float) -> str:
    whole = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + \
        ".%03dZ" % int((created - whole) * 1000)


def _level_name(levelno: int) -> str:
    return _LEVEL_NAMES.get(levelno) or logging.getLevelName(levelno)


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        return record.stack_info
    return None


class TextFormatter(logging.Formatter):
    """``TIME LEVEL stalwart[PID] LABEL: MESSAGE``; a traceback follows, indented."""

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{_timestamp(record.created)} {_level_name(record.levelno)} "
                f"{IDENTIFIER}[{record.process}] {_label}: {record.getMessage()}")
        extra = _exception_text(record)
        if extra:
            line += "\n" + "\n".join("    " + part for part in extra.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; structured fields (``extra={"fields": {...}}``) merged in."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": _level_name(record.levelno),
            "pid": record.process,
            "process": _label,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            for key, value in fields.items():
                doc.setdefault(key, value)
        extra = _exception_text(record)
        if extra:
            doc["exception"] = extra
        return json.dumps(doc, ensure_ascii=False, default=str)


# --------------------------------------------------------------------------- handlers

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


class FdHandler(logging.Handler):
    """Writes each formatted record with one ``write(2)`` on a file descriptor."""

    def __init__(self, fd: int, level: int, formatter: logging.Formatter) -> None:
        super().__init__(level)
        self.fd = fd
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write_all(self.fd, (self.format(record) + "\n").encode("utf-8", "replace"))
        except OSError:
            self.handleError(record)

    def reopen(self) -> None:
        """Nothing to reopen for an inherited descriptor."""


class StdoutHandler(FdHandler):
    def __init__(self, level: int, formatter: logging.Formatter) -> None:
        super().__init__(sys.__stdout__.fileno() if sys.__stdout__ else 1, level, formatter)


class FileHandler(FdHandler):
    """``O_APPEND`` file; ``reopen()`` follows a rename by logrotate (SIGUSR1)."""

    def __init__(self, path: Path, level: int, formatter: logging.Formatter) -> None:
        self.path = Path(path)
        super().__init__(self._open(), level, formatter)

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def reopen(self) -> None:
        try:
            fd = self._open()
        except OSError as exc:
            # keep writing to the old descriptor rather than losing records
            logging.getLogger("stalwart.log").error("cannot reopen %s: %s", self.path, exc)
            return
        old, self.fd = self.fd, fd
        os.close(old)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
        super().close()


def journal_fields(record: logging.LogRecord, message: str) -> list[tuple[str, str]]:
    """The journald fields of one record."""
    fields = [
        ("MESSAGE", message),
        ("PRIORITY", str(_PRIORITIES.get(record.levelno, 6))),
        ("SYSLOG_IDENTIFIER", IDENTIFIER),
        ("SYSLOG_PID", str(record.process)),
        ("STALWART_PROCESS", _label),
        ("LOGGER", record.name),
        ("CODE_FILE", record.pathname),
        ("CODE_LINE", str(record.lineno)),
        ("CODE_FUNC", record.funcName),
    ]
    extra = _exception_text(record)
    if extra:
        fields.append(("EXCEPTION", extra))
    for key, value in (getattr(record, "fields", None) or {}).items():
        name = "".join(c if c.isalnum() else "_" for c in str(key).upper()).lstrip("_")
        if name and name[0].isalpha():
            fields.append((name, str(value)))
    return fields


def encode_journal(fields: Iterable[tuple[str, str]]) -> bytes:
    """The native journal protocol: ``NAME=value\\n``, or ``NAME\\n<u64 LE len>value\\n``."""
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Native journald datagrams; large records travel in a sealed memfd."""

    def __init__(self, level: int, formatter: logging.Formatter,
                 address: str = JOURNAL_SOCKET) -> None:
        super().__init__(level)
        self.setFormatter(formatter)
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if isinstance(self.formatter, JsonFormatter):
                message = self.format(record)
            self.send(encode_journal(journal_fields(record, message)))
        except OSError:
            self.handleError(record)

    def send(self, payload: bytes) -> None:
        try:
            self.sock.sendto(payload, self.address)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(payload)

    def _send_memfd(self, payload: bytes) -> None:
        fd = os.memfd_create("stalwart-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            _write_all(fd, payload)
            import fcntl
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW |
                        fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            self.sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    array.array("i", [fd]))], 0, self.address)
        finally:
            os.close(fd)

    def reopen(self) -> None:
        """Datagrams need no reopening."""

    def close(self) -> None:
        self.sock.close()
        super().close()


# --------------------------------------------------------------------------- setup

def _handler_for(tracer: Any) -> logging.Handler:
    level = LEVELS[tracer.level]
    formatter: logging.Formatter = JsonFormatter() if tracer.format == "json" else TextFormatter()
    if tracer.type == "stdout":
        return StdoutHandler(level, formatter)
    if tracer.type == "log":
        return FileHandler(Path(tracer.path) / f"{tracer.prefix}.log", level, formatter)
    if tracer.type == "journal":
        return JournalHandler(level, formatter)
    raise ValueError(f"unknown tracer type {tracer.type!r}")


def setup(tracers: Iterable[Any], process_label: str | None = None) -> None:
    """Install one handler per tracer on the root logger, replacing earlier ones.

    Raises ``OSError`` when a log file cannot be opened; the handlers installed before are
    then kept, so a bad reload does not silence the server.
    """
    if process_label is not None:
        set_label(process_label)
    handlers = []
    try:
        for tracer in tracers:
            handlers.append(_handler_for(tracer))
    except BaseException:
        for h in handlers:
            h.close()
        raise
    root = logging.getLogger()
    for h in _installed:
        root.removeHandler(h)
        h.close()
    _installed[:] = handlers
    for h in handlers:
        root.addHandler(h)
    # The root level lets through what the most verbose tracer wants; each handler
    # filters to its own level. No tracer at all: only errors are even formatted.
    root.setLevel(min((h.level for h in handlers), default=logging.ERROR))


def reopen() -> None:
    """Reopen every log file (SIGUSR1, after log rotation)."""
    for h in _installed:
        reopen_handler = getattr(h, "reopen", None)
        if reopen_handler is not None:
            reopen_handler()


def file_paths() -> list[Path]:
    """The log files the installed handlers write (the master chowns them for workers)."""
    return [h.path for h in _installed if isinstance(h, FileHandler)]


# --------------------------------------------------------------------------- auth line

def _normalize_ip(remote_ip: str) -> str:
    try:
        addr = ipaddress.ip_address(str(remote_ip).split("%", 1)[0])
    except ValueError:
        # Not an address (a Unix socket peer): quoted, so it can never pass for one.
        return json.dumps(str(remote_ip), ensure_ascii=True)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _quote(value: str, limit: int | None = None) -> str:
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text, ensure_ascii=False)


def format_auth_failure(protocol: str, remote_ip: str, login: str, reason: str) -> str:
    """The message of the auth-failure line (without the line's prefix)."""
    proto = "".join(c for c in str(protocol).lower() if c.isalnum() or c in "-_") or "unknown"
    return (f"auth failed: protocol={proto} remote_ip={_normalize_ip(remote_ip)} "
            f"login={_quote(login, MAX_LOGIN)} reason={_quote(reason)}")


def auth_failure(protocol: str, remote_ip: str, login: str, reason: str) -> None:
    """Log one failed authentication: the stable line fail2ban matches (see module doc)."""
    message = format_auth_failure(protocol, remote_ip, login, reason)
    auth_log.warning("%s", message, extra={"fields": {
        "event": "auth.failed", "protocol": str(protocol).lower(),
        "remote_ip": _normalize_ip(remote_ip).strip('"'),
        "login": str(login)[:MAX_LOGIN], "reason": str(reason)}})
