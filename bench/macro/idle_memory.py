"""Idle memory of a default instance: total PSS of the master and all its children.

    python -m bench.macro.idle_memory [--settle 5] [--idle-exit 20] [--embedded] [--eager]
                                      [--port-base 20800] [--json]

Starts ``stalwart-master`` in a temporary directory with the embedded default's layout
(one worker per pool, RocksDB store, the same listeners) and waits until it is ready
(``READY=1`` on a private sd_notify socket) and then ``--settle`` seconds more. It then
sums the proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``: shared pages are
split between the processes that share them, so the sum is what the instance really
costs) over the master and every child, and prints the total and the figure per process
kind. The target (docs/architecture.md) is under 50 MB.

PSS splits a shared file page (libpython, the RocksDB library, libcrypto) among *every*
process that maps it, including processes outside the instance: on a machine where other
Python programs run, the instance's PSS sum looks smaller than it would alone. So the run
also counts the instance's resident pages once each (``/proc/PID/pagemap`` page frame
numbers, readable as root): the cost of the instance on a machine where nothing else
shares its files. Both figures are printed.

The embedded default starts protocol workers on demand (``server.on-demand``), and the
queue and the scheduler too: they start at boot and leave once idle with nothing due. So
there are three measurements, each listing the processes it found:

1. *settle*: right after READY=1 and ``--settle`` seconds (master, store, queue,
   scheduler: the boot-time figure);
2. *idle*: once the instance has been idle past ``server.idle-exit`` (``--idle-exit``
   seconds, 20 by default instead of the default 2 minutes, so the run is short; written
   into the config and printed): the queue and the scheduler have left after their
   first jobs. This is the steady state of an idle server, the figure the goal is about;
3. *woken*: after one client per TCP listener (each checked for its greeting: this is
   the correctness line), the cost of a used instance. ``--eager`` measures with every pool
started from the beginning (``server.on-demand = false``, what a config file gets unless it
says otherwise).

By default the listeners move to ports ``--port-base`` and up, so the run does not need
the embedded default's fixed ports; ``--embedded`` runs the true embedded default
(``stalwart-master`` without ``--config``, ports 2525, 8080, ...).

The result records whether the measurement is valid: every process alive, ready, and
the expected kinds present; and the environment (Python, kernel, CPU count).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from stalwart.config.default import LISTENERS
from stalwart.config.model import PROTOCOLS


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(entry))
    return out


def rollup(pid: int) -> dict[str, int]:
    """The kB figures of ``/proc/PID/smaps_rollup`` (Rss, Pss, Private_Dirty, ...)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                out[parts[0].rstrip(":")] = int(parts[1])
    if "Pss" not in out:
        raise RuntimeError(f"no Pss line for pid {pid}")
    return out


