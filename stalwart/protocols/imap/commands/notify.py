"""NOTIFY (RFC 5465): the client names mailboxes and events; the server then reports them
as they happen, without IDLE and between commands.

    NOTIFY SET [STATUS] (filter events) ...      NOTIFY NONE

How it works here. The store publishes one change event per commit and account; the
session marks itself dirty and, with NOTIFY on, asks the adapter to run ``poll`` even when
no command is in progress (``ImapSession.idle_poll``). ``poll`` then:

- **the selected mailbox** (filters SELECTED, SELECTED-DELAYED): the view's usual updates
  (selected.py) sent at once: EXISTS (followed by ``FETCH`` of the attributes MessageNew
  asked for, as PEEK: a notification never sets \\Seen), FETCH FLAGS, and EXPUNGE or
  VANISHED at once for SELECTED, held until a command that allows them for
  SELECTED-DELAYED (RFC 5465 5.1). Without either filter the selected mailbox gets only
  the base protocol's updates (at command end and in IDLE).
- **other mailboxes** (PERSONAL, INBOXES, SUBSCRIBED, SUBTREE, MAILBOXES): their store
  records are compared with the snapshot taken at the last poll (one ``list_mailboxes``
  read per poll): a changed message count or UIDNEXT is MessageNew/MessageExpunge and is
  reported as ``STATUS (MESSAGES UIDNEXT UNSEEN [HIGHESTMODSEQ])``; a flag-only change is
  FlagChange, ``STATUS (UNSEEN [HIGHESTMODSEQ])`` (RFC 5465 5.2-5.4). A created, deleted
  or renamed mailbox is MailboxName: ``LIST``, ``LIST (\\NonExistent)``, or ``LIST ...
  ("OLDNAME" (old))`` (RFC 5465 5.4, RFC 5258); a subscription change is
  SubscriptionChange: ``LIST`` with or without ``\\Subscribed``. MailboxMetadataChange
  compares digests of the entries the user sees (taken at NOTIFY SET and at each poll) and
  sends the names that changed: ``* METADATA mailbox entry ...`` (RFC 5464 4.4.2). The
  first event group whose filter matches a mailbox decides its events (RFC 5465 6).
- **server entries** (ServerMetadataChange, in any group): the same for ``* METADATA ""``;
  the user's own /private server entries announce themselves, the administrator's /shared
  ones are seen at the next poll.

Refused: MessageNew without MessageExpunge or the reverse, FlagChange without both (BAD,
RFC 5465 5); mailbox events in a SELECTED group (BAD); AnnotationChange (ANNOTATE,
RFC 5257, is not implemented) and unknown events are ``NO [BADEVENT (supported)]``
(RFC 5465 3.1). ``SET STATUS`` sends STATUS at once for each
non-selected mailbox whose group has message events.
"""

from __future__ import annotations

import hashlib

from ..mailboxes import ROLE_ATTRS, SEP, MailboxTree
from ..session import Bad, No

MESSAGE_EVENTS = {"MESSAGENEW": "MessageNew", "MESSAGEEXPUNGE": "MessageExpunge",
                  "FLAGCHANGE": "FlagChange"}
MAILBOX_EVENTS = {"MAILBOXNAME": "MailboxName", "SUBSCRIPTIONCHANGE": "SubscriptionChange",
                  "MAILBOXMETADATACHANGE": "MailboxMetadataChange",
                  "SERVERMETADATACHANGE": "ServerMetadataChange"}
SUPPORTED = {**MESSAGE_EVENTS, **MAILBOX_EVENTS}
SELECTED_FILTERS = ("SELECTED", "SELECTED-DELAYED")


class NotifyState:
    """One session's NOTIFY SET: its groups and the snapshot of the account's mailboxes."""

    def __init__(self, groups) -> None:
        self.groups = groups
        self.selected = next((g for g in groups if g.filter in SELECTED_FILTERS), None)
        self.others = [g for g in groups if g.filter not in SELECTED_FILTERS]
        #: The selected mailbox's changes are pushed between commands (not only in IDLE).
        self.push_selected = self.selected is not None and "NONE" not in self.selected.events
        self.snapshot: dict[int, dict] = {}
        #: METADATA entry digests per watched mailbox id (0: the server's entries).
        self.metadata: dict[int, dict[str, bytes]] = {}
        self.server_metadata = any("SERVERMETADATACHANGE" in g.events for g in groups)

    # -------------------------------------------------------------- which mailboxes
    def group_for(self, tree: MailboxTree, record: dict):
        """The first non-selected group whose filter covers ``record``, else None."""
        mid = record["id"]
        path = tree.path.get(mid, "")
        for group in self.others:
            f = group.filter
            if f == "PERSONAL":
                return group
            if f == "INBOXES" and (record.get("role") == "inbox" or path == "INBOX"):
                return group
            if f == "SUBSCRIBED" and record.get("subscribed"):
                return group
            if f == "MAILBOXES" and path in group.mailboxes:
                return group
            if f == "SUBTREE" and any(path == n or path.startswith(n + SEP)
                                      for n in group.mailboxes):
                return group
        return None

    @staticmethod
    def entry(tree: MailboxTree, record: dict) -> dict:
        return {"path": tree.path.get(record["id"], record["name"]),
                "total": record["total"], "uidnext": record["uidnext"],
                "unseen": record["unseen"], "hms": record["hms"],
                "subscribed": bool(record.get("subscribed")), "record": record}

    def take_snapshot(self, tree: MailboxTree) -> None:
        self.snapshot = {mid: self.entry(tree, r) for mid, r in tree.by_id.items()}


