"""Real synchronising IMAP clients against the real daemon: mbsync (isync) and offlineimap3.

The daemon (``stalwart-master``, two IMAP workers, RocksDB store) serves accounts from a
memory directory. Shown here:

- mbsync, both ways over a 1,000-message mailbox: the server's INBOX to a local Maildir,
  and a local 1,000-message Maildir folder up to a new server mailbox; then flags changed
  and messages deleted on both sides; a resync converges (same Message-IDs and the same
  flags on both sides) and a further resync changes nothing.
- offlineimap3 over a smaller mailbox: a first sync, then flag changes and deletions on
  both sides and a resync that converges.

Needs ``mbsync`` and ``offlineimap`` (Debian ``isync`` and ``offlineimap3``, installed by
``tests/install-peers.sh``). Ports: 21500-21999.
"""

from __future__ import annotations

import imaplib
import random
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

PORTS = (21500, 21999)
ACCOUNTS = """
[directory.memory]
type = "memory"

[[directory.memory.principals]]
name = "alice"
class = "individual"
secret = "alice-pw"
email = ["alice@example.com"]

[[directory.memory.principals]]
name = "bob"
class = "individual"
secret = "bob-pw"
email = ["bob@example.com"]
"""
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                 "T": "\\Deleted"}


def _port() -> int:
    for _ in range(200):
        port = random.randint(*PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 21500-21999")


def message(i: int, tag: str) -> bytes:
    return (f"From: Sender {i} <sender{i}@example.org>\r\nTo: alice@example.com\r\n"
            f"Subject: {tag} message {i}\r\nMessage-ID: <{tag}.{i}@sync.test>\r\n"
            f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n\r\n"
            f"Body of {tag} message {i}.\r\n" + "lorem ipsum " * (i % 50) + "\r\n").encode()


def fill(port: int, user: str, password: str, mailbox: str, count: int, tag: str) -> None:
    """APPEND ``count`` messages, pipelined with LITERAL+ (one round trip per batch)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f"l LOGIN {user} {password}\r\n".encode())
        while not f.readline().startswith(b"l "):
            pass
        for start in range(0, count, 200):
            batch = range(start, min(count, start + 200))
            out = bytearray()
            for i in batch:
                data = message(i, tag)
                out += f'a{i} APPEND "{mailbox}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n"
            s.sendall(out)
            done = 0
            while done < len(batch):
                line = f.readline()
                assert line, "connection closed during APPEND"
                if line.startswith(b"a"):
                    assert b" OK " in line, line
                    done += 1


def server_state(port: int, user: str, password: str, mailbox: str) -> dict[str, frozenset]:
    """Message-ID -> flags of every message in a server mailbox."""
    m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        m.login(user, password)
        typ, _ = m.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK"
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        if data == [None]:
            return {}
        out = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
            mid = re.search(rb"<([^>]+)>", item[1]).group(1).decode()
            out[mid] = frozenset(f for f in flags if f != "\\Recent")
        return out
    finally:
        m.logout()


def server_change(port: int, user: str, password: str, mailbox: str,
                  flag_ids: list[str], delete_ids: list[str]) -> None:
    """Flag some messages (by Message-ID) and expunge others, on the server."""
    m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        m.login(user, password)
        m.select(f'"{mailbox}"')
        for mid, flag in [(i, "\\Flagged") for i in flag_ids] + \
                         [(i, "\\Deleted") for i in delete_ids]:
            typ, data = m.uid("SEARCH", None, f'HEADER Message-ID "<{mid}>"')
            [uid] = data[0].split()
            assert m.uid("STORE", uid, "+FLAGS", f"({flag})")[0] == "OK"
        assert m.expunge()[0] == "OK"
    finally:
        m.logout()


def maildir_files(folder: Path) -> dict[str, Path]:
    """Message-ID -> file of every message in a local Maildir folder."""
    out = {}
    for sub in ("cur", "new"):
        for path in (folder / sub).iterdir():
            head = path.read_bytes().split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            mid = re.search(rb"(?im)^message-id:\s*<([^>]+)>", head).group(1).decode()
            out[mid] = path
    return out


def maildir_state(folder: Path) -> dict[str, frozenset]:
    out = {}
    for mid, path in maildir_files(folder).items():
        info = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
        out[mid] = frozenset(MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS)
    return out


def maildir_add_flag(path: Path, flag: str) -> None:
    name = path.name
    base, _, info = name.partition(":2,")
    info = "".join(sorted(set(info) | {flag}))
    path.rename(path.parent.parent / "cur" / f"{base}:2,{info}")


def maildir_write(folder: Path, count: int, tag: str) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / "new" / f"{int(time.time())}.{i}_{tag}.localhost").write_bytes(
            message(i, tag).replace(b"\r\n", b"\n"))


@pytest.fixture
def server(daemon):
    if shutil.which("mbsync") is None or shutil.which("offlineimap") is None:
        pytest.fail("mbsync and offlineimap are needed: run tests/install-peers.sh")
    port = _port()
    daemon.configure(listeners=[("imap", "imap", port)], workers={"imap": 2}, extra=ACCOUNTS)
    daemon.start()
    daemon.wait_for(lambda: "memory directory synced" in daemon.log(), timeout=30)
    daemon.imap_port = port
    return daemon


def _mbsync(rc: Path) -> str:
    result = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_mbsync_both_ways_1000_messages_flags_and_deletions_converge(server, tmp_path):
    port = server.imap_port
    fill(port, "alice", "alice-pw", "INBOX", 1000, "far")
    local = tmp_path / "mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount test
Host 127.0.0.1
Port {port}
User alice
Pass alice-pw
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel main
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    # server -> local
    _mbsync(rc)
    far = server_state(port, "alice", "alice-pw", "INBOX")
    assert len(far) == 1000
    assert maildir_state(local / "INBOX") == far
    # local -> server: a new 1,000-message folder is created on the server
    maildir_write(local / "Uploaded", 1000, "near")
    _mbsync(rc)
    assert len(server_state(port, "alice", "alice-pw", "Uploaded")) == 1000
    assert server_state(port, "alice", "alice-pw", "Uploaded") == \
        maildir_state(local / "Uploaded")
    # changes on both sides: the server flags 20 and expunges 15 of INBOX; the local side
    # marks 25 seen and deletes 10 in INBOX, and flags 5 and deletes 5 in Uploaded
    ids = sorted(far)
    server_change(port, "alice", "alice-pw", "INBOX", ids[0:20], ids[20:35])
    files = maildir_files(local / "INBOX")
    for mid in ids[100:125]:
        maildir_add_flag(files[mid], "S")
    for mid in ids[200:210]:
        files[mid].unlink()
    up = maildir_files(local / "Uploaded")
    up_ids = sorted(up)
    for mid in up_ids[:5]:
        maildir_add_flag(up[mid], "F")
    for mid in up_ids[5:10]:
        up[mid].unlink()
    _mbsync(rc)
    for box in ("INBOX", "Uploaded"):
        remote = server_state(port, "alice", "alice-pw", box)
        assert remote == maildir_state(local / box), box
    inbox = server_state(port, "alice", "alice-pw", "INBOX")
    assert len(inbox) == 1000 - 15 - 10
    assert all("\\Flagged" in inbox[m] for m in ids[0:20])
    assert all("\\Seen" in inbox[m] for m in ids[100:125])
    assert not set(ids[20:35]) & set(inbox) and not set(ids[200:210]) & set(inbox)
    uploaded = server_state(port, "alice", "alice-pw", "Uploaded")
    assert len(uploaded) == 995 and all("\\Flagged" in uploaded[m] for m in up_ids[:5])
    # a further sync has nothing to do: both sides stay as they are
    _mbsync(rc)
    assert server_state(port, "alice", "alice-pw", "INBOX") == inbox
    assert maildir_state(local / "INBOX") == inbox


def test_offlineimap3_sync_flags_and_deletions(server, tmp_path):
    port = server.imap_port
    fill(port, "bob", "bob-pw", "INBOX", 150, "oi")
    local = tmp_path / "mail"
    meta = tmp_path / "meta"
    cfg = tmp_path / "offlineimaprc"
    cfg.write_text(f"""[general]
accounts = test
metadata = {meta}
ui = basic

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {local}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = bob
remotepass = bob-pw
ssl = no
starttls = no
folderfilter = lambda name: name in ["INBOX", "Archive"]
""")

    def sync() -> None:
        result = subprocess.run(["offlineimap", "-c", str(cfg), "-o", "-u", "basic"],
                                capture_output=True, text=True, timeout=600)
        out = result.stdout + result.stderr
        assert result.returncode == 0 and "ERROR" not in out, out[-5000:]

    sync()
    far = server_state(port, "bob", "bob-pw", "INBOX")
    assert len(far) == 150
    assert maildir_state(local / "INBOX") == far
    ids = sorted(far)
    server_change(port, "bob", "bob-pw", "INBOX", ids[0:10], ids[10:15])
    files = maildir_files(local / "INBOX")
    for mid in ids[50:60]:
        maildir_add_flag(files[mid], "S")
    for mid in ids[60:65]:
        files[mid].unlink()
    sync()
    remote = server_state(port, "bob", "bob-pw", "INBOX")
    assert remote == maildir_state(local / "INBOX")
    assert len(remote) == 140
    assert all("\\Flagged" in remote[m] for m in ids[0:10])
    assert all("\\Seen" in remote[m] for m in ids[50:60])
