"""SMTP ingest into local mailboxes: our server against Postfix delivering to Dovecot (LMTP).

    python -m bench.macro.smtp_ingest [--messages 3000] [--sessions 50] [--size 5120] [--rounds 3]
                                      [--auth-checks] [--port-base 22900]

Both servers run on this machine in the same run (the anchors script starts Postfix and
Dovecot, see ../shared/anchors/README.md). The load is Postfix's own ``smtp-source``
(C, so the client costs little CPU): ``--sessions`` parallel sessions, each reusing its
connection (``-d``), ``--messages`` messages of ``--size`` payload bytes to one local
mailbox.

What is timed, for each server, from the first connection:
- accepted: until smtp-source got the last 250 (for Postfix that means "in its queue";
  for us "in the mailbox", durable — our 250 is sent after the store's fsync);
- delivered: until every message is in the mailbox (Dovecot's Maildir files; for us the
  same moment as accepted, checked through the store).
The ratio that answers the issue is delivered/s ours over delivered/s Postfix+Dovecot.
Correctness: every message must have arrived exactly once on each side.
Figures are medians over the rounds; the machine is shared, so quote ratios.

Postfix and Dovecot as set up by the anchors check no sender authentication, so by
default ours runs with SPF, DKIM, ARC and DMARC verification off too (the same work on
both sides). ``--auth-checks`` leaves them on: every message then costs DNS lookups
through the machine's resolver (none of the names resolve; NXDOMAIN answers without an
SOA are not cached), which measures that resolver as much as us.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from .common import STATE, wait_port

REPO = Path(__file__).resolve().parents[2]
ANCHORS = Path(os.environ.get("STALWART_ANCHORS", REPO.parent / "shared" / "anchors" / "anchors"))
SMTP_SOURCE = "/usr/sbin/smtp-source"
#: Ports from ``--port-base`` up: ours (smtp, http), then the anchors' four (smtp, imap,
#: pop3, lmtp), so two benches on one machine can each take their own range.
ANCHOR_PORT_NAMES = ("ANCHOR_SMTP_PORT", "ANCHOR_IMAP_PORT", "ANCHOR_POP3_PORT",
                     "ANCHOR_LMTP_PORT")


def _filesystem(path: Path) -> str:
    """The type and options of the mount holding ``path`` (the fsync costs depend on it)."""
    best = ("", "?", "")
    where = str(path.resolve()) + "/"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, mnt, fstype, opts, *_ = line.split()
                if where.startswith(mnt.rstrip("/") + "/") and len(mnt) > len(best[0]):
                    best = (mnt, fstype, opts)
    except OSError:
        pass
    return f"{best[1]} ({best[2]})" if best[0] else "unknown"


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def _smtp_source(port: int, messages: int, sessions: int, size: int, rcpt: str) -> float:
    t0 = time.monotonic()
    subprocess.run([SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                    "-f", "sender@remote.test", "-t", rcpt, f"127.0.0.1:{port}"],
                   check=True, capture_output=True, timeout=1800)
    return time.monotonic() - t0


# ---------------------------------------------------------------------------- anchors

def _run_anchor(workdir: Path, messages: int, sessions: int, size: int,
                port_base: int) -> tuple[float, float, bool]:
    d = Path(tempfile.mkdtemp(prefix="anch", dir=workdir))
    os.chmod(d, 0o755)
    ports = {name: str(port_base + 2 + i) for i, name in enumerate(ANCHOR_PORT_NAMES)}
    # Output to a file, not a pipe: the daemons inherit it and would keep a pipe open.
    with open(d.parent / f"{d.name}.log", "wb") as log:
        subprocess.run(["bash", str(ANCHORS), "start", str(d), "--users", "5", "--perf"],
                       check=True, stdout=log, stderr=subprocess.STDOUT, timeout=300,
                       env={**os.environ, **ports})
    try:
        env = dict(line.split("=", 1) for line in (d / "anchors.env").read_text().split()
                   if "=" in line)
        port = int(env["ANCHOR_SMTP_PORT"].strip("'\""))
        maildir = d / "mail" / "user1" / "Maildir"

        def count() -> int:
            return sum(len(os.listdir(maildir / sub)) for sub in ("new", "cur")
                       if (maildir / sub).is_dir())
        t0 = time.monotonic()
        accepted = _smtp_source(port, messages, sessions, size, "user1@bench.test")
        deadline = time.monotonic() + 600
        while count() < messages and time.monotonic() < deadline:
            time.sleep(0.02)
        delivered = time.monotonic() - t0
        time.sleep(0.5)
        return accepted, delivered, count() == messages
    finally:
        subprocess.run(["bash", str(ANCHORS), "stop", str(d)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        (d.parent / f"{d.name}.log").unlink(missing_ok=True)
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- ours

CONFIG = """
[server]
hostname = "mx.bench.test"
[server.workers]
smtp = {workers}
http = 1
[[server.listener]]
id = "smtp"
protocol = "smtp"
bind = "127.0.0.1:{smtp}"
[[server.listener]]
id = "http"
protocol = "http"
bind = "127.0.0.1:{http}"
""" + STATE + """# Postfix's smtpd has no per-connection message limit; smtp-source -d keeps each
# connection for as many messages as it gets, and treats our 421 as fatal.
[smtp.session]
max-messages = 1000000
"""

NO_AUTH_CHECKS = """
[auth.spf.verify]
helo = "disabled"
mail-from = "disabled"
[auth.dkim]
verify = "disabled"
[auth.arc]
verify = "disabled"
[auth.dmarc]
verify = "disabled"
"""


def _count_ours(base: Path) -> int:
    from stalwart.store import Store

    async def count() -> int:
        s = await Store.connect(base / "data", base / "blobs", base / "run" / "store.sock",
                                base / "bench-count", subscribe=False)
        acc = s.get_account("user1")["id"]
        total = s.find_mailbox(acc, "INBOX")["total"]
        await s.close()
        return total
    return asyncio.run(count())


def _run_ours(workdir: Path, messages: int, sessions: int, size: int,
              workers: int, port_base: int, auth_checks: bool = False) -> tuple[float, float, bool]:
    d = Path(tempfile.mkdtemp(prefix="ours", dir=workdir))
    base = d / "var"
    config = d / "config.toml"
    our_smtp, our_http = port_base, port_base + 1
    config.write_text(CONFIG.format(workers=workers, smtp=our_smtp, http=our_http, base=base)
                      + ("" if auth_checks else NO_AUTH_CHECKS))
    bindir = Path(sys.executable).parent
    log = open(d / "daemon.log", "wb")
    master = subprocess.Popen([str(bindir / "stalwart-master"), "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=d)
    try:
        wait_port(our_smtp)
        wait_port(our_http)
        cli = [str(bindir / "stalwart-cli"), "--config", str(config)]
        subprocess.run([*cli, "domain", "create", "bench.test"], check=True, capture_output=True)
        subprocess.run([*cli, "account", "create", "user1", "--email", "user1@bench.test"],
                       check=True, capture_output=True)
        accepted = _smtp_source(our_smtp, messages, sessions, size, "user1@bench.test")
        n = _count_ours(base)
        return accepted, accepted, n == messages
    finally:
        master.terminate()
        master.wait(60)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SMTP ingest: ours vs Postfix+Dovecot")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="our smtp pool size (default: one per core)")
    parser.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/var/tmp"))
    parser.add_argument("--port-base", type=int, default=22900,
                        help="ours on this port and the next, the anchors on the four after")
    parser.add_argument("--auth-checks", action="store_true",
                        help="leave SPF/DKIM/ARC/DMARC verification on (the anchors do none)")
    args = parser.parse_args(argv)
    if not Path(SMTP_SOURCE).exists():
        sys.exit(f"{SMTP_SOURCE} missing: run `{ANCHORS} install` (Postfix and Dovecot)")
    workdir = Path(args.workdir)
    print(f"# SMTP ingest, {args.messages} msgs x {args.size} B, {args.sessions} sessions; "
          f"python {platform.python_version()}, {os.cpu_count()} cpus, our smtp workers "
          f"{args.workers}, {args.rounds} rounds, our sender authentication checks "
          f"{'on' if args.auth_checks else 'off (as the anchors)'}; workdir {workdir} on "
          f"{_filesystem(workdir)}")
    results = {"ours": [], "anchor": []}
    correct = True
    for r in range(args.rounds):
        for name in ("anchor", "ours"):
            load = _load()
            if name == "anchor":
                acc, dlv, ok = _run_anchor(workdir, args.messages, args.sessions, args.size,
                                           args.port_base)
            else:
                acc, dlv, ok = _run_ours(workdir, args.messages, args.sessions, args.size,
                                         args.workers, args.port_base, args.auth_checks)
            correct &= ok
            results[name].append((args.messages / acc, args.messages / dlv))
            print(f"round {r + 1} {name:>6}: accepted {args.messages / acc:7.0f} msg/s, "
                  f"in mailboxes {args.messages / dlv:7.0f} msg/s, all delivered once: {ok} "
                  f"(load average before: {load})")
    med = {k: (statistics.median(a for a, _ in v), statistics.median(d for _, d in v))
           for k, v in results.items()}
    print(f"median ours:             {med['ours'][1]:7.0f} msg/s durable in the mailbox")
    print(f"median Postfix+Dovecot:  {med['anchor'][1]:7.0f} msg/s in the mailbox "
          f"({med['anchor'][0]:.0f} msg/s accepted into Postfix's queue)")
    print(f"ratio ours / Postfix+Dovecot (in mailboxes): {med['ours'][1] / med['anchor'][1]:.2f}x "
          f"(goal: 2x); against Postfix's accept rate: {med['ours'][1] / med['anchor'][0]:.2f}x")
    print(f"correct: {'yes' if correct else 'NO'} (every message delivered exactly once on "
          f"both sides)")


if __name__ == "__main__":
    main()
