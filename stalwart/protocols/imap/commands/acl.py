"""ACL (RFC 4314): SETACL, DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS, and the "Other Users"
namespace through which an account reaches the mailboxes others share with it.

Names. The personal namespace is "" (separator "/"). Mailboxes of other accounts are
``Other Users/<owner's account name>/<the owner's own path>`` (Dovecot's layout), e.g.
``Other Users/bob/INBOX``; NAMESPACE announces the prefix ``Other Users/`` as the "other
users" namespace (RFC 2342). ``Other Users`` and ``Other Users/<owner>`` are \\Noselect
levels of the hierarchy. ``resolve`` turns any client-given name into a ``Target``:
the owning account, the mailbox record, its path as the client spells it, and the rights
of the logged-in account on it.

Rights (RFC 4314 2.1; the store's ``ops/acl.py`` owns them and enforces every write):
the owner has all of "lrswipkxtea". LIST shows another account's mailbox with "l"; a
mailbox on which the account has no right at all does not exist for it (NONEXISTENT, no
information leaks); SELECT/EXAMINE/STATUS need "r". A mailbox selected without any of
"s", "w", "t", "e" is READ-ONLY.

Identifiers are account names (or any of the account's addresses) and ``anyone``;
negative rights ("-bob") are not supported (NO [CANNOT]). SETACL rights are sent as
``[+|-]rights``; ``c`` and ``d`` (RFC 2086) are accepted and mapped ("c" -> "k", "d" ->
"xte"). The capability is ``ACL`` with ``RIGHTS=texk`` (RFC 4314 2.1).

Responses (RFC 4314 3.6-3.9)::

    * ACL <mailbox> <identifier> <rights> ...        (GETACL: the owner first, all rights)
    * LISTRIGHTS <mailbox> <identifier> <required> <optional> ...
    * MYRIGHTS <mailbox> <rights>

Managing the ACL (SETACL, DELETEACL, GETACL, LISTRIGHTS) needs "a"; MYRIGHTS needs any
right. A failure is NO [NOPERM] (missing right) or NO [NONEXISTENT].
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import encode
from ..mailboxes import SEP, MailboxTree, normalize
from ..session import Bad, No

OTHER_USERS = "Other Users"
OTHER_PREFIX = OTHER_USERS + SEP
ANYONE = "anyone"
RIGHTS_ORDER = "lrswipkxtea"
#: LISTRIGHTS for a non-owner: nothing required, each right on its own (RFC 4314 3.7),
#: the obsolete "c" and "d" too, as Dovecot lists them.
OPTIONAL_RIGHTS = " ".join(RIGHTS_ORDER) + " c d"


@dataclass
class Target:
    owner: int          # account owning the mailbox
    record: dict        # the mailbox record (store.list_mailboxes form, with "id")
    path: str           # the name as the client sees it ("INBOX", "Other Users/bob/INBOX")
    rights: str         # the logged-in account's rights, in RFC 4314 order
    tree: MailboxTree   # the owner's mailbox tree

    @property
    def shared(self) -> bool:
        return self.path.startswith(OTHER_PREFIX)

    def may(self, rights: str) -> bool:
        return all(r in self.rights for r in rights)


def ordered(rights: str) -> str:
    return "".join(r for r in RIGHTS_ORDER if r in rights)


def split_shared(name: str) -> tuple[str, str] | None:
    """(owner name, owner's path) of an "Other Users/<owner>/<path>" name, else None."""
    if not name.startswith(OTHER_PREFIX):
        return None
    owner, sep, rest = name[len(OTHER_PREFIX):].partition(SEP)
    if not owner or not sep or not rest:
        return None
    return owner, rest


def resolve(s, name: str) -> Target | None:
    """The mailbox ``name`` names for this session, if it exists and may be seen."""
    me = s.account["id"]
    shared = split_shared(name)
    if shared is None:
        tree = MailboxTree(s.store.list_mailboxes(me))
        record = tree.find(name)
        if record is None:
            return None
        return Target(me, record, tree.path[record["id"]], RIGHTS_ORDER, tree)
    owner_name, rest = shared
    account = s.store.get_account(owner_name)
    if account is None or account["id"] == me:
        return None
    tree = MailboxTree(s.store.list_mailboxes(account["id"]))
    record = tree.find(rest)
    if record is None:
        return None
    rights = ordered(s.store.rights(me, account["id"], record))
    if not rights:   # no right at all: the mailbox does not exist for this account
        return None
    return Target(account["id"], record, f"{OTHER_PREFIX}{account['name']}{SEP}"
                  f"{tree.path[record['id']]}", rights, tree)


def require(s, name: str, rights: str, *, missing: str = "NONEXISTENT") -> Target:
    """``resolve`` or NO; NO [NOPERM] when one of ``rights`` is missing."""
    target = resolve(s, name)
    if target is None:
        raise No("Mailbox does not exist", missing)
    if not target.may(rights):
        raise No(f"Permission denied (this needs the {rights!r} rights)", "NOPERM")
    return target


def shared_mailboxes(s) -> list[tuple[str, Target]]:
    """Every mailbox of another account this session may see ("l"), with its path, plus
    nothing else; the \\Noselect levels above them are the caller's to add."""
    me = s.account["id"]
    out: list[tuple[str, Target]] = []
    trees: dict[int, tuple[str, MailboxTree]] = {}
    for owner, record, rights in s.store.shared_with(me):
        if "l" not in rights:
            continue
        if owner not in trees:
            account = s.store.get_account(owner)
            if account is None:
                continue
            trees[owner] = (account["name"], MailboxTree(s.store.list_mailboxes(owner)))
        owner_name, tree = trees[owner]
        path = f"{OTHER_PREFIX}{owner_name}{SEP}{tree.path[record['id']]}"
        out.append((path, Target(owner, tree.by_id.get(record["id"], record), path,
                                 ordered(rights), tree)))
    return sorted(out, key=lambda item: item[0])


def _identifier(s, ident: str) -> tuple[int, str]:
    """(grantee account id, 0 for anyone; the identifier as it will be shown)."""
    if ident.lower() == ANYONE:
        return 0, ANYONE
    if ident.startswith("-"):
        raise No("Negative rights are not supported", "CANNOT")
    account = s.store.get_account(ident)
    if account is None:
        raise No(f"No such identifier {ident[:64]}", "NONEXISTENT")
    return account["id"], account["name"]


def _acl_entries(s, target: Target) -> list[tuple[str, str]]:
    owner = s.store.get_account(target.owner)
    entries = [(owner["name"] if owner else str(target.owner), RIGHTS_ORDER)]
    for who, rights in sorted((target.record.get("acl") or {}).items()):
        if int(who) == 0:
            entries.append((ANYONE, ordered(rights)))
            continue
        account = s.store.get_account(int(who))
        if account is not None:
            entries.append((account["name"], ordered(rights)))
    return entries


def _astring(s, text: str) -> bytes:
    return encode.astring(text, s.utf8)


async def setacl(s, cmd):
    args = cmd.args
    target = require(s, args.name, "a")
    grantee, _ = _identifier(s, args.identifier)
    rights = args.rights or ""
    mode = "replace"
    if rights[:1] in ("+", "-"):
        mode = "add" if rights[0] == "+" else "remove"
        rights = rights[1:]
    if grantee == target.owner:
        raise No("The owner always has every right", "CANNOT")
    if any(ch not in RIGHTS_ORDER + "cd" for ch in rights):
        raise Bad(f"Invalid rights {rights[:40]!r} (RFC 4314: lrswipkxtea)")
    await s.store.set_acl(target.owner, target.record["id"], actor=s.account["id"],
                          grantee=grantee, rights=rights, mode=mode)
    return "SETACL completed"


async def deleteacl(s, cmd):
    args = cmd.args
    target = require(s, args.name, "a")
    grantee, _ = _identifier(s, args.identifier)
    if grantee == target.owner:
        raise No("The owner's rights cannot be removed", "CANNOT")
    await s.store.set_acl(target.owner, target.record["id"], actor=s.account["id"],
                          grantee=grantee, rights="", mode="replace")
    return "DELETEACL completed"


async def getacl(s, cmd):
    target = require(s, cmd.args.name, "a")
    line = b"ACL " + s.mailbox_name(target.path)
    for who, rights in _acl_entries(s, target):
        line += b" " + _astring(s, who) + b" " + rights.encode()
    s.untagged(line)
    return "GETACL completed"


async def listrights(s, cmd):
    args = cmd.args
    target = require(s, args.name, "a")
    grantee, shown = _identifier(s, args.identifier)
    line = b"LISTRIGHTS " + s.mailbox_name(target.path) + b" " + _astring(s, args.identifier)
    if grantee == target.owner:
        line += b" " + RIGHTS_ORDER.encode()
    else:
        line += b' "" ' + OPTIONAL_RIGHTS.encode()
    s.untagged(line)
    return "LISTRIGHTS completed"


async def myrights(s, cmd):
    target = resolve(s, cmd.args.name)
    if target is None:
        raise No("Mailbox does not exist", "NONEXISTENT")
    s.untagged(b"MYRIGHTS " + s.mailbox_name(target.path) + b" " + target.rights.encode())
    return "MYRIGHTS completed"


def is_other_users_level(name: str) -> bool:
    """"Other Users" or "Other Users/<owner>": \\Noselect levels, never mailboxes."""
    name = normalize(name)
    return name == OTHER_USERS or (name.startswith(OTHER_PREFIX) and
                                   SEP not in name[len(OTHER_PREFIX):])


def view_rights(view) -> str:
    """The session's rights on the selected mailbox (all of them on its own)."""
    return getattr(view, "rights", RIGHTS_ORDER)


def permanent_flags(flags: bytes, rights: str) -> bytes:
    """PERMANENTFLAGS for a shared mailbox: only the flags ``rights`` allow to change
    (\\Seen with "s", \\Deleted with "t", the others and new keywords (\\*) with "w")."""
    out = []
    for flag in flags.strip(b"()").split():
        need = "s" if flag == b"\\Seen" else "t" if flag == b"\\Deleted" else "w"
        if need in rights:
            out.append(flag)
    if "w" in rights:
        out.append(b"\\*")
    return b"(" + b" ".join(out) + b")"


def other_users_levels(paths: list[str]) -> list[str]:
    """The \\Noselect levels above shared mailbox ``paths``: "Other Users" and
    "Other Users/<owner>" for each owner."""
    owners = sorted({p[len(OTHER_PREFIX):].split(SEP, 1)[0] for p in paths})
    return ([OTHER_USERS] if owners else []) + [f"{OTHER_PREFIX}{o}" for o in owners]


def in_other_users(name: str) -> bool:
    """Whether ``name`` is in the "other users" namespace (or is its root)."""
    name = normalize(name)
    return name == OTHER_USERS or name.startswith(OTHER_PREFIX)


async def create_shared(s, name: str):
    """CREATE below another account's mailbox: "k" on the parent (RFC 4314 4); the new
    mailbox belongs to that account. Levels above an owner's mailboxes cannot be made."""
    name = normalize(name)
    shared = split_shared(name)
    if shared is None or SEP not in shared[1]:
        raise No("Mailboxes cannot be created at this level of Other Users", "NOPERM")
    owner_name, rest = shared
    parent_path, _, leaf = rest.rpartition(SEP)
    if not leaf or any(not c for c in rest.split(SEP)):
        raise No("Mailbox names cannot have empty components", "CANNOT")
    if resolve(s, name) is not None:
        raise No("Mailbox already exists", "ALREADYEXISTS")
    parent = require(s, f"{OTHER_PREFIX}{owner_name}{SEP}{parent_path}", "k",
                     missing="NONEXISTENT")
    await s.store.create_mailbox_as(s.account["id"], parent.owner, leaf,
                                    parent=parent.record["id"])
    return "CREATE completed"


async def delete_shared(s, name: str):
    """DELETE of another account's mailbox: "x" on it (RFC 4314 4)."""
    target = require(s, name, "x")
    if target.tree.has_children(target.record["id"]):
        raise No("Mailbox has children; delete them first", "HASCHILDREN")
    if target.record.get("role") == "inbox":
        raise No("INBOX cannot be deleted", "CANNOT")
    await s.store.delete_mailbox_as(s.account["id"], target.owner, target.record["id"])
    return "DELETE completed"
