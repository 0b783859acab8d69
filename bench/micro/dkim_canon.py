"""DKIM canonicalization and hashing per message: Rust (ext/src/dkim.rs) against the Python reference.

    python -m bench.micro.dkim_canon [--messages 1000] [--rounds 5] [--corpus PATH] [--json]

Messages: the first ``--messages`` of the SpamAssassin corpus that have a From field,
line ends made CRLF (as in ``bench.micro.dkim``). Each operation runs over every message
on both paths of ``stalwart.mailauth.canon`` (the public functions, native, and the
``*_py`` reference):

==============  ========================================================================
split           the message into header fields and body (``split_message``)
body relaxed    SHA-256 of the relaxed canonical body and its length (``body_hash``)
body simple     the same, simple
headers         the signed header data, relaxed, of every field plus a signature field
                with ``b=`` emptied (``header_data``)
per message     split + relaxed body hash + relaxed header data: the message work of one
                relaxed/relaxed signature
==============  ========================================================================

Figures are microseconds of process CPU per message, the median over ``--rounds``; the
ratio is Python / Rust (how many times faster the native path is). ``correct`` says
whether every native result equalled the reference's, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from bench.micro.dkim import messages
from bench.micro.mime import CORPUS

_clock = time.process_time
SIGNATURE = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=bench;\r\n\tb=AAAA\r\n\tBBBB\r\n"


def operations(canon):
    """{name: (native fn, reference fn)}; each fn takes one prepared message."""
    def split(py):
        fn = canon.split_message_py if py else canon.split_message
        return lambda m: fn(m["raw"])

    def body(method, py):
        fn = canon.body_hash_py if py else canon.body_hash
        return lambda m: fn(m["body"], method)

    def headers(py):
        fn = canon.header_data_py if py else canon.header_data
        return lambda m: fn(m["raws"], "relaxed", SIGNATURE)

    def whole(py):
        s = canon.split_message_py if py else canon.split_message
        b = canon.body_hash_py if py else canon.body_hash
        h = canon.header_data_py if py else canon.header_data

        def run(m):
            fields, body_ = s(m["raw"])
            return b(body_, "relaxed"), h([f.raw for f in fields], "relaxed", SIGNATURE)
        return run

    return {
        "split": (split(False), split(True)),
        "body relaxed": (body("relaxed", False), body("relaxed", True)),
        "body simple": (body("simple", False), body("simple", True)),
        "headers": (headers(False), headers(True)),
        "per message": (whole(False), whole(True)),
    }


def timed(fn, prepared: list[dict], rounds: int) -> tuple[float, list]:
    """(median CPU seconds for one pass, the results of the last pass)."""
    times, results = [], []
    for _ in range(rounds):
        t = _clock()
        results = [fn(m) for m in prepared]
        times.append(_clock() - t)
    return statistics.median(times), results


def run(corpus: list[bytes], rounds: int) -> dict:
    from stalwart.mailauth import canon

    if not canon.NATIVE:
        raise SystemExit("stalwart._native has no DKIM functions: build it (make build)")
    prepared = []
    for raw in corpus:
        fields, body = canon.split_message_py(raw)
        prepared.append({"raw": raw, "body": body, "raws": [f.raw for f in fields]})
    n = len(prepared)
    out = {}
    for name, (native, python) in operations(canon).items():
        t_native, r_native = timed(native, prepared, rounds)
        t_python, r_python = timed(python, prepared, rounds)
        out[name] = {"rust_us": t_native / n * 1e6, "python_us": t_python / n * 1e6,
                     "ratio": t_python / t_native if t_native > 0 else float("inf"),
                     "agree": sum(1 for a, b in zip(r_native, r_python) if a == b), "of": n}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro.dkim_canon",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus} (set STALWART_CORPUS)", file=sys.stderr)
        return 2
    corpus = messages(args.corpus, args.messages)
    results = run(corpus, args.rounds)
    correct = all(r["agree"] == r["of"] for r in results.values())
    env = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
           "machine": platform.machine(), "system": platform.system()}
    if args.json:
        print(json.dumps({"results": results, "correct": correct, "environment": env,
                          "messages": len(corpus), "rounds": args.rounds}, indent=2))
        return 0 if correct else 1
    size = sum(map(len, corpus)) / max(len(corpus), 1)
    print(f"DKIM canonicalization on {len(corpus)} corpus messages (mean {size:.0f} octets), "
          f"median of {args.rounds} rounds (CPU us per message; ratio = Python / Rust)")
    print(f"{'operation':<16}{'rust':>10}{'python':>10}{'ratio':>9}{'agree':>13}")
    for name, r in results.items():
        print(f"{name:<16}{r['rust_us']:>10.1f}{r['python_us']:>10.1f}{r['ratio']:>8.1f}x"
              f"{r['agree']:>8}/{r['of']}")
    print(f"correct: {'yes' if correct else 'NO'}")
    print(f"environment: Python {env['python']}, {env['cpu_count']} CPUs, {env['machine']}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
