"""Key layout of the store.

Every key starts with a one-byte subspace, followed by big-endian fixed-width ids, so that a
prefix scan walks one account's (or one mailbox's) records in id order. This is the layout
Stalwart uses, flattened into RocksDB's default column family: the set of subspaces is fixed,
so RocksDB secondaries (which never see column families created after they open) see them all.

Values are msgpack maps (see engine.py for their fields); counters are inside those maps, so
that a single ``put`` in the operation's batch updates them atomically with the data.

Subspace          key after the byte                         value
META        0x01  name (ascii)                               msgpack
DOMAIN      0x02  domain (lowercase, IDNA ascii)             {"catch_all", "alias_of"}
PRINCIPAL   0x03  account u32                                {"name","secret","emails",...}
NAME_IDX    0x04  login name (lowercase utf-8)               account u32
EMAIL_IDX   0x05  domain 0x00 local-part (lowercase)         account u32
FORWARD     0x06  domain 0x00 local-part (lowercase)         {"address","targets",...} (ops/forward.py)
ACCOUNT     0x07  account u32                                counters and collection states
MAILBOX     0x10  account u32, mailbox u32                   {"name","parent","role",...}
MAILBOX_UID 0x11  account u32, mailbox u32, uid u32          email u32
EMAIL       0x12  account u32, email u32                     {"blob","size","kw","mb",...}
THREAD_IDX  0x13  account u32, sha256(message-id)[:16]       thread u32
CHANGELOG   0x14  account u32, change u64                    {"e":[c,u,d],"m":[...],"t":[...]}
VANISHED    0x15  account u32, mailbox u32, modseq u64, uid  b""
BLOB_REF    0x16  blob hash (32 bytes)                       refcount u32
QUEUE       0x20  queue id u64                               the queue's record (queue/model)
QUEUE_DUE   0x21  due time ms u64, queue id u64              b""
METADATA    0x30  owner u32 (0: server), mailbox u32 (0: server entry), user u32 (0: /shared),
                  entry name (lower-case ascii)              value (bytes)
RECENT      0x31  account u32, mailbox u32                   highest UID claimed as \\Recent u32
JUNK_TRAIN  0x32  event id u64                               {"account","email","blob","class",...}
ACL_IDX     0x17  grantee u32 (0: anyone), owner u32, mailbox u32   b"" (ops/acl.py)
DEDUP       0x40  account u32, message key (16 bytes)        expiry u64 (ops/dedup.py)
DEDUP_EXP   0x41  expiry u64, account u32, message key       b"" (ops/dedup.py)
DMARC_ROW   0x50  row id u64                                 a DMARC aggregate row (ops/reports.py)
REPORT_IN   0x51  report id u64                              a received DMARC/TLS report (ops/reports.py)
FTS_TERM    0x60  account u32, "field:term" utf-8, 0x00, block u32   posting list (ops/fts.py)
FTS_DOC     0x61  account u32, email u32                     {"lang", "terms"} (ops/fts.py)
FTS_STATE   0x62  account u32                                {"next"}: index watermark (ops/fts.py)
"""

from __future__ import annotations

import hashlib
import struct

META = b"\x01"
DOMAIN = b"\x02"
PRINCIPAL = b"\x03"
NAME_IDX = b"\x04"
EMAIL_IDX = b"\x05"
FORWARD = b"\x06"     # forwarding aliases: an address -> target addresses (ops/forward.py)
ACCOUNT = b"\x07"
MAILBOX = b"\x10"
MAILBOX_UID = b"\x11"
EMAIL = b"\x12"
THREAD_IDX = b"\x13"
CHANGELOG = b"\x14"
VANISHED = b"\x15"
BLOB_REF = b"\x16"
QUEUE = b"\x20"
QUEUE_DUE = b"\x21"
METADATA = b"\x30"     # IMAP METADATA entries (ops/metadata.py)
RECENT = b"\x31"       # IMAP \Recent claims (ops/metadata.py)
JUNK_TRAIN = b"\x32"   # spam-filter training events (ops/metadata.py)
ACL_IDX = b"\x17"      # mailboxes shared with an account (ops/acl.py)
DEDUP = b"\x40"        # messages delivered per account, for duplicate suppression
DEDUP_EXP = b"\x41"    # the same by expiry time, for purging (ops/dedup.py)
DMARC_ROW = b"\x50"    # per-message DMARC results awaiting the aggregate report
REPORT_IN = b"\x51"    # DMARC aggregate and TLS reports received (ops/reports.py)
FTS_TERM = b"\x60"     # full-text posting lists (ops/fts.py)
FTS_DOC = b"\x61"      # full-text: the terms of each indexed email
FTS_STATE = b"\x62"    # full-text: the per-account watermark

#: Subspaces holding one account's data, each starting with the account u32.
ACCOUNT_SUBSPACES = (ACCOUNT, MAILBOX, MAILBOX_UID, EMAIL, THREAD_IDX, CHANGELOG, VANISHED,
                     METADATA, RECENT)
