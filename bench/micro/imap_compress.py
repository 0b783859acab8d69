"""IMAP COMPRESS=DEFLATE: octets on the wire and server CPU, with and without compression.

    python -m bench.micro.imap_compress [--messages 500] [--rounds 3] [--corpus PATH]

Two sans-IO sessions (``ImapSession`` over ``Store.memory()``) hold the same mailbox, the
first ``--messages`` messages of the SpamAssassin corpus (``bench.micro.mime.CORPUS``).
Each round runs the synchronisation a mail client does when it opens the mailbox:

    EXAMINE INBOX        (read-only: both sessions see the same \\Recent)
    FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODY.PEEK[HEADER])
    FETCH 1:* (BODY.PEEK[])

once in clear text (the reference) and once after ``COMPRESS DEFLATE``. Reported: the
octets each side sent to the client, their ratio (compressed / clear), and the CPU time
of the whole exchange (``time.process_time``: the session's work plus DEFLATE), median
over rounds, ratio compressed / clear.

Correctness, recorded with the result: the compressed responses, inflated as a client
would, must equal the clear-text responses octet for octet (after the COMPRESS line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path

from stalwart.protocols.imap.session import ImapSession
from stalwart.store import Store

from .mime import CORPUS, load_corpus

COMMANDS = (b"s1 EXAMINE INBOX\r\n"
            b"f1 FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODY.PEEK[HEADER])\r\n"
            b"f2 FETCH 1:* (BODY.PEEK[])\r\n")


async def _mailbox(messages: list[bytes]) -> tuple[Store, int]:
    store = Store.memory()
    await store.create_domain("example.org")
    acc = (await store.create_account("bench", emails=["bench@example.org"]))["id"]
    inbox = next(m["id"] for m in store.list_mailboxes(acc) if m["role"] == "inbox")
    for raw in messages:
        await store.append(acc, inbox, raw, received=1_700_000_000)
    return store, acc


async def _session(store: Store, acc: int) -> ImapSession:
    s = ImapSession(store, allow_plain_without_tls=True)
    s.login(store.get_account(acc))
    return s


async def _exchange(store: Store, acc: int, compress: bool) -> tuple[bytes, int, float]:
    """(responses as the client reads them, octets on the wire, CPU seconds)."""
    s = await _session(store, acc)
    start = time.process_time()
    wire = 0
    text = b""
    if compress:
        s.receive_data(b"c1 COMPRESS DEFLATE\r\n")
        await s.process()
        first = s.data_to_send()
        wire += len(first)
        out = zlib.compressobj(6, zlib.DEFLATED, -15)
        inflate = zlib.decompressobj(wbits=-15)
        s.receive_data(out.compress(COMMANDS) + out.flush(zlib.Z_SYNC_FLUSH))
        while await s.step():
            chunk = s.data_to_send()
            wire += len(chunk)
            text += inflate.decompress(chunk)
    else:
        s.receive_data(COMMANDS)
        while await s.step():
            chunk = s.data_to_send()
            wire += len(chunk)
            text += chunk
    return text, wire, time.process_time() - start




async def run(count: int, rounds: int, corpus: Path) -> dict:
    messages = [raw for _, raw in load_corpus(corpus) if raw.strip()][:count]
    store, acc = await _mailbox(messages)
    clear_times, deflate_times = [], []
    clear_wire = deflate_wire = 0
    correct = True
    for _ in range(rounds):
        clear, clear_wire, t_clear = await _exchange(store, acc, False)
        inflated, deflate_wire, t_deflate = await _exchange(store, acc, True)
        correct = correct and inflated == clear and clear.endswith(b"f2 OK FETCH completed\r\n")
        clear_times.append(t_clear)
        deflate_times.append(t_deflate)
    c, d = statistics.median(clear_times), statistics.median(deflate_times)
    return {"messages": len(messages), "rounds": rounds,
            "clear_octets": clear_wire, "deflate_octets": deflate_wire,
            "wire_ratio": deflate_wire / clear_wire, "clear_cpu_s": c, "deflate_cpu_s": d,
            "cpu_ratio": d / c, "correct": correct, "python": platform.python_version(),
            "machine": platform.machine()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.micro.imap_compress")
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = asyncio.run(run(args.messages, args.rounds, args.corpus))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"mailbox: {result['messages']} SpamAssassin messages; "
              f"{result['rounds']} rounds (median CPU)")
        print(f"octets to the client: clear {result['clear_octets']:,}, "
              f"DEFLATE {result['deflate_octets']:,}, ratio {result['wire_ratio']:.3f}")
        print(f"server CPU: clear {result['clear_cpu_s']:.3f}s, "
              f"DEFLATE {result['deflate_cpu_s']:.3f}s, ratio {result['cpu_ratio']:.2f}")
        print("results correct (inflated == clear text): "
              f"{'yes' if result['correct'] else 'NO'}")
    return 0 if result["correct"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
