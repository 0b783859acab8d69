"""GETMETADATA and SETMETADATA (RFC 5464): annotations on the server and on mailboxes.

    GETMETADATA [(MAXSIZE n DEPTH 0|1|infinity)] mailbox (entry ...)
    SETMETADATA mailbox (entry value ...)          value NIL removes the entry

- The mailbox ``""`` names the server. Entries are ``/private/...`` (the logged-in user's
  own) or ``/shared/...`` (everyone's); they are stored durably in the store
  (``stalwart/store/ops/metadata.py``, which also holds the name rules and limits).
- GETMETADATA answers one ``* METADATA mailbox (entry value ...)`` with the entries that
  exist, a requested entry that does not exist as ``NIL``; DEPTH 1 / infinity add the
  entries below each one named; values longer than MAXSIZE are left out and the tagged OK
  says ``[METADATA LONGENTRIES n]`` with the largest size left out (RFC 5464 4.2.1).
- SETMETADATA is all or nothing: a value over ``MAX_VALUE`` is ``NO [METADATA MAXSIZE
  n]``, more than ``MAX_ENTRIES`` entries ``NO [METADATA TOOMANY]``, an invalid entry name
  BAD (RFC 5464 4.3). Server ``/shared`` entries are the administrator's (set through the
  store API): ``NO [NOPERM]`` over IMAP.
- Rights on another account's mailbox (RFC 5464 6, RFC 4314): reading /private needs
  "l", /shared "r"; writing /private needs "l", /shared "w".
- ``/private/specialuse`` of a mailbox (RFC 6154 4) is its special use, the same role
  LIST shows: read from the mailbox, and set (one attribute, or NIL / "" to clear) in the
  same store commit as the other entries; an unknown attribute, more than one, one
  another mailbox has, or a change on someone else's mailbox or the inbox is
  ``NO [USEATTR]``.
"""

from __future__ import annotations

from ....store import StoreError
from ....store.ops.metadata import MAX_ENTRIES, MAX_VALUE, check_entry
from ..mailboxes import ATTR_ROLES, ROLE_ATTRS
from ..session import Bad, No
from . import acl

SPECIALUSE = "/private/specialuse"


def _entry(name: str, *, allow_root: bool) -> str:
    try:
        return check_entry(name, allow_root=allow_root)
    except StoreError as exc:
        raise Bad(exc.message) from None


def _value(data: bytes) -> bytes:
    if len(data) <= 1024 and all(0x20 <= c < 0x7F for c in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    if b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data


def _target(s, name: str, rights: str) -> tuple[int, int, bytes, dict | None]:
    """(owner, mailbox id, encoded name, mailbox record) of the mailbox ``name``;
    (0, 0, b'""', None) for the server."""
    if name == "":
        return 0, 0, b'""', None
    target = acl.require(s, name, rights)
    return target.owner, target.record["id"], s.mailbox_name(target.path), target.record


def _role_of(s, owner: int, record: dict, value: bytes | None) -> str | None:
    """The role a /private/specialuse value asks for (None: no special use)."""
    if owner != s.account["id"] or record.get("role") == "inbox":
        raise No("The special use of this mailbox cannot be changed", "USEATTR")
    attrs = (value or b"").decode("ascii", "replace").split()
    if len(attrs) > 1:
        raise No("Only one special-use attribute per mailbox", "USEATTR")
    if not attrs:
        return None
    role = ATTR_ROLES.get(attrs[0].upper())
    if role is None:
        raise No(f"Unsupported special-use attribute {attrs[0][:40]}", "USEATTR")
    return role


async def getmetadata(s, cmd):
    args = cmd.args
    entries = [_entry(e, allow_root=args.depth != 0) for e in args.entries]
    rights = ("l" if any(e.startswith("/private") for e in entries) else "") + \
        ("r" if any(e.startswith("/shared") for e in entries) else "")
    owner, mailbox, encoded, record = _target(s, args.name, rights)
    found = dict(s.store.get_metadata(owner, mailbox, entries, user=s.account["id"],
                                      depth=args.depth))
    special = ROLE_ATTRS.get((record or {}).get("role") or "")
    if special and (SPECIALUSE in entries or (args.depth != 0 and "/private" in entries)):
        found[SPECIALUSE] = special.encode()
    for name in entries:
        if name not in ("/private", "/shared"):
            found.setdefault(name, None)
    items: list[bytes] = []
    longest = 0
    for name, value in sorted(found.items()):
        if value is None:
            items.append(name.encode() + b" NIL")
        elif args.maxsize is not None and len(value) > args.maxsize:
            longest = max(longest, len(value))
        else:
            items.append(name.encode() + b" " + _value(value))
    if items:
        s.untagged(b"METADATA " + encoded + b" (" + b" ".join(items) + b")")
    if longest:
        return "GETMETADATA completed", f"METADATA LONGENTRIES {longest}"
    return "GETMETADATA completed"


async def setmetadata(s, cmd):
    args = cmd.args
    pairs = [(_entry(name, allow_root=False), value) for name, value in args.entries]
    for name, value in pairs:
        if value is not None and len(value) > MAX_VALUE:
            raise No(f"The value of {name} is over {MAX_VALUE} octets",
                     f"METADATA MAXSIZE {MAX_VALUE}")
    if args.name == "" and any(name.startswith("/shared") for name, _ in pairs):
        raise No("Server /shared entries are set by the administrator", "NOPERM")
    rights = ("l" if any(n.startswith("/private") for n, _ in pairs) else "") + \
        ("w" if any(n.startswith("/shared") for n, _ in pairs) else "")
    owner, mailbox, _, record = _target(s, args.name, rights)
    role: object = "unchanged"
    if record is not None and any(name == SPECIALUSE for name, _ in pairs):
        role = _role_of(s, owner, record, dict(pairs)[SPECIALUSE])
        pairs = [(name, value) for name, value in pairs if name != SPECIALUSE]
    try:
        await s.store.set_metadata(owner, mailbox, pairs, user=s.account["id"], role=role)
    except StoreError as exc:
        if exc.code == "over_quota":
            raise No(f"Too many entries (at most {MAX_ENTRIES} per mailbox and user)",
                     "METADATA TOOMANY") from None
        if exc.code == "exists" and role != "unchanged":
            raise No("Another mailbox already has that special use", "USEATTR") from None
        raise
    return "SETMETADATA completed"