def _metadata_digest(s, owner: int, mailbox: int) -> dict[str, bytes]:
    """{entry: digest of its value} of what this user sees on a mailbox (0: server)."""
    entries = s.store.get_metadata(owner, mailbox, ["/private", "/shared"],
                                   user=s.account["id"], depth=None)
    return {name: hashlib.blake2b(value, digest_size=8).digest() for name, value in entries}


def _metadata_line(s, encoded: bytes, before: dict, after: dict) -> bytes | None:
    """RFC 5464 4.4.2 unsolicited METADATA: the names of the entries that changed."""
    changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    if not changed:
        return None
    return b"* METADATA " + encoded + b" " + " ".join(changed).encode() + b"\r\n"


def _list_line(s, tree: MailboxTree | None, entry: dict, *, gone: bool = False,
               old: str | None = None) -> bytes:
    record = entry["record"]
    if gone:
        attrs = ["\\NonExistent"]
    else:
        attrs = ["\\HasChildren" if tree.has_children(record["id"]) else "\\HasNoChildren"]
        if entry["subscribed"]:
            attrs.append("\\Subscribed")
        role = ROLE_ATTRS.get(record.get("role") or "")
        if role:
            attrs.append(role)
    line = f'* LIST ({" ".join(attrs)}) "{SEP}" '.encode() + s.mailbox_name(entry["path"])
    if old is not None:
        line += b' ("OLDNAME" (' + s.mailbox_name(old) + b"))"
    return line + b"\r\n"


def _status_line(s, entry: dict, items: list[str]) -> bytes:
    values = {"MESSAGES": entry["total"], "UIDNEXT": entry["uidnext"],
              "UNSEEN": entry["unseen"], "HIGHESTMODSEQ": entry["hms"],
              "UIDVALIDITY": entry["record"]["uidvalidity"]}
    if s.condstore and "HIGHESTMODSEQ" not in items:
        items = items + ["HIGHESTMODSEQ"]
    body = " ".join(f"{item} {values[item]}" for item in items)
    return b"* STATUS " + s.mailbox_name(entry["path"]) + b" (" + body.encode() + b")\r\n"


def _selected_id(s) -> int | None:
    view = s.selected
    if view is None or view.account != s.account["id"]:
        return None
    return view.id


def poll(s) -> list[bytes]:
    """Everything to report now (see the module docstring)."""
    state: NotifyState = s.notify
    out: list[bytes] = []
    s.store.refresh()
    if s.selected is not None and state.push_selected:
        out += _selected_updates(s, state.selected)
    if not state.others and not state.server_metadata:
        return out
    tree = MailboxTree(s.store.list_mailboxes(s.account["id"]))
    selected = _selected_id(s)
    now = {mid: state.entry(tree, r) for mid, r in tree.by_id.items()}
    old_tree_paths = {mid: e["path"] for mid, e in state.snapshot.items()}
    for mid, entry in now.items():
        if mid == selected:
            continue
        group = state.group_for(tree, entry["record"])
        before = state.snapshot.get(mid)
        if group is None and before is not None:
            # Renamed out of a watched subtree: judge by where it was.
            old_tree = _PathOnly(old_tree_paths)
            group = state.group_for(old_tree, before["record"])
        if group is None:
            continue
        events = set(group.events)   # {"NONE"}: this group mutes its mailboxes
        if before is None:
            if "MAILBOXNAME" in events:
                out.append(_list_line(s, tree, entry))
            continue
        if entry["path"] != before["path"] and "MAILBOXNAME" in events:
            out.append(_list_line(s, tree, entry, old=before["path"]))
        if entry["subscribed"] != before["subscribed"] and "SUBSCRIPTIONCHANGE" in events:
            out.append(_list_line(s, tree, entry))
        if "MAILBOXMETADATACHANGE" in events:
            digest = _metadata_digest(s, s.account["id"], mid)
            line = _metadata_line(s, s.mailbox_name(entry["path"]),
                                  state.metadata.get(mid, {}), digest)
            state.metadata[mid] = digest
            if line is not None:
                out.append(line)
        counts = (entry["total"], entry["uidnext"]) != (before["total"], before["uidnext"])
        if counts and events & {"MESSAGENEW", "MESSAGEEXPUNGE"}:
            out.append(_status_line(s, entry, ["MESSAGES", "UIDNEXT", "UNSEEN"]))
        elif not counts and (entry["unseen"], entry["hms"]) != (before["unseen"], before["hms"]) \
                and "FLAGCHANGE" in events:
            out.append(_status_line(s, entry, ["UNSEEN"]))
    for mid, before in state.snapshot.items():
        if mid in now or mid == selected:
            continue
        group = state.group_for(_PathOnly(old_tree_paths), before["record"])
        if group is not None and "MAILBOXNAME" in group.events:
            out.append(_list_line(s, None, before, gone=True))
    state.snapshot = now
    if state.server_metadata:
        digest = _metadata_digest(s, 0, 0)
        line = _metadata_line(s, b'""', state.metadata.get(0, {}), digest)
        state.metadata[0] = digest
        if line is not None:
            out.append(line)
    return out


