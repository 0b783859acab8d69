"""GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208) over the account's quota.

One quota root per account, named "" (the empty string), holding every mailbox. Its
only resource is STORAGE, in units of 1024 octets (RFC 9208 5.1), from the account's
``quota`` (0 means unlimited) and ``used`` counters kept by the store.

- GETQUOTAROOT answers ``* QUOTAROOT mailbox ""`` and the ``* QUOTA`` of that root; when
  the account has no limit the mailbox has no quota root (``* QUOTAROOT mailbox``).
- GETQUOTA of an unknown root, or of "" without a limit, is NO [NONEXISTENT].
- SETQUOTA is NO [NOPERM]: limits are set by administrators (REST API / CLI).
"""

from __future__ import annotations

from .. import encode
from ..mailboxes import MailboxTree
from ..session import No

ROOT = ""


def _quota_line(account: dict) -> str:
    used = -(-(account.get("used") or 0) // 1024)   # rounded up: 1 octet uses 1 unit
    limit = (account.get("quota") or 0) // 1024
    return f'QUOTA "" (STORAGE {used} {limit})'


def _account(s) -> dict:
    account = s.store.get_account(s.account["id"])
    if account is None:
        raise No("The account no longer exists", "UNAVAILABLE")
    return account


async def getquotaroot(s, cmd):
    tree = MailboxTree(s.store.list_mailboxes(s.account["id"]))
    record = tree.find(cmd.args.name)
    if record is None:
        raise No("Mailbox does not exist", "NONEXISTENT")
    account = _account(s)
    name = s.mailbox_name(tree.path[record["id"]])
    if not account.get("quota"):
        s.untagged(b"QUOTAROOT " + name)
        return "GETQUOTAROOT completed"
    s.untagged(b"QUOTAROOT " + name + b" " + encode.string(ROOT))
    s.untagged(_quota_line(account))
    return "GETQUOTAROOT completed"


async def getquota(s, cmd):
    account = _account(s)
    if cmd.args.root != ROOT or not account.get("quota"):
        raise No("No such quota root", "NONEXISTENT")
    s.untagged(_quota_line(account))
    return "GETQUOTA completed"


async def setquota(s, cmd):
    raise No("Quota limits are set by the administrator", "NOPERM")
