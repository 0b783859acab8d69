"""Mixed IMAP load, 100 clients on one 10,000-message mailbox: ours against Dovecot.

    python -m bench.macro.imap_mixed [--clients 100] [--messages 10000] [--duration 30]
                                     [--ops-per-session 20] [--workers 2]

Both servers run on this machine in the same run: Dovecot 2.3 from ../shared/anchors
(``--perf``: long-lived imap processes), and ``stalwart-master`` with ``--workers`` IMAP
workers and its RocksDB store. Both mailboxes hold the same messages: ``anchors fill``
writes them into Dovecot's Maildir, and the same files (flags included) are APPENDed to
ours (MULTIAPPEND batches) before the clock starts.

The load (one asyncio process, raw sockets, so the client costs the same for both):
``--clients`` concurrent clients, each in a loop of sessions: connect and LOGIN, SELECT
INBOX, then ``--ops-per-session`` operations drawn at random (weights in ``MIX``) and
LOGOUT. Every command is one timed operation (LOGIN includes the connect):

    fetch_flags    UID FETCH of 50 consecutive UIDs (FLAGS)
    fetch_headers  UID FETCH of 20 UIDs BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)]
    fetch_body     UID FETCH of one UID BODY.PEEK[]
    store          UID STORE +FLAGS/-FLAGS (\\Flagged) on a UID of the client's own slice
    search         UID SEARCH FLAGGED / UNSEEN / SINCE <date> (in turn)
    idle           IDLE, wait for "+", DONE, wait for the tagged OK

Reported per server: operations/s over ``--duration`` seconds, p50 and p99 latency for
all operations and per kind; then the ratio ours / Dovecot. Correctness: every command
answered OK, every FETCH returned one response per existing UID asked, every BODY[] was
the size RFC822.SIZE announced; at the end, UID SEARCH FLAGGED on each server equals the
flags the clients last set (each client STOREs only UIDs of its own slice, so the final
state is known), and the mailbox still holds ``--messages`` messages.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from .common import BENCH_USER, STATE, wait_port

REPO = Path(__file__).resolve().parents[2]
ANCHORS = Path(os.environ.get("STALWART_ANCHORS", REPO.parent / "shared" / "anchors" / "anchors"))
OUR_IMAP = 21420
ANCHOR_PORTS = {"ANCHOR_IMAP_PORT": 21421, "ANCHOR_POP3_PORT": 21422,
                "ANCHOR_LMTP_PORT": 21423, "ANCHOR_SMTP_PORT": 21424}
USER, PASSWORD = "user1", "pass"
MIX = {"fetch_flags": 25, "fetch_headers": 20, "fetch_body": 15, "store": 15, "search": 15,
       "idle": 10}
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen"}


# ---------------------------------------------------------------------------- the client

class ImapError(Exception):
    pass


class Conn:
    """A minimal IMAP client: one command at a time, literals read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer
        self.n = 0

    @classmethod
    async def open(cls, port: int) -> "Conn":
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
        c = cls(reader, writer)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting {greeting!r}")
        return c

    async def _response(self) -> bytes:
        """One response: a line plus the literals it announces, as one bytes object."""
        line = await self.r.readline()
        if not line:
            raise ImapError("connection closed")
        out = line
        while line.endswith(b"}\r\n"):
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m is None:
                break
            out += await self.r.readexactly(int(m.group(1)))
            line = await self.r.readline()
            out += line
        return out

    async def cmd(self, text: str) -> list[bytes]:
        self.n += 1
        tag = f"t{self.n}".encode()
        self.w.write(tag + b" " + text.encode() + b"\r\n")
        out = []
        while True:
            resp = await self._response()
            if resp.startswith(tag + b" "):
                if not resp.startswith(tag + b" OK"):
                    raise ImapError(f"{text[:60]!r}: {resp[:200]!r}")
                return out
            out.append(resp)

    async def idle(self) -> None:
        self.n += 1
        tag = f"t{self.n}".encode()
        self.w.write(tag + b" IDLE\r\n")
        while True:
            resp = await self._response()
            if resp.startswith(b"+"):
                break
            if resp.startswith(tag):
                raise ImapError(f"IDLE: {resp!r}")
        self.w.write(b"DONE\r\n")
        while True:
            resp = await self._response()
            if resp.startswith(tag + b" "):
                if not resp.startswith(tag + b" OK"):
                    raise ImapError(f"IDLE: {resp!r}")
                return

    async def close(self) -> None:
        try:
            self.w.write(b"z LOGOUT\r\n")
            await asyncio.wait_for(self.r.read(), 5)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        self.w.close()


