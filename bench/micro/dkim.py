"""DKIM sign and verify per second, RSA-2048 and Ed25519: ours against dkimpy.

    python -m bench.micro.dkim [--messages 400] [--rounds 3] [--corpus PATH] [--json]
                               [--canon native|python]

Messages: the first ``--messages`` of the SpamAssassin corpus (real mail from 2002,
``../shared/corpora/spamassassin-dev.tar.gz``; ``STALWART_CORPUS`` overrides) that have a
From field, mbox ``From `` line removed, line ends made CRLF as on the wire.

For each algorithm, each side signs every message (relaxed/relaxed) and verifies every
message the *other* side signed, so one run also checks agreement: every signature of
each side must verify with the other (the ``correct`` line). Keys come from a dict-backed
resolver (ours: ``stalwart.dns.FakeBackend`` behind the real ``Resolver`` and its cache;
dkimpy: a ``dnsfunc``), so DNS costs nothing on either side. The figures are messages per
CPU second of this process (both sides are single-threaded), the median over ``--rounds``;
the ratio is ours / dkimpy.

``breakdown`` sets the public-key operations (timed alone on the same data) against our
whole per-message signing and verifying time; the rest is Python: splitting the message,
canonicalizing and hashing header and body (also timed alone), parsing tags, the DNS
cache. ``--canon python`` runs our side with the Python reference canonicalization
instead of the Rust one (``stalwart.mailauth.canon.use_native``), to measure what the
native path buys; ``python -m bench micro.dkim_canon`` times the canonicalization alone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

from bench.micro.mime import CORPUS, load_corpus

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")

#: CPU time of this process: both sides run single-threaded in it, and on a machine shared
#: with other work the wall clock would mostly measure the neighbours.
_clock = time.process_time


def messages(path: Path, count: int) -> list[bytes]:
    out = []
    for _, raw in load_corpus(path):
        raw = re.sub(rb"\r?\n", b"\r\n", raw)
        if re.search(rb"(?im)^from:", raw.split(b"\r\n\r\n", 1)[0]):
            out.append(raw)
            if len(out) >= count:
                break
    return out


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def run_algorithm(algorithm: str, corpus: list[bytes], rounds: int) -> dict:
    import dkim as dkimpy

    from stalwart.dns import FakeBackend, Resolver
    from stalwart.mailauth import dkim, keys

    key = keys.generate(algorithm, 2048)
    record = keys.dns_record("example.org", "bench", key)
    zone = {record.name: {"TXT": record.strings}}
    txt = record.value.encode()
    resolver = Resolver(FakeBackend(zone))
    signer = dkim.DkimSigner("example.org", "bench", key)
    if algorithm == "rsa-sha256":
        their_key, their_alg = keys.private_key_pem(key).encode(), b"rsa-sha256"
    else:
        their_key, their_alg = base64.b64encode(key.private_bytes_raw()), b"ed25519-sha256"

    def lookup(name, timeout=5):
        return txt if name.decode().rstrip(".") == record.name else None

    now = int(time.time())
    timings: dict[str, list[float]] = {k: [] for k in ("ours_sign", "theirs_sign",
                                                        "ours_verify", "theirs_verify")}
    ours_ok = theirs_ok = 0
    for _ in range(rounds):
        t = _clock()
        ours_signed = [dkim.sign(m, [signer], now=now) + m for m in corpus]
        timings["ours_sign"].append(_clock() - t)

        t = _clock()
        theirs_signed = [dkimpy.sign(m, b"bench", b"example.org", their_key,
                                     signature_algorithm=their_alg,
                                     canonicalize=(b"relaxed", b"relaxed")) + m
                         for m in corpus]
        timings["theirs_sign"].append(_clock() - t)

        async def verify_all() -> list:
            return [await dkim.verify(m, resolver, now=now) for m in theirs_signed]

        t = _clock()
        results = asyncio.run(verify_all())
        timings["ours_verify"].append(_clock() - t)
        ours_ok = sum(1 for r in results if [x.result for x in r] == ["pass"])

        t = _clock()
        verdicts = [dkimpy.verify(m, dnsfunc=lookup) for m in ours_signed]
        timings["theirs_verify"].append(_clock() - t)
        theirs_ok = sum(1 for v in verdicts if v)

    n = len(corpus)
    rates = {k: _rate(n, statistics.median(v)) for k, v in timings.items()}
    return {
        "algorithm": algorithm,
        "messages": n,
        "sign_per_s": {"ours": rates["ours_sign"], "dkimpy": rates["theirs_sign"],
                       "ratio": rates["ours_sign"] / rates["theirs_sign"]},
        "verify_per_s": {"ours": rates["ours_verify"], "dkimpy": rates["theirs_verify"],
                         "ratio": rates["ours_verify"] / rates["theirs_verify"]},
        "agreement": {"ours_verified_dkimpy": ours_ok, "dkimpy_verified_ours": theirs_ok,
                      "of": n},
        "breakdown": breakdown(signer, corpus, now),
    }


def breakdown(signer, corpus: list[bytes], now: int) -> dict:
    """Our signing time split into message work and the private-key operation, and our
    verification's message work against its public-key operation."""
    from stalwart.mailauth import dkim
    from stalwart.mailauth.canon import split_message

    prepared = []
    t = _clock()
    for m in corpus:
        fields, body = split_message(m)
        index = dkim.HeaderIndex(fields)
        bodies = dkim.BodyHashes(body)
        bodies.digest("relaxed", None)
        names = [n.encode() for n in signer.header_names(index)]
        prepared.append(index.signed_data(names, "relaxed", b"DKIM-Signature: v=1; b="))
    message_work = _clock() - t
    t = _clock()
    signatures = [dkim.sign_data(signer.algorithm, signer.private_key, data) for data in prepared]
    sign_op = _clock() - t
    public = signer.private_key.public_key()
    t = _clock()
    for data, sig in zip(prepared, signatures):
        dkim.verify_data(signer.algorithm, public, sig, data)
    verify_op = _clock() - t
    n = len(corpus)
    return {"message_work_us": message_work / n * 1e6, "sign_op_us": sign_op / n * 1e6,
            "verify_op_us": verify_op / n * 1e6}


