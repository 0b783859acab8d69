"""No message that got SMTP 250 is lost when processes die (issue 3, durability).

The real daemon; four smtplib clients deliver to a local account as fast as they can while
the test SIGKILLs, again and again, the smtp worker and the store process. A client records
a message only when the server answered 250 after DATA; on any error it reconnects and
sends a new message. At the end every recorded message must be in the mailbox, read
through a store secondary from this test process.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time

from stalwart.store import Store

CLI = [sys.executable, "-m", "stalwart.cli.main"]


def _cli(daemon, *args: str) -> None:
    subprocess.run([*CLI, "--config", str(daemon.config_path), *args], check=True,
                   capture_output=True, timeout=60, input=b"")


def _sender(port: int, tag: str, acked: list, stop: threading.Event) -> None:
    seq = 0
    client = None
    while not stop.is_set():
        try:
            if client is None:
                client = smtplib.SMTP("127.0.0.1", port, timeout=10)
                client.ehlo("client.test")
            seq += 1
            ident = f"{tag}-{seq}"
            body = (f"From: sender@remote.test\r\nTo: alice@example.org\r\n"
                    f"Subject: durability {ident}\r\nMessage-ID: <{ident}@remote.test>\r\n\r\n"
                    f"{'x' * 2000}\r\n").encode()
            client.sendmail("sender@remote.test", ["alice@example.org"], body)
            acked.append(ident)           # only after the 250 to DATA
        except (smtplib.SMTPException, OSError):
            try:
                if client is not None:
                    client.close()
            except OSError:
                pass
            client = None
            time.sleep(0.05)
    if client is not None:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            pass


def test_sigkill_of_smtp_worker_and_store_loses_no_acknowledged_message(daemon, tmp_path):
    smtp_port, http_port = daemon.port(), daemon.port()
    daemon.configure(listeners=[("smtp", "smtp", smtp_port), ("http", "http", http_port)],
                     server={"heartbeat-timeout": "5s"})
    daemon.start()
    _cli(daemon, "domain", "create", "example.org")
    _cli(daemon, "account", "create", "alice", "--email", "alice@example.org")

    acked: list[str] = []
    stop = threading.Event()
    senders = [threading.Thread(target=_sender, args=(smtp_port, f"c{i}", acked, stop))
               for i in range(4)]
    for t in senders:
        t.start()
    kills = 0
    try:
        deadline = time.monotonic() + 25
        while kills < 8 and time.monotonic() < deadline:
            time.sleep(1.0)
            before = len(acked)
            if kills % 2 == 0:
                victim = next(iter(daemon.workers("smtp").values()))
            else:
                victim = daemon.singleton("store")
            if victim is None:
                continue
            os.kill(victim.pid, signal.SIGKILL)
            kills += 1
            # Load was flowing before each kill.
            assert before > 0
        time.sleep(2.0)                  # let the last respawn serve a few more messages
    finally:
        stop.set()
        for t in senders:
            t.join(30)
    print(f"acked={len(acked)} kills={kills}")
    assert kills == 8
    assert len(acked) > 50, f"only {len(acked)} messages were acknowledged"

    base = daemon.base_dir

    async def read_subjects() -> set[str]:
        store = await Store.connect(base / "data", base / "blobs", base / "run" / "store.sock",
                                    tmp_path / "verify-secondary", connect_timeout=30)
        acc = store.get_account("alice")["id"]
        inbox = store.find_mailbox(acc, "INBOX")["id"]
        found = set()
        for _, eid in store.mailbox_uids(acc, inbox):
            m = re.search(rb"Subject: durability (\S+)", store.read_message(acc, eid))
            if m:
                found.add(m.group(1).decode())
        await store.close()
        return found

    found = asyncio.run(read_subjects())
    missing = [ident for ident in acked if ident not in found]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    assert daemon.stop() == 0