ACCOUNT_SUBSPACES += (FTS_TERM, FTS_DOC, FTS_STATE)

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U32U32 = struct.Struct(">II")
_U32U32U32 = struct.Struct(">III")
_U32U64 = struct.Struct(">IQ")
_U32U32U64U32 = struct.Struct(">IIQI")


def u32(value: int) -> bytes:
    return _U32.pack(value)


def read_u32(raw: bytes, offset: int = 0) -> int:
    return _U32.unpack_from(raw, offset)[0]


def meta(name: str) -> bytes:
    return META + name.encode("ascii")


def domain(name: str) -> bytes:
    return DOMAIN + name.encode("ascii")


def principal(account: int) -> bytes:
    return PRINCIPAL + _U32.pack(account)


def name_idx(name: str) -> bytes:
    return NAME_IDX + name.lower().encode("utf-8")


def email_idx(address: str) -> bytes:
    local, _, dom = address.lower().rpartition("@")
    return EMAIL_IDX + dom.encode("utf-8") + b"\x00" + local.encode("utf-8")


def email_idx_domain_prefix(dom: str) -> bytes:
    return EMAIL_IDX + dom.lower().encode("utf-8") + b"\x00"


def forward(address: str) -> bytes:
    """The FORWARD key of a normalized address (same layout as EMAIL_IDX)."""
    local, _, dom = address.lower().rpartition("@")
    return FORWARD + dom.encode("utf-8") + b"\x00" + local.encode("utf-8")


def forward_domain_prefix(dom: str) -> bytes:
    return FORWARD + dom.lower().encode("utf-8") + b"\x00"


def email_from_idx(key: bytes) -> str:
    dom, _, local = key[1:].partition(b"\x00")
    return f"{local.decode('utf-8')}@{dom.decode('utf-8')}"


def account(acc: int) -> bytes:
    return ACCOUNT + _U32.pack(acc)


def account_prefix(subspace: bytes, acc: int) -> bytes:
    return subspace + _U32.pack(acc)


def mailbox(acc: int, mbox: int) -> bytes:
    return MAILBOX + _U32U32.pack(acc, mbox)


def mailbox_id_from_key(key: bytes) -> int:
    return _U32.unpack_from(key, 5)[0]


def mailbox_uid(acc: int, mbox: int, uid: int) -> bytes:
    return MAILBOX_UID + _U32U32U32.pack(acc, mbox, uid)


def mailbox_uid_prefix(acc: int, mbox: int) -> bytes:
    return MAILBOX_UID + _U32U32.pack(acc, mbox)


def uid_from_key(key: bytes) -> int:
    return _U32.unpack_from(key, 9)[0]


def email(acc: int, eid: int) -> bytes:
    return EMAIL + _U32U32.pack(acc, eid)


def email_id_from_key(key: bytes) -> int:
    return _U32.unpack_from(key, 5)[0]


def thread_idx(acc: int, message_id: str) -> bytes:
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).digest()[:16]
    return THREAD_IDX + _U32.pack(acc) + digest


def changelog(acc: int, change: int) -> bytes:
    return CHANGELOG + _U32U64.pack(acc, change)


def change_from_key(key: bytes) -> int:
    return _U64.unpack_from(key, 5)[0]


def vanished(acc: int, mbox: int, modseq: int, uid: int) -> bytes:
    return VANISHED + _U32U32U64U32.pack(acc, mbox, modseq, uid)


def vanished_prefix(acc: int, mbox: int) -> bytes:
    return VANISHED + _U32U32.pack(acc, mbox)


def vanished_parse(key: bytes) -> tuple[int, int]:
    """Return (modseq, uid) of a VANISHED key."""
    _, _, modseq, uid = _U32U32U64U32.unpack_from(key, 1)
    return modseq, uid


def blob_ref(blob_hash: bytes) -> bytes:
    return BLOB_REF + blob_hash


_U64U64 = struct.Struct(">QQ")


def queue(qid: int) -> bytes:
    return QUEUE + _U64.pack(qid)


def queue_id_from_key(key: bytes) -> int:
    return _U64.unpack_from(key, 1)[0]


def queue_due(due_ms: int, qid: int) -> bytes:
    return QUEUE_DUE + _U64U64.pack(due_ms, qid)


def queue_due_parse(key: bytes) -> tuple[int, int]:
    """(due in ms, queue id) of a QUEUE_DUE key."""
    return _U64U64.unpack_from(key, 1)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = bytearray(prefix)
    while p:
        if p[-1] != 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


def acl_idx(grantee: int, owner: int, mbox: int) -> bytes:
    return ACL_IDX + _U32U32U32.pack(grantee, owner, mbox)


def acl_idx_prefix(grantee: int) -> bytes:
    return ACL_IDX + _U32.pack(grantee)


def acl_idx_parse(key: bytes) -> tuple[int, int]:
    """(owner, mailbox) of an ACL_IDX key."""
    _, owner, mbox = _U32U32U32.unpack_from(key, 1)
    return owner, mbox