def environment() -> dict:
    from importlib.metadata import version

    import cryptography

    return {"python": platform.python_version(), "cryptography": cryptography.__version__,
            "dkimpy": version("dkimpy"), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "system": platform.system()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro.dkim",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--canon", choices=("native", "python"), default="native",
                        help="our canonicalization: Rust (default) or the Python reference")
    args = parser.parse_args(argv)
    from stalwart.mailauth import canon
    if canon.use_native(args.canon == "native") != (args.canon == "native"):
        print("stalwart._native has no DKIM functions: build it (make build)", file=sys.stderr)
        return 2
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus} (set STALWART_CORPUS)", file=sys.stderr)
        return 2
    corpus = messages(args.corpus, args.messages)
    report = {"results": [run_algorithm(a, corpus, args.rounds) for a in ALGORITHMS],
              "environment": environment(), "canon": args.canon}
    correct = all(r["agreement"]["ours_verified_dkimpy"] == r["agreement"]["of"]
                  and r["agreement"]["dkimpy_verified_ours"] == r["agreement"]["of"]
                  for r in report["results"])
    report["correct"] = correct
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if correct else 1
    print(f"DKIM on {len(corpus)} corpus messages, median of {args.rounds} rounds "
          f"(messages per CPU second; ratio = ours / dkimpy; our canonicalization: "
          f"{'Rust' if args.canon == 'native' else 'Python reference'})")
    print(f"{'algorithm':<16}{'op':<8}{'ours':>10}{'dkimpy':>10}{'ratio':>8}")
    for r in report["results"]:
        for op in ("sign", "verify"):
            f = r[f"{op}_per_s"]
            print(f"{r['algorithm']:<16}{op:<8}{f['ours']:>10.0f}{f['dkimpy']:>10.0f}"
                  f"{f['ratio']:>7.1f}x")
    for r in report["results"]:
        b = r["breakdown"]
        sign_us = 1e6 / r["sign_per_s"]["ours"]
        verify_us = 1e6 / r["verify_per_s"]["ours"]
        print(f"breakdown {r['algorithm']} (ours, CPU per message): sign {sign_us:.0f} us, of "
              f"which the private-key operation {b['sign_op_us']:.0f} us "
              f"({b['sign_op_us'] / sign_us:.0%}); verify {verify_us:.0f} us, of which the "
              f"public-key operation {b['verify_op_us']:.0f} us "
              f"({b['verify_op_us'] / verify_us:.0%}); splitting, canonicalizing and hashing "
              f"header and body alone {b['message_work_us']:.0f} us")
    for r in report["results"]:
        a = r["agreement"]
        print(f"agreement {r['algorithm']}: we verified {a['ours_verified_dkimpy']}/{a['of']} "
              f"dkimpy signatures, dkimpy verified {a['dkimpy_verified_ours']}/{a['of']} of ours")
    print(f"correct: {'yes' if correct else 'NO'}")
    env = report["environment"]
    print(f"environment: Python {env['python']}, cryptography {env['cryptography']}, "
          f"dkimpy {env['dkimpy']}, {env['cpu_count']} CPUs, {env['machine']}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