class _PathOnly:
    """The part of MailboxTree that ``group_for`` needs, from a snapshot's paths."""

    def __init__(self, paths: dict[int, str]) -> None:
        self.path = paths


def _selected_updates(s, group) -> list[bytes]:
    """The selected mailbox's changes, at once (SELECTED) or expunges held back
    (SELECTED-DELAYED), then FETCH of MessageNew's attributes for new messages."""
    from .fetch import _item

    view = s.selected
    before = set(view.uids)
    out = s.sync_updates(allow_expunge=group.filter == "SELECTED" or bool(s.idling))
    if group.fetch and "MESSAGENEW" in group.events:
        for uid in view.uids:
            if uid in before:
                continue
            email = s.store.get_email(view.account, view.eids[uid])
            if email is None:
                continue
            items = [_item(s, item, uid, view.eids[uid], email) for item in group.fetch]
            out.append(b"* %d FETCH (%s)\r\n" % (view.seq_of(uid), b" ".join(items)))
    return out


def _check(groups) -> None:
    for group in groups:
        events = set(group.events)
        if events == {"NONE"}:
            continue
        unknown = sorted(events - set(SUPPORTED))
        if unknown:
            raise No(f"Unsupported event {unknown[0][:40]}",
                     "BADEVENT (" + " ".join(SUPPORTED.values()) + ")")
        if ("MESSAGENEW" in events) != ("MESSAGEEXPUNGE" in events):
            raise Bad("MessageNew and MessageExpunge go together (RFC 5465 5)", "CLIENTBUG")
        if "FLAGCHANGE" in events and "MESSAGENEW" not in events:
            raise Bad("FlagChange needs MessageNew and MessageExpunge (RFC 5465 5)",
                      "CLIENTBUG")
        if group.filter in SELECTED_FILTERS and events & set(MAILBOX_EVENTS):
            raise Bad("Only message events apply to the selected mailbox (RFC 5465 6)",
                      "CLIENTBUG")
        if group.fetch and group.filter not in SELECTED_FILTERS:
            raise Bad("MessageNew fetch attributes apply to the selected mailbox only",
                      "CLIENTBUG")
    if sum(g.filter in SELECTED_FILTERS for g in groups) > 1:
        raise Bad("SELECTED or SELECTED-DELAYED at most once", "CLIENTBUG")


async def run(s, cmd):
    args = cmd.args
    if args.groups is None:
        s.notify = None
        return "NOTIFY completed"
    _check(args.groups)
    state = NotifyState(args.groups)
    s.store.refresh()
    tree = MailboxTree(s.store.list_mailboxes(s.account["id"]))
    state.take_snapshot(tree)
    for mid, entry in state.snapshot.items():
        group = state.group_for(tree, entry["record"])
        if group is not None and "MAILBOXMETADATACHANGE" in group.events:
            state.metadata[mid] = _metadata_digest(s, s.account["id"], mid)
    if state.server_metadata:
        state.metadata[0] = _metadata_digest(s, 0, 0)
    s.notify = state
    if args.status:
        selected = _selected_id(s)
        for mid, entry in sorted(state.snapshot.items(), key=lambda kv: kv[1]["path"]):
            group = state.group_for(tree, entry["record"])
            if mid != selected and group is not None and "MESSAGENEW" in group.events:
                s.write(_status_line(s, entry, ["MESSAGES", "UIDNEXT", "UNSEEN"]))
    return "NOTIFY completed"

