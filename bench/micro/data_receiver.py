"""SMTP DATA receiver throughput: the Cython receiver against the pure-Python reference.

    python -m bench.micro.data_receiver [--rounds 5] [--limit N] [--json FILE]

Input: the real messages of ``../shared/corpora/spamassassin-dev.tar.gz`` (beside the repository; ``STALWART_CORPUS`` overrides), each turned
into what a client sends after ``354``: the mbox ``From `` line removed, line ends made CRLF
(``\\r\\n``, ``\\n`` and a lone ``\\r`` each become CRLF, as smtplib does), lines starting
with "." dot-stuffed, then ``.<CRLF>``. Two workloads, each in 4 KiB and 64 KiB pieces:

- ``per-message``: one ``DataReceiver`` per message (construction included), the shape of
  real traffic, where most messages are a few KiB;
- ``one-stream``: all messages concatenated into one big message, the scanning speed
  without per-message costs.

A third contender, ``bulk``, is the shortest fast pure-Python way, included so that the
ratio is not only against a line-at-a-time state machine: it buffers the whole message,
finds the end with ``bytearray.find`` (resuming 4 octets back on each piece), then undoes
the dot-stuffing with one ``bytes.replace`` and counts with ``bytes`` methods. It keeps
the whole message in memory, cannot stream to a blob file, and its facts are only right
for clean input (no bare CR or LF), which the corpus, as the client sends it, is.

Throughput is input octets per second of wall time spent inside the receivers (the pieces
are cut beforehand). Rounds alternate the two implementations; the figures are medians and
the ratio is the median of the per-round ratios (reference time / Cython time).

Correctness, recorded with every result: both receivers must store exactly the CRLF
message the client meant (the dot-stuffing undone), return no bytes after the end, report
identical facts (size, header and body size, bare newline, NUL and 8-bit counts, error),
and agree with each other octet for octet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from stalwart.protocols.base import NEED_DATA
from stalwart.protocols.smtp import _data as cy
from stalwart.protocols.smtp import data_ref as ref

CORPUS = Path(os.environ.get("STALWART_CORPUS", Path(__file__).resolve().parents[2].parent
                                / "shared" / "corpora" / "spamassassin-dev.tar.gz"))
CHUNK_SIZES = (4096, 65536)
FACTS = ("size", "header_size", "body_size", "bare_lf_count", "bare_cr_count", "nul_count",
         "eight_bit_count", "size_exceeded")
_EOL = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def load_messages(path: Path, limit: int | None) -> list[bytes]:
    out = []
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".eml"):
                continue
            out.append(tar.extractfile(member).read())
            if limit and len(out) >= limit:
                break
    return out


def client_form(raw: bytes) -> tuple[bytes, bytes]:
    """(the CRLF message, what the client sends for it after 354)."""
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    message = _EOL.sub(b"\r\n", raw)
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message, _LEADING_DOT.sub(b"..", message) + b".\r\n"


class BulkReceiver:
    """Buffer-then-regex DATA receiver (see the module docstring); same facts on clean input."""

    _HIGH = bytes(range(128, 256))

    def __init__(self, sink: bytearray) -> None:
        self._sink = sink
        self._buf = bytearray(b"\r\n")     # the DATA line's CRLF starts the first line
        self.done = False
        self.error = None
        self.size_exceeded = False

    def feed(self, data: bytes):
        buf = self._buf
        start = max(0, len(buf) - 4)
        buf += data
        end = buf.find(b"\r\n.\r\n", start)
        if end < 0:
            return NEED_DATA
        # Every line start is preceded by CRLF (the buffer starts with one): one dot each.
        message = bytes(buf[:end + 2]).replace(b"\r\n.", b"\r\n")[2:]
        self._sink += message
        self.done = True
        self.size = len(message)
        crlf = message.count(b"\r\n")
        self.bare_lf_count = message.count(b"\n") - crlf
        self.bare_cr_count = message.count(b"\r") - crlf
        self.nul_count = message.count(b"\0")
        self.eight_bit_count = len(message) - len(message.translate(None, self._HIGH))
        header_end = (b"\r\n" + message).find(b"\r\n\r\n")
        self.header_size = len(message) if header_end < 0 else header_end + 2
        self.body_size = len(message) - self.header_size
        return bytes(buf[end + 5:])


bulk = type("bulk", (), {"DataReceiver": BulkReceiver})


def pieces(wire: bytes, size: int) -> list[bytes]:
    return [wire[i:i + size] for i in range(0, len(wire), size)]


def run(mod, streams: list[list[bytes]]) -> tuple[float, list]:
    """Feed every stream to a fresh receiver; (seconds, [(stored, rest, facts)])."""
    sinks, receivers, rests = [], [], []
    t0 = time.perf_counter()
    for chunks in streams:
        sink = bytearray()
        r = mod.DataReceiver(sink)
        rest = NEED_DATA
        for chunk in chunks:
            rest = r.feed(chunk)
        sinks.append(sink)
        receivers.append(r)
        rests.append(rest)
    elapsed = time.perf_counter() - t0
    results = []
    for sink, r, rest in zip(sinks, receivers, rests):
        facts = tuple(getattr(r, name) for name in FACTS) + (r.done, repr(r.error))
        results.append((bytes(sink), rest, facts))
    return elapsed, results


def environment() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parents[2],
                                timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    try:
        import Cython
        cython_version = Cython.__version__
    except ImportError:
        cython_version = "not installed (module prebuilt)"
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cython": cython_version,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N messages")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    raw = load_messages(args.corpus, args.limit)
    forms = [client_form(m) for m in raw]
    expected = [m for m, _ in forms]
    wires = [w for _, w in forms]
    stream_message = b"".join(expected)
    stream_wire = b"".join(_LEADING_DOT.sub(b"..", m) for m in expected) + b".\r\n"
    env = environment()
    total_in = sum(map(len, wires))
    print("# SMTP DATA receiver: Cython vs the pure-Python reference and the bulk way")
    print(f"# corpus {args.corpus.name}: {len(wires)} messages, {total_in / 1e6:.1f} MB on the wire")
    print("# env " + json.dumps(env))

    rows = []
    all_ok = True
    for workload in ("per-message", "one-stream"):
        for size in CHUNK_SIZES:
            if workload == "per-message":
                streams = [pieces(w, size) for w in wires]
                want = expected
            else:
                streams = [pieces(stream_wire, size)]
                want = [stream_message]
            n_in = sum(len(c) for s in streams for c in s)
            t_cy, t_ref, t_bulk, ratios, bulk_ratios = [], [], [], [], []
            correct = True
            for rnd in range(args.rounds):
                order = (cy, ref, bulk) if rnd % 2 == 0 else (bulk, ref, cy)
                timings = {}
                outputs = {}
                for mod in order:
                    timings[mod], outputs[mod] = run(mod, streams)
                t_cy.append(timings[cy])
                t_ref.append(timings[ref])
                t_bulk.append(timings[bulk])
                ratios.append(timings[ref] / timings[cy])
                bulk_ratios.append(timings[bulk] / timings[cy])
                if rnd == 0:
                    same = outputs[cy] == outputs[ref] == outputs[bulk]
                    exact = all(stored == w and rest == b"" for (stored, rest, _), w
                                in zip(outputs[cy], want))
                    clean = all(facts[-1] == "None" for _, _, facts in outputs[cy])
                    correct = same and exact and clean
                    digest = hashlib.sha256(b"".join(s for s, _, _ in outputs[cy])).hexdigest()
            row = {
                "workload": workload,
                "chunk": size,
                "input_bytes": n_in,
                "cython_mb_s": n_in / statistics.median(t_cy) / 1e6,
                "reference_mb_s": n_in / statistics.median(t_ref) / 1e6,
                "bulk_mb_s": n_in / statistics.median(t_bulk) / 1e6,
                "ratio_median": statistics.median(ratios),
                "bulk_ratio_median": statistics.median(bulk_ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "correct": correct,
                "output_sha256": digest[:16],
            }
            all_ok &= correct
            rows.append(row)
            print(f"{workload:11s} {size // 1024:2d} KiB  "
                  f"cython {row['cython_mb_s']:6.1f} MB/s  reference {row['reference_mb_s']:5.1f} MB/s"
                  f"  bulk {row['bulk_mb_s']:6.1f} MB/s  cython/reference {row['ratio_median']:5.1f}x "
                  f"({row['ratio_min']:.1f}-{row['ratio_max']:.1f})  cython/bulk "
                  f"{row['bulk_ratio_median']:4.1f}x  correct: {correct}")
            sys.stdout.flush()
    print(f"# rounds {args.rounds}; all outputs agreed exactly: {all_ok}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "data_receiver", "env": env,
                                         "rounds": args.rounds, "results": rows,
                                         "correct": all_ok}, indent=2) + "\n")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
