"""IMAP command parsing: the native parser (grammar, Rust) against the reference (Python).

    python -m bench.micro.imap_parser [--commands 20000] [--rounds 5] [--chunk 4096] [--json]

The workload is the command mix of a synchronising mail client (the mixed IMAP load of
issue 4: LOGIN, SELECT with CONDSTORE, UID FETCH of flags, headers and bodies, UID STORE,
UID SEARCH, NOOP, IDLE/DONE, STATUS, LIST, APPEND with a literal, UID MOVE, UID EXPUNGE),
built from a seed and fed to each parser in ``--chunk``-octet pieces, as a socket would
deliver pipelined commands; each side answers the events as a session would (IDLE mode
after IDLE). One round parses the whole stream once per side; the report gives commands/s
(median over rounds; the cyclic GC paused while timing, as ``timeit`` does), the median of
the per-round ratios, whether both produced exactly the same events (``==`` and ``repr``),
and the environment.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time

from stalwart.protocols.base import NEED_DATA
from stalwart.protocols.imap import grammar, grammar_ref
from stalwart.protocols.imap.types import Command, ImapError


def workload(count: int, seed: int = 1) -> bytes:
    """``count`` commands of a realistic mix, CRLF-terminated, as one byte stream."""
    rnd = random.Random(seed)
    body = b"From: a@example.com\r\nSubject: hello\r\n\r\n" + b"line of text\r\n" * 40
    templates = [
        (20, lambda t: b"%s UID FETCH %d:* (UID FLAGS MODSEQ) (CHANGEDSINCE %d)"
         % (t, rnd.randint(1, 9000), rnd.randint(1, 10**6))),
        (15, lambda t: b"%s UID FETCH %d (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
         b"(From To Cc Bcc Subject Date Message-ID Priority X-Priority References "
         b"Newsgroups In-Reply-To Content-Type Reply-To)])" % (t, rnd.randint(1, 10000))),
        (10, lambda t: b"%s UID FETCH %d BODY.PEEK[]" % (t, rnd.randint(1, 10000))),
        (10, lambda t: b"%s UID STORE %d +FLAGS.SILENT (\\Seen)" % (t, rnd.randint(1, 10000))),
        (8, lambda t: b"%s UID SEARCH UNDELETED SINCE 1-Jan-2024 FROM \"alice\"" % t),
        (5, lambda t: b"%s UID SEARCH RETURN (MIN MAX COUNT) OR UNSEEN FLAGGED" % t),
        (10, lambda t: b"%s NOOP" % t),
        (4, lambda t: b"%s IDLE\r\nDONE" % t),
        (4, lambda t: b"%s SELECT INBOX (CONDSTORE)" % t),
        (3, lambda t: b"%s STATUS \"Sent Items\" (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ)" % t),
        (2, lambda t: b"%s LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES))" % t),
        (2, lambda t: b"%s LOGIN \"user@example.com\" \"secret password\"" % t),
        (3, lambda t: b"%s APPEND Sent (\\Seen) \"05-Jan-2024 10:00:00 +0100\" {%d+}\r\n%s"
         % (t, len(body), body)),
        (2, lambda t: b"%s UID MOVE %d:%d Trash" % (t, rnd.randint(1, 50), rnd.randint(51, 99))),
        (2, lambda t: b"%s UID EXPUNGE 1:5,9" % t),
    ]
    weights = [w for w, _ in templates]
    makers = [m for _, m in templates]
    out = []
    for i in range(count):
        maker = rnd.choices(makers, weights)[0]
        out.append(maker(b"A%05d" % i) + b"\r\n")
    return b"".join(out)


def parse_all(module, stream: bytes, chunk: int) -> list:
    """Every event of ``stream`` fed in ``chunk``-octet pieces (the timed work)."""
    parser = module.Parser()
    events: list = []
    append = events.append
    next_event = parser.next_event
    for i in range(0, len(stream), chunk):
        parser.receive_data(stream[i:i + chunk])
        while True:
            try:
                event = next_event()
            except ImapError as exc:
                append(exc)
                continue
            if event is NEED_DATA:
                break
            append(event)
            if type(event) is Command and event.name == "IDLE":
                parser.expect_idle_done()
    return events


def _time(fn) -> tuple[float, list]:
    """Run ``fn`` once with the cyclic GC paused (as ``timeit`` does): the events of a whole
    stream stay alive in one list here, which a session never does, and collections over
    them would measure the heap rather than the parser."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def run(count: int, rounds: int, chunk: int) -> dict:
    stream = workload(count)
    native_s, ref_s = [], []
    native_events: list = []
    ref_events: list = []
    for _ in range(rounds):
        native_events = ref_events = []  # let the previous round's events go first
        t, native_events = _time(lambda: parse_all(grammar, stream, chunk))
        native_s.append(t)
        t, ref_events = _time(lambda: parse_all(grammar_ref, stream, chunk))
        ref_s.append(t)
    commands = sum(1 for e in ref_events if type(e) is Command)
    agreed = native_events == ref_events and [repr(e) for e in native_events] == [
        repr(e) for e in ref_events]
    return {
        "benchmark": "imap_parser",
        "commands": commands,
        "events": len(ref_events),
        "errors": sum(1 for e in ref_events if isinstance(e, ImapError)),
        "megabytes": round(len(stream) / 1e6, 2),
        "chunk": chunk,
        "rounds": rounds,
        "native_cmds_per_s": round(commands / statistics.median(native_s)),
        "reference_cmds_per_s": round(commands / statistics.median(ref_s)),
        "median_ratio": round(statistics.median(r / n for n, r in zip(native_s, ref_s)), 2),
        "agreed": agreed,
        "env": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "system": platform.system(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro.imap_parser",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(max(args.commands, 1), max(args.rounds, 1), max(args.chunk, 1))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["agreed"] else 1
    env = result["env"]
    print(f"workload: {result['commands']} commands, {result['megabytes']} MB, fed in "
          f"{result['chunk']}-octet chunks; {result['rounds']} rounds")
    print(f"env: Python {env['python']} ({env['implementation']}), {env['cpu_count']} CPUs, "
          f"{env['system']} {env['machine']}")
    print(f"grammar (native):       {result['native_cmds_per_s']:>9} commands/s")
    print(f"grammar_ref (Python):   {result['reference_cmds_per_s']:>9} commands/s")
    print(f"median ratio: {result['median_ratio']}x")
    print(f"results agreed: {'yes' if result['agreed'] else 'NO'} "
          f"({result['events']} events, {result['errors']} errors on both sides)")
    return 0 if result["agreed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
