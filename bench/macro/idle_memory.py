"""Idle memory of a default instance: total PSS of the master and all its children.

    python -m bench.macro.idle_memory [--settle 5] [--embedded] [--port-base 20800] [--json]

Starts ``stalwart-master`` in a temporary directory with the embedded default's layout
(one worker per pool, RocksDB store, the same listeners) and waits until it is ready
(``READY=1`` on a private sd_notify socket) and then ``--settle`` seconds more. It then
sums the proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``: shared pages are
split between the processes that share them, so the sum is what the instance really
costs) over the master and every child, and prints the total and the figure per process
kind. The target (docs/architecture.md) is under 50 MB.

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


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Pss line for pid {pid}")


def title(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def kind_of(text: str) -> str:
    """``stalwart: imap worker 0 [0 conns]`` -> ``imap``; ``stalwart: store`` -> ``store``."""
    rest = text.removeprefix("stalwart: ")
    return rest.split()[0] if rest != text else "other"


def write_config(root: Path, port_base: int) -> Path:
    lines = ["[server]", 'hostname = "bench.invalid"', "", "[server.workers]"]
    lines += [f"{p} = 1" for p in PROTOCOLS]
    for i, (ident, protocol, _port) in enumerate(LISTENERS):
        lines += ["", "[[server.listener]]", f'id = "{ident}"', f'protocol = "{protocol}"',
                  f'bind = "127.0.0.1:{port_base + i}"']
    lines += ["", "[storage]", f'directory = "{root / "var"}"', "",
              "[tracer.stdout]", 'type = "stdout"', 'level = "warn"']
    path = root / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(settle: float, embedded: bool, port_base: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="stalwart-idle-"))
    notify_name = f"@stalwart-bench-{uuid.uuid4().hex}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0" + notify_name[1:])
    notify.settimeout(60)
    args = [sys.executable, "-m", "stalwart.master.main"]
    if not embedded:
        args += ["--config", str(write_config(root, port_base))]
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
        time.sleep(settle)
        pids = [proc.pid] + sorted(_children(proc.pid))
        per_process = []
        for pid in pids:
            per_process.append({"pid": pid, "title": title(pid), "pss_kib": pss_kib(pid)})
        per_kind: dict[str, int] = {}
        for p in per_process:
            k = "master" if p["pid"] == proc.pid else kind_of(p["title"])
            per_kind[k] = per_kind.get(k, 0) + p["pss_kib"]
        total = sum(p["pss_kib"] for p in per_process)
        alive = proc.poll() is None and all(os.path.exists(f"/proc/{p}") for p in pids)
        result = {
            "total_pss_mib": round(total / 1024, 1),
            "per_kind_mib": {k: round(v / 1024, 1) for k, v in sorted(per_kind.items())},
            "processes": per_process,
            "valid": alive and "store" in per_kind and "master" in per_kind,
            "target_mib": 50,
            "environment": {"python": platform.python_version(), "kernel": platform.release(),
                            "cpus": os.cpu_count(), "embedded_default": embedded},
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
    p.add_argument("--port-base", type=int, default=20800)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = p.parse_args(argv)
    result = measure(args.settle, args.embedded, args.port_base)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for p_ in result["processes"]:
            print(f"  {p_['pid']:>7}  {p_['pss_kib'] / 1024:7.1f} MiB  {p_['title']}")
        for k, v in result["per_kind_mib"].items():
            print(f"{k:>12}: {v:7.1f} MiB")
        print(f"{'total':>12}: {result['total_pss_mib']:7.1f} MiB PSS "
              f"(target < {result['target_mib']} MiB; valid={result['valid']})")
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
