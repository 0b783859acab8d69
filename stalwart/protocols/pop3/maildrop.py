"""The POP3 maildrop: a numbered snapshot of the account's INBOX taken at login.

RFC 1939 numbers the messages 1..n for the whole session; a message marked deleted keeps
its number (and is refused by every command) until QUIT, when the UPDATE state removes
the marked messages. The snapshot is therefore taken once, after authentication, and the
store is only read again for message content.

Unique ids (UIDL, RFC 1939 7)
------------------------------
The id of a message is ``"<UIDVALIDITY>.<email id>"`` in decimal, for example
``"1718000000.42"``:

- the email id is allocated by the store and never reused within the account, so two
  different messages never share an id, and a message keeps its id across sessions (also
  when an IMAP client moves it out of the INBOX and back: same message, same id);
- the INBOX's UIDVALIDITY changes if the mailbox is ever recreated; prefixing it makes
  every id new then, which is what a client that "leaves mail on the server" must see;
- both are 32-bit numbers, so an id is at most 21 characters, all in 0x30-0x39 and ".",
  within RFC 1939's 1..70 characters of 0x21-0x7E.

Concurrency: POP3 does not lock the maildrop (no IN-USE). Messages that another session
(IMAP, JMAP, another POP3 client) expunges after the snapshot was taken are answered with
``-ERR`` when retrieved, and skipped silently at QUIT: deletion is by IMAP UID, which the
store ignores when it is no longer in the mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["MaildropMessage", "Maildrop", "uidl", "load_maildrop", "message_source"]

#: Raw message content is read and streamed in pieces of this size.
CHUNK_SIZE = 64 * 1024


def uidl(uidvalidity: int, email_id: int) -> str:
    """The stable unique id of a message (see the module docstring)."""
    return f"{uidvalidity}.{email_id}"


@dataclass(slots=True)
class MaildropMessage:
    number: int              # 1-based message number for this session
    uid: int                 # IMAP UID in the INBOX (what QUIT expunges)
    email_id: int            # store email id
    size: int                # octets of the stored message
    uid_string: str          # UIDL value
    deleted: bool = False


@dataclass
class Maildrop:
    account: int
    mailbox: int | None                     # None: the account has no INBOX
    uidvalidity: int = 0
    messages: list[MaildropMessage] = field(default_factory=list)

    def get(self, number: int) -> MaildropMessage | None:
        """Message ``number`` (1-based), deleted or not; None when out of range."""
        if 1 <= number <= len(self.messages):
            return self.messages[number - 1]
        return None

    def live(self) -> Iterator[MaildropMessage]:
        return (m for m in self.messages if not m.deleted)

    def stat(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted (RFC 1939 5 STAT)."""
        count = octets = 0
        for m in self.live():
            count += 1
            octets += m.size
        return count, octets

    def deleted_uids(self) -> list[int]:
        return [m.uid for m in self.messages if m.deleted]

    def reset(self) -> int:
        """Unmark every deleted message (RSET); returns how many were unmarked."""
        count = 0
        for m in self.messages:
            if m.deleted:
                m.deleted = False
                count += 1
        return count


def load_maildrop(store: Any, account: int) -> Maildrop:
    """Snapshot the INBOX of ``account`` through the store's read API.

    Messages whose record disappears between the listing and the size lookup (expunged
    meanwhile) are left out."""
    inbox = store.find_mailbox(account, "INBOX")
    if inbox is None:
        return Maildrop(account, None)
    mailbox = int(inbox["id"])
    uidvalidity = int(inbox.get("uidvalidity", 0))
    drop = Maildrop(account, mailbox, uidvalidity)
    for uid, email_id in store.mailbox_uids(account, mailbox):
        email = store.get_email(account, email_id)
        if email is None:
            continue
        drop.messages.append(MaildropMessage(len(drop.messages) + 1, uid, email_id,
                                             int(email["size"]), uidl(uidvalidity, email_id)))
    return drop


class _FileChunks:
    """Iterates a blob file in ``CHUNK_SIZE`` pieces; ``close()`` releases the file."""

    def __init__(self, path: Any) -> None:
        self._file = open(path, "rb")

    def __iter__(self) -> "_FileChunks":
        return self

    def __next__(self) -> bytes:
        if self._file.closed:
            raise StopIteration
        chunk = self._file.read(CHUNK_SIZE)
        if not chunk:
            self._file.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._file.close()


def _memory_chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        yield bytes(view[start:start + CHUNK_SIZE])


def message_source(store: Any, account: int, email_id: int) -> Any:
    """The raw message as an iterable of chunks, or None if it no longer exists.

    A file-backed blob store is read from the file in pieces (the message is never held
    whole in memory); an in-memory one is sliced. Opening happens here, so a blob that
    vanished is reported now, before the +OK is sent."""
    email = store.get_email(account, email_id)
    if email is None:
        return None
    blobs = store.blobs
    path_of = getattr(blobs, "path", None)
    try:
        if path_of is not None:
            return _FileChunks(path_of(email["blob"]))
        return _memory_chunks(blobs.get(email["blob"]))
    except FileNotFoundError:
        return None
