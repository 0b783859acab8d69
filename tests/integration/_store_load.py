"""Load client for tests/integration/test_store_process.py (run as a subprocess).

    python _store_load.py BASE ACCOUNT TAG COUNT CONCURRENCY OUT

Appends COUNT messages to the inbox of ACCOUNT through the store process under BASE, at most
CONCURRENCY in flight, and writes one line per *acknowledged* append to OUT (flushed and
fsynced before the next line): "tag seq email_id uid". Operations refused as ``unavailable``
(the store was killed) are retried until acknowledged.
"""

import asyncio
import os
import sys
from pathlib import Path

from stalwart.store import Store, StoreError


async def main() -> None:
    base, account, tag, count, concurrency, out = sys.argv[1:7]
    base = Path(base)
    account, count, concurrency = int(account), int(count), int(concurrency)
    store = await Store.connect(base / "data", base / "blobs", base / "store.sock",
                                base / "sec" / f"{tag}-{os.getpid()}", connect_timeout=60)
    sem = asyncio.Semaphore(concurrency)
    fh = open(out, "a", buffering=1)

    async def one(seq: int) -> None:
        body = f"Subject: {tag} {seq}\r\n\r\nmessage {tag}-{seq}\r\n".encode()
        async with sem:
            while True:
                try:
                    r = await store.append(account, 1, body)
                    break
                except StoreError as exc:
                    if exc.code != "unavailable":
                        raise
                    await asyncio.sleep(0.05)
            fh.write(f"{tag} {seq} {r['id']} {r['uid']}\n")
            fh.flush()
            os.fsync(fh.fileno())

    await asyncio.gather(*(one(i) for i in range(count)))
    fh.close()
    await store.close()


asyncio.run(main())