class Stats:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = {}
        self.errors: list[str] = []

    def add(self, kind: str, seconds: float) -> None:
        self.lat.setdefault(kind, []).append(seconds)

    def all(self) -> list[float]:
        return [x for v in self.lat.values() for x in v]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


async def _client(cid: int, nclients: int, port: int, uids: list[int], stop: float,
                  ops_per_session: int, stats: Stats, flagged: dict[int, bool],
                  rng: random.Random) -> None:
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    mine = [u for u in uids if u % nclients == cid] or uids[:1]
    searches = ["UID SEARCH FLAGGED", "UID SEARCH UNSEEN", "UID SEARCH SINCE 1-Jun-2024"]
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        t0 = loop.time()
        try:
            c = await Conn.open(port)
            await c.cmd(f"LOGIN {USER} {PASSWORD}")
        except (OSError, ImapError, asyncio.IncompleteReadError) as exc:
            stats.errors.append(f"login: {exc}")
            await asyncio.sleep(0.1)
            continue
        stats.add("login", loop.time() - t0)
        try:
            t0 = loop.time()
            await c.cmd("SELECT INBOX")
            stats.add("select", loop.time() - t0)
            for _ in range(ops_per_session):
                if loop.time() >= stop:
                    break
                kind = rng.choices(kinds, weights)[0]
                t0 = loop.time()
                if kind == "fetch_flags":
                    i = rng.randrange(max(1, len(uids) - 50))
                    got = await c.cmd(f"UID FETCH {uids[i]}:{uids[min(i + 49, len(uids) - 1)]}"
                                      " (FLAGS)")
                    want = len(uids[i:i + 50])
                    if sum(1 for g in got if b" FETCH " in g) < want:
                        stats.errors.append(f"fetch_flags: {len(got)} of {want}")
                elif kind == "fetch_headers":
                    i = rng.randrange(max(1, len(uids) - 20))
                    got = await c.cmd(f"UID FETCH {uids[i]}:{uids[min(i + 19, len(uids) - 1)]}"
                                      " (BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])")
                    if sum(1 for g in got if b" FETCH " in g) < len(uids[i:i + 20]):
                        stats.errors.append("fetch_headers: missing responses")
                elif kind == "fetch_body":
                    uid = rng.choice(uids)
                    got = await c.cmd(f"UID FETCH {uid} (RFC822.SIZE BODY.PEEK[])")
                    resp = b"".join(g for g in got if b" FETCH " in g)
                    size = re.search(rb"RFC822\.SIZE (\d+)", resp)
                    lit = re.search(rb"BODY\[\] \{(\d+)\}", resp)
                    if not (size and lit and size.group(1) == lit.group(1)):
                        stats.errors.append(f"fetch_body {uid}: size mismatch")
                elif kind == "store":
                    uid = rng.choice(mine)
                    on = rng.random() < 0.5
                    await c.cmd(f"UID STORE {uid} {'+' if on else '-'}FLAGS.SILENT (\\Flagged)")
                    flagged[uid] = on
                elif kind == "search":
                    await c.cmd(searches[rng.randrange(len(searches))])
                else:
                    await c.idle()
                stats.add(kind, loop.time() - t0)
        except (OSError, ImapError, asyncio.IncompleteReadError) as exc:
            stats.errors.append(f"session: {exc}")
        finally:
            await c.close()


async def _uids(port: int) -> list[int]:
    c = await Conn.open(port)
    await c.cmd(f"LOGIN {USER} {PASSWORD}")
    await c.cmd("EXAMINE INBOX")
    got = await c.cmd("UID SEARCH ALL")
    await c.close()
    line = next(g for g in got if g.startswith(b"* SEARCH"))
    return sorted(int(x) for x in line.split()[2:])