def resident_frames(pid: int) -> set[int] | None:
    """Page frame numbers of every resident page of ``pid`` (None without the right)."""
    frames: set[int] = set()
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
            for line in maps:
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                if lo >= 0xFFFFFFFFFF600000:          # [vsyscall]: not in the page map
                    continue
                pm.seek((lo // PAGE) * 8)
                data = pm.read((hi - lo) // PAGE * 8)
                for (entry,) in struct.iter_unpack("<Q", data):
                    if entry >> 63:                   # present
                        frames.add(entry & PFN_MASK)
    except OSError:
        return None
    if frames == {0} or not frames:                   # frame numbers hidden (no root)
        return None
    return frames


PAGE = os.sysconf("SC_PAGE_SIZE")
PFN_MASK = (1 << 55) - 1


def instance_mib(pids: list[int]) -> float | None:
    union: set[int] = set()
    for pid in pids:
        frames = resident_frames(pid)
        if frames is None:
            return None
        union |= frames
    return round(len(union) * PAGE / 2**20, 1)


def pss_kib(pid: int) -> int:
    return rollup(pid)["Pss"]


def title(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def kind_of(text: str) -> str:
    """``stalwart: imap worker 0 [0 conns]`` -> ``imap``; ``stalwart: store`` -> ``store``."""
    rest = text.removeprefix("stalwart: ")
    return rest.split()[0] if rest != text else "other"


GREETINGS = {"smtp": b"220 ", "imap": b"* OK", "pop3": b"+OK", "http": b"HTTP/1.1 200"}


def greet(port: int, protocol: str) -> bool:
    """Connect, read the greeting (http: GET /healthz); True if it is the right one."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        if protocol == "http":
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.startswith(GREETINGS[protocol])


def sample(pid: int) -> tuple[list[dict], dict[str, int]]:
    pids = [pid] + sorted(_children(pid))
    per_process = []
    for p in pids:
        r = rollup(p)
        per_process.append({"pid": p, "title": title(p), "pss_kib": r["Pss"], "rss_kib": r["Rss"],
                            "private_kib": r.get("Private_Dirty", 0) + r.get("Private_Clean", 0)})
    per_kind: dict[str, int] = {}
    for p in per_process:
        k = "master" if p["pid"] == pid else kind_of(p["title"])
        per_kind[k] = per_kind.get(k, 0) + p["pss_kib"]
    return per_process, per_kind


def write_config(root: Path, port_base: int, on_demand: bool = True,
                 idle_exit: float = 120.0) -> Path:
    lines = ["[server]", 'hostname = "bench.invalid"',
             f"on-demand = {'true' if on_demand else 'false'}", f'idle-exit = "{idle_exit:g}s"',
             "", "[server.workers]"]
    lines += [f"{p} = 1" for p in PROTOCOLS]
    for i, (ident, protocol, _port) in enumerate(LISTENERS):
        lines += ["", "[[server.listener]]", f'id = "{ident}"', f'protocol = "{protocol}"',
                  f'bind = "127.0.0.1:{port_base + i}"']
    lines += ["", "[storage]", f'directory = "{root / "var"}"', "",
              "[tracer.stdout]", 'type = "stdout"', 'level = "warn"']
    path = root / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


#: The queue and the scheduler leave once idle with nothing due soon; the scheduler comes
#: back for its first jobs (30 s and 60 s after boot), then not for an hour. The idle
#: measurement waits until the instance has been down to the master and the store for
#: ``QUIET`` seconds in a row (longer than that 30 s gap), at most ``STEADY_MARGIN`` past
#: ``server.idle-exit``.
QUIET = 40.0
STEADY_MARGIN = 180.0


def wait_steady(pid: int, idle_exit: float, started: float) -> float:
    """Wait until only the master and the store have been running for ``QUIET`` seconds
    (and at least ``idle_exit`` since ``started``); the seconds waited since ``started``."""
    deadline = started + idle_exit + STEADY_MARGIN
    quiet_since = None
    while time.monotonic() < deadline:
        kinds = set()
        for p in _children(pid):
            try:
                kinds.add(kind_of(title(p)))
            except OSError:
                kinds.add("exiting")
        now = time.monotonic()
        if kinds <= {"store"}:
            quiet_since = quiet_since or now
            if now >= started + idle_exit and now - quiet_since >= QUIET:
                break
        else:
            quiet_since = None
        time.sleep(1)
    return time.monotonic() - started


def kinds_of(per_process: list[dict], master: int) -> list[str]:
    return ["master" if p["pid"] == master else kind_of(p["title"]) for p in per_process]


def measure(settle: float, embedded: bool, port_base: int, eager: bool = False,
            idle_exit: float = 20.0) -> dict:
    root = Path(tempfile.mkdtemp(prefix="stalwart-idle-"))
    notify_name = f"@stalwart-bench-{uuid.uuid4().hex}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0" + notify_name[1:])
    notify.settimeout(60)
    args = [sys.executable, "-m", "stalwart.master.main"]
    if not embedded:
        args += ["--config", str(write_config(root, port_base, on_demand=not eager,
                                              idle_exit=idle_exit))]
    else:
        idle_exit = 120.0              # the embedded default's server.idle-exit
    env = {**os.environ, "NOTIFY_SOCKET": notify_name}
    log = open(root / "daemon.log", "wb")
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    result: dict = {"valid": False}
    try:
        deadline = time.monotonic() + 60
        ready = False
        while not ready and time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = b"READY=1" in notify.recv(4096).split(b"\n")
            except socket.timeout:
                break
        if not ready:
            raise RuntimeError("the daemon did not become ready:\n" +
                               (root / "daemon.log").read_text(errors="replace"))
        ready_at = time.monotonic()
        time.sleep(settle)
        per_process, per_kind = sample(proc.pid)
        total = sum(p["pss_kib"] for p in per_process)
        alone = instance_mib([p["pid"] for p in per_process])
        alive = proc.poll() is None and all(os.path.exists(f"/proc/{p['pid']}")
                                            for p in per_process)
        waited = wait_steady(proc.pid, idle_exit, ready_at) if not eager else None
        steady, steady_kind = sample(proc.pid) if not eager else (per_process, per_kind)
        steady_total = sum(p["pss_kib"] for p in steady)
        steady_alone = instance_mib([p["pid"] for p in steady])
        # Wake every pool: one client per TCP listener, greeting checked.
        greeted = {}
        for i, (ident, protocol, port) in enumerate(LISTENERS):
            if protocol in GREETINGS:
                greeted[ident] = greet(port if embedded else port_base + i, protocol)
        time.sleep(settle)
        woken, woken_kind = sample(proc.pid)
        result = {
            "total_pss_mib": round(total / 1024, 1),
            "instance_pages_mib": alone,
            "per_kind_mib": {k: round(v / 1024, 1) for k, v in sorted(per_kind.items())},
            "processes": per_process,
            "idle_exit_s": idle_exit,
            "steady_after_s": round(waited, 1) if waited is not None else None,
            "steady_total_pss_mib": round(steady_total / 1024, 1),
            "steady_instance_pages_mib": steady_alone,
            "steady_per_kind_mib": {k: round(v / 1024, 1)
                                    for k, v in sorted(steady_kind.items())},
            "steady_processes": steady,
            "steady_kinds": kinds_of(steady, proc.pid),
            "woken_total_pss_mib": round(sum(p["pss_kib"] for p in woken) / 1024, 1),
            "woken_processes": woken,
            "greetings": greeted,
            "valid": (alive and "store" in per_kind and "master" in per_kind
                      and all(greeted.values()) and proc.poll() is None),
            "target_mib": 50,
            "target_bytes": 50_000_000,
            "met": steady_total * 1024 < 50_000_000,
            "environment": {"python": platform.python_version(), "kernel": platform.release(),
                            "cpus": os.cpu_count(), "embedded_default": embedded,
                            "on_demand": not eager},
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        notify.close()
        shutil.rmtree(root, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settle", type=float, default=5.0, help="seconds idle after READY=1")
    p.add_argument("--embedded", action="store_true",
                   help="run the true embedded default (fixed ports 2525, 8080, ...)")
    p.add_argument("--eager", action="store_true",
                   help="start every pool at once (server.on-demand = false)")
    p.add_argument("--port-base", type=int, default=20800)
    p.add_argument("--idle-exit", type=float, default=20.0,
                   help="server.idle-exit written into the config, seconds (not --embedded)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = p.parse_args(argv)
    result = measure(args.settle, args.embedded, args.port_base, eager=args.eager,
                     idle_exit=args.idle_exit)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        def show(processes: list[dict]) -> None:
            for p_ in processes:
                print(f"  {p_['pid']:>7}  {p_['pss_kib'] / 1024:7.1f} MiB  "
                      f"(rss {p_['rss_kib'] / 1024:5.1f}, private {p_['private_kib'] / 1024:5.1f})"
                      f"  {p_['title']}")

        def alone(mib: float | None) -> str:
            return (f"{mib:.1f} MiB with every resident page of the instance counted once "
                    f"(its cost if nothing else shared its files)" if mib is not None
                    else "unknown (pagemap needs root)")

        mode = "on demand" if result["environment"]["on_demand"] else "eager pools"
        target = f"target < 50 MB = 50,000,000 bytes = {50e6 / 2**20:.1f} MiB"
        print(f"1. settle: {args.settle:g}s after READY=1 ({mode}); MiB = 2^20 bytes")
        show(result["processes"])
        print(f"   total: {result['total_pss_mib']:.1f} MiB PSS; alone: "
              f"{alone(result['instance_pages_mib'])}")
        if result["steady_after_s"] is not None:
            print(f"2. idle: {result['steady_after_s']:.0f}s after READY=1, server.idle-exit = "
                  f"{result['idle_exit_s']:g}s; running: {', '.join(result['steady_kinds'])}")
            show(result["steady_processes"])
            print(f"   total: {result['steady_total_pss_mib']:.1f} MiB PSS "
                  f"({result['steady_total_pss_mib'] * 2**20 / 1e6:.1f} MB; {target}: "
                  f"{'met' if result['met'] else 'NOT met'}); alone: "
                  f"{alone(result['steady_instance_pages_mib'])}")
        print("3. woken: one client per listener")
        show(result["woken_processes"])
        print(f"   total: {result['woken_total_pss_mib']:.1f} MiB PSS")
        print(f"correct: {result['valid']} (greetings: "
              f"{', '.join(f'{k}={v}' for k, v in result['greetings'].items())})")
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
