"""Outbound SMTP: our queue draining N messages into smtp-sink, against Postfix doing the same.

    python -m bench.macro.smtp_outbound [--messages 2000] [--size 5120] [--rounds 3]

Both MTAs run on this machine in the same run and relay to the same kind of sink:
Postfix's ``smtp-sink`` (C, counts messages, throws them away) on 127.0.0.1, a fresh one
for each run so its counter starts at zero.

What is timed: draining a full queue. Each side first gets the same N distinct messages
(``--size`` bytes each, one recipient each, all for one remote domain) into its queue
without delivering them, then is let go. Two figures per side: the drain rate, from the
first message the sink counted to the Nth ((N-1)/time), and the overall rate from the
release to the Nth (which adds the time to the first message: Postfix's postsuper and
queue scan; our queue's next look at the store, up to ``queue.poll-interval``).
- Ours: ``stalwart-master`` with a relay route (``queue.route``, ``tls = "none"``) to the
  sink; the messages are written into the store's queue through a store client (blob,
  then ``queue_put``, as the SMTP workers do) while the queue process is stopped
  (SIGSTOP; ``server.heartbeat-timeout`` is raised so the master lets it be); SIGCONT
  releases it. Queue settings are the defaults (``queue.concurrency`` 32,
  ``queue.connections-per-host`` 8, ``queue.poll-interval`` 1s).
- Postfix: ``relayhost = [127.0.0.1]:sink``; the messages go in over SMTP (smtplib) and
  are put on hold by smtpd (``HOLD`` action); ``postsuper -H ALL`` + ``postqueue -f``
  releases them. Postfix defaults otherwise (destination concurrency 20, connection
  cache on demand). The instance is ``tests/integration/postfixpeer.Postfix``.
Correctness: after the drain, each queue is empty and the sink counted exactly N
(nothing lost, nothing sent twice). Figures are medians over the rounds; the machine is
shared, so quote the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import os
import platform
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from integration.postfixpeer import SMTP_SINK, Postfix, SmtpSink  # noqa: E402
from .common import STATE  # noqa: E402

CONFIG = """
[server]
hostname = "mx.bench.test"
heartbeat-timeout = "1h"
[server.workers]
http = 1
[[server.listener]]
id = "http"
protocol = "http"
bind = "127.0.0.1:{http}"
""" + STATE + """[queue]
retry = ["1m"]
[queue.route.sink]
type = "relay"
domains = ["*"]
host = "127.0.0.1"
port = {sink}
tls = "none"
"""


def make_messages(n: int, size: int) -> list[bytes]:
    """N distinct messages of about ``size`` bytes (headers included)."""
    out = []
    date = email.utils.formatdate(usegmt=True)
    filler = ("The quick brown fox jumps over the lazy dog; pack my box with five dozen "
              "liquor jugs.\r\n")
    for i in range(n):
        head = (f"From: Bench Sender <sender@bench.test>\r\nTo: <rcpt{i}@sink.test>\r\n"
                f"Subject: outbound message {i}\r\nDate: {date}\r\n"
                f"Message-ID: <{i}.{os.getpid()}@bench.test>\r\nMIME-Version: 1.0\r\n"
                f"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
        body_len = max(0, size - len(head))
        body = (filler * (body_len // len(filler) + 1))[:body_len]
        body = body[:body.rfind("\r\n") + 2] if "\r\n" in body else body + "\r\n"
        out.append((head + body).encode())
    return out


def _wait(predicate, timeout: float, what: str, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry), title.decode(errors="replace").strip()))
    return found


# ---------------------------------------------------------------------------- Postfix

def _drain(sink: SmtpSink, n: int, t0: float) -> tuple[float, float]:
    """``(first, last)``: seconds from ``t0`` until the sink counted 1, then ``n``."""
    _wait(lambda: sink.count() >= 1, 600, "the first message at the sink", 0.002)
    first = time.monotonic() - t0
    _wait(lambda: sink.count() >= n, 1800, "the sink to count every message")
    return first, time.monotonic() - t0


def run_postfix(workdir: Path, messages: list[bytes], pf_port: int, sink_port: int
                ) -> tuple[tuple[float, float], int, bool]:
    d = Path(tempfile.mkdtemp(prefix="pfsink", dir=workdir))
    sink = SmtpSink(sink_port, d)
    pf = Postfix(pf_port, hostname="relay.bench.test", domains=("bench.test",),
                 users=("sender",), relayhost=f"[127.0.0.1]:{sink_port}", hold=True)
    try:
        pf.start()
        with smtplib.SMTP("127.0.0.1", pf_port, timeout=60) as client:
            for i, raw in enumerate(messages):
                client.sendmail("sender@bench.test", [f"rcpt{i}@sink.test"], raw)
        _wait(lambda: len(os.listdir(pf.spool / "hold")) >= len(messages)
              if (pf.spool / "hold").is_dir() else False, 300, "Postfix's hold queue", 0.1)
        sink.start()
        t0 = time.monotonic()
        pf.release()
        times = _drain(sink, len(messages), t0)
        _wait(lambda: pf.queue_size() == 0, 120, "Postfix's queue to empty", 0.1)
        time.sleep(0.5)
        count = sink.count()
        return times, count, count == len(messages) and pf.queue_size() == 0
    finally:
        sink.stop()
        pf.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- ours

async def _preload(config_path: Path, messages: list[bytes]) -> None:
    from stalwart.config import load
    from stalwart.queue.model import QueuedMessage, QueuedRecipient
    from stalwart.store.api import Store

    store = await Store.open(load(config_path), name="bench-preload", subscribe=False)
    try:
        async def put(i: int, raw: bytes) -> None:
            blob = await store.blobs.put_async(raw)
            now = time.time()
            entry = QueuedMessage(return_path="sender@bench.test",
                                  recipients=[QueuedRecipient(f"rcpt{i}@sink.test")],
                                  blob=blob, size=len(raw), created=now, due=now,
                                  expires=now + 5 * 86400)
            await store.queue_put(entry.to_record())
        for start in range(0, len(messages), 64):
            await asyncio.gather(*(put(i, raw) for i, raw in
                                   enumerate(messages[start:start + 64], start)))
    finally:
        await store.close()


def _queued(cli: list[str]) -> int:
    import json
    out = subprocess.run([*cli, "--json", "queue", "list"], check=True, capture_output=True,
                         timeout=120).stdout
    return len(json.loads(out)["messages"])


def run_ours(workdir: Path, messages: list[bytes], http_port: int, sink_port: int
             ) -> tuple[tuple[float, float], int, bool]:
    d = Path(tempfile.mkdtemp(prefix="out", dir=workdir))
    config = d / "config.toml"
    config.write_text(CONFIG.format(http=http_port, sink=sink_port, base=d / "var"))
    bindir = Path(sys.executable).parent
    sink = SmtpSink(sink_port, d)
    log = open(d / "daemon.log", "wb")
    master = subprocess.Popen([str(bindir / "stalwart-master"), "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=d,
                              stdin=subprocess.DEVNULL)
    queue_pid = None
    try:
        cli = [str(bindir / "stalwart-cli"), "--config", str(config)]

        def queue_process() -> int | None:
            return next((pid for pid, title in _children(master.pid)
                         if title == "stalwart: queue"), None)
        _wait(lambda: queue_process() is not None and (d / "var/run/admin.sock").exists(),
              60, "the daemon")
        _wait(lambda: subprocess.run([*cli, "queue", "list"], capture_output=True,
                                     timeout=60).returncode == 0, 60, "the management API",
              0.2)
        queue_pid = queue_process()
        os.kill(queue_pid, signal.SIGSTOP)
        asyncio.run(_preload(config, messages))
        assert _queued(cli) == len(messages), "the preload did not queue every message"
        sink.start()
        t0 = time.monotonic()
        os.kill(queue_pid, signal.SIGCONT)
        times = _drain(sink, len(messages), t0)
        _wait(lambda: _queued(cli) == 0, 120, "our queue to empty", 0.2)
        time.sleep(0.5)
        count = sink.count()
        return times, count, count == len(messages) and _queued(cli) == 0
    finally:
        if queue_pid is not None:
            try:
                os.kill(queue_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        sink.stop()
        master.terminate()
        try:
            master.wait(60)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait(10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Outbound SMTP: our queue vs Postfix, "
                                                 "both into smtp-sink")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=22500,
                        help="four TCP ports from here (default 22500-22503)")
    parser.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/var/tmp"))
    args = parser.parse_args(argv)
    if not Path(SMTP_SINK).exists():
        sys.exit(f"{SMTP_SINK} missing: run tests/install-peers.sh (postfix)")
    workdir = Path(args.workdir)
    pf_port, sink_port, http_port = args.port_base, args.port_base + 1, args.port_base + 2
    messages = make_messages(args.messages, args.size)
    print(f"# SMTP outbound, {args.messages} msgs x {len(messages[0])} B, one recipient each, "
          f"into smtp-sink; python {platform.python_version()}, {os.cpu_count()} cpus, "
          f"{args.rounds} rounds")
    n = args.messages
    rates: dict[str, list[float]] = {"ours": [], "postfix": []}
    totals: dict[str, list[float]] = {"ours": [], "postfix": []}
    firsts: dict[str, list[float]] = {"ours": [], "postfix": []}
    correct = True
    for r in range(args.rounds):
        for name in ("postfix", "ours"):
            if name == "postfix":
                (first, last), count, ok = run_postfix(workdir, messages, pf_port, sink_port)
            else:
                (first, last), count, ok = run_ours(workdir, messages, http_port, sink_port)
            correct &= ok
            rates[name].append((n - 1) / max(last - first, 1e-6))
            totals[name].append(n / last)
            firsts[name].append(first)
            print(f"round {r + 1} {name:>7}: {rates[name][-1]:7.0f} msg/s draining "
                  f"(first message after {first * 1000:.0f} ms, all {n} after {last:.2f} s: "
                  f"{totals[name][-1]:.0f} msg/s overall), sink counted {count}/{n}, "
                  f"queue empty and exactly once: {ok}")
    med = {k: statistics.median(v) for k, v in rates.items()}
    tot = {k: statistics.median(v) for k, v in totals.items()}
    fst = {k: statistics.median(v) for k, v in firsts.items()}
    for name, label in (("ours", "ours:   "), ("postfix", "Postfix:")):
        print(f"median {label} {med[name]:7.0f} msg/s from the first to the last message at "
              f"the sink; {tot[name]:.0f} msg/s counting from the release (first message "
              f"after {fst[name] * 1000:.0f} ms)")
    print(f"ratio ours / Postfix: {med['ours'] / med['postfix']:.2f}x draining, "
          f"{tot['ours'] / tot['postfix']:.2f}x from the release")
    print(f"correct: {'yes' if correct else 'NO'} (the sink counted exactly {n} messages "
          f"from each side, both queues empty)")


if __name__ == "__main__":
    main()