async def _flagged(port: int) -> set[int]:
    c = await Conn.open(port)
    await c.cmd(f"LOGIN {USER} {PASSWORD}")
    await c.cmd("EXAMINE INBOX")
    got = await c.cmd("UID SEARCH FLAGGED")
    await c.close()
    line = next(g for g in got if g.startswith(b"* SEARCH"))
    return {int(x) for x in line.split()[2:]}


async def _load(port: int, clients: int, duration: float, ops: int, seed: int
                ) -> tuple[Stats, float, bool, str]:
    uids = await _uids(port)
    before = await _flagged(port)
    stats = Stats()
    flagged: dict[int, bool] = {}
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stop = t0 + duration
    await asyncio.gather(*(_client(i, clients, port, uids, stop, ops, stats, flagged,
                                   random.Random(seed * 1000 + i)) for i in range(clients)))
    elapsed = loop.time() - t0
    after = await _flagged(port)
    expected = {u for u in before if flagged.get(u, True)} | {u for u, on in flagged.items() if on}
    count = len(await _uids(port))
    ok = not stats.errors and after == expected and count == len(uids)
    why = "" if ok else (f"{len(stats.errors)} errors (first: {stats.errors[:3]}); "
                         f"flags as set: {after == expected}; messages {count}/{len(uids)}")
    return stats, elapsed, ok, why


# ---------------------------------------------------------------------------- servers

def _start_anchor(workdir: Path, messages: int) -> Path:
    d = Path(tempfile.mkdtemp(prefix="anch", dir=workdir))
    os.chmod(d, 0o755)
    env = {**os.environ, **{k: str(v) for k, v in ANCHOR_PORTS.items()}}
    with open(d.parent / f"{d.name}.log", "wb") as log:
        subprocess.run(["bash", str(ANCHORS), "start", str(d), "--users", "1", "--perf"],
                       check=True, stdout=log, stderr=subprocess.STDOUT, timeout=300, env=env)
        subprocess.run(["bash", str(ANCHORS), "fill", str(d), "--messages", str(messages)],
                       check=True, stdout=log, stderr=subprocess.STDOUT, timeout=1800, env=env)
    return d


def _stop_anchor(d: Path) -> None:
    subprocess.run(["bash", str(ANCHORS), "stop", str(d)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    (d.parent / f"{d.name}.log").unlink(missing_ok=True)
    shutil.rmtree(d, ignore_errors=True)


def _maildir_messages(d: Path) -> list[tuple[bytes, list[str]]]:
    """The anchor's INBOX, oldest first, as (raw message, IMAP flags)."""
    maildir = d / "mail" / USER / "Maildir"
    files = [p for sub in ("cur", "new") for p in (maildir / sub).iterdir()]
    files.sort(key=lambda p: (int(p.name.split(".")[0]), p.name))
    out = []
    for p in files:
        info = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
        out.append((p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
                    [MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS]))
    return out


CONFIG = """
[server]
hostname = "mx.bench.test"
[server.workers]
imap = {workers}
smtp = 1
http = 1
[[server.listener]]
id = "imap"
protocol = "imap"
bind = "127.0.0.1:{imap}"
""" + STATE + BENCH_USER


async def _fill_ours(port: int, messages: list[tuple[bytes, list[str]]]) -> None:
    c = await Conn.open(port)
    await c.cmd(f"LOGIN {USER} {PASSWORD}")
    for start in range(0, len(messages), 250):
        parts = []
        for raw, flags in messages[start:start + 250]:
            parts.append(f" ({' '.join(flags)}) {{{len(raw)}+}}\r\n".encode() + raw)
        c.n += 1
        tag = f"t{c.n}".encode()
        c.w.write(tag + b" APPEND INBOX" + b"".join(parts) + b"\r\n")
        while True:
            resp = await c._response()
            if resp.startswith(tag + b" "):
                if not resp.startswith(tag + b" OK"):
                    raise ImapError(f"fill: {resp[:200]!r}")
                break
    await c.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _start_ours(workdir: Path, workers: int) -> tuple[Path, subprocess.Popen]:
    if not _port_free(OUR_IMAP):   # SO_REUSEPORT would share it with a stray server
        raise RuntimeError(f"port {OUR_IMAP} is in use")
    d = Path(tempfile.mkdtemp(prefix="ours", dir=workdir))
    config = d / "config.toml"
    config.write_text(CONFIG.format(workers=workers, imap=OUR_IMAP, base=d / "var", user=USER,
                                    password=PASSWORD))
    env = dict(os.environ)
    bindir = Path(sys.executable).parent
    log = open(d / "daemon.log", "wb")
    master = subprocess.Popen([str(bindir / "stalwart-master"), "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=d, env=env)
    log.close()
    try:
        wait_port(OUR_IMAP)
        deadline = time.monotonic() + 60
        while not asyncio.run(_can_login(OUR_IMAP)):   # the account is synced at start
            if time.monotonic() > deadline or master.poll() is not None:
                raise RuntimeError((d / "daemon.log").read_text()[-3000:])
            time.sleep(0.2)
    except BaseException:
        _stop_ours(d, master)
        raise
    return d, master


async def _can_login(port: int) -> bool:
    try:
        c = await Conn.open(port)
        await c.cmd(f"LOGIN {USER} {PASSWORD}")
        await c.close()
        return True
    except (OSError, ImapError):
        return False


def _stop_ours(d: Path, master: subprocess.Popen) -> None:
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(60)
    except subprocess.TimeoutExpired:
        master.kill()
        master.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def _report(name: str, stats: Stats, elapsed: float) -> float:
    ops = len(stats.all())
    rate = ops / elapsed
    print(f"{name:>8}: {rate:8.0f} ops/s  p50 {_pct(stats.all(), .5):7.1f} ms  "
          f"p99 {_pct(stats.all(), .99):7.1f} ms  ({ops} ops in {elapsed:.1f} s)")
    for kind in ["login", "select", *MIX]:
        v = stats.lat.get(kind, [])
        print(f"          {kind:<14} {len(v):7d} ops  p50 {_pct(v, .5):7.1f} ms  "
              f"p99 {_pct(v, .99):7.1f} ms")
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mixed IMAP load: ours vs Dovecot")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ops-per-session", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="our imap pool size (default: one per core)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/var/tmp"))
    args = parser.parse_args(argv)
    if not Path("/usr/sbin/dovecot").exists():
        sys.exit(f"Dovecot missing: run `{ANCHORS} install`")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    workdir = Path(args.workdir)
    print(f"# IMAP mixed load: {args.clients} clients, {args.messages} messages, "
          f"{args.duration:.0f} s per server, {args.ops_per_session} ops per session, "
          f"mix {MIX}; python {platform.python_version()}, {os.cpu_count()} cpus, "
          f"our imap workers {args.workers}")
    anchor = _start_anchor(workdir, args.messages)
    ours = master = None
    try:
        messages = _maildir_messages(anchor)
        ours, master = _start_ours(workdir, args.workers)
        t0 = time.monotonic()
        asyncio.run(_fill_ours(OUR_IMAP, messages))
        print(f"# filled ours with the anchor's {len(messages)} messages in "
              f"{time.monotonic() - t0:.1f} s")
        results = {}
        for name, port in (("dovecot", ANCHOR_PORTS["ANCHOR_IMAP_PORT"]), ("ours", OUR_IMAP)):
            stats, elapsed, ok, why = asyncio.run(
                _load(port, args.clients, args.duration, args.ops_per_session, args.seed))
            results[name] = (_report(name, stats, elapsed), ok, why)
        ratio = results["ours"][0] / results["dovecot"][0]
        print(f"ratio ours / Dovecot: {ratio:.2f}x ops/s (goal: at least 1x)")
        correct = results["ours"][1] and results["dovecot"][1]
        detail = "; ".join(f"{k}: {v[2]}" for k, v in results.items() if not v[1])
        print(f"correct: {'yes' if correct else 'NO'} (every command OK, every FETCH complete, "
              f"BODY[] sizes match, final \\Flagged set as the clients left it, message "
              f"count unchanged){'' if correct else ' -- ' + detail}")
    finally:
        if master is not None:
            _stop_ours(ours, master)
        _stop_anchor(anchor)


if __name__ == "__main__":
    main()
