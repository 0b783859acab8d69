"""Settings of the storage layer: where data lives and which backend each role uses."""

from __future__ import annotations

from ..registry import declare, section
from ..types import Enum, String

section("storage", """
Which store backs each role. `storage.*` names either a store declared as
`[store.<id>]`, or directly a backend (`"rocksdb"`, `"memory"`): a bare `"rocksdb"` means
a RocksDB database at `<storage.directory>/data` with blob files in
`<storage.directory>/blobs`. The lookup and full-text roles currently share the data
store.
""")

section("store", """
Store definitions referenced by `storage.*`.
""")

#: Backends a store may use.
STORE_TYPES = ("rocksdb", "memory")

declare("storage.directory", String(), """
    Base directory of the server's state: the default RocksDB database (`data/`), blob
    files (`blobs/`), runtime sockets and the pid file (`run/`), and generated secrets
    (`etc/`). A relative path is taken relative to the directory of the config file.""",
    section="storage", default="/var/lib/stalwart",
    default_doc='"/var/lib/stalwart" (the embedded default uses `./var`)')

for _role, _what in (("data", "accounts, mailboxes, message metadata and change logs"),
                     ("blob", "raw messages, attachments and Sieve scripts"),
                     ("lookup", "rate limits, greylisting and other lookups"),
                     ("fts", "the full-text search index")):
    declare(f"storage.{_role}", String(), f"""
        Store holding {_what}: the id of a `[store.<id>]`, or a backend name.""",
        section="storage", default="rocksdb")

declare("store.<id>.type", Enum(STORE_TYPES), """
    Backend: `rocksdb` (durable, one machine) or `memory` (lost on restart; tests and
    trials only).""",
    section="store", required=True)

declare("store.<id>.path", String(), """
    Directory of the RocksDB database (required for `rocksdb`). A relative path is taken
    relative to `storage.directory`.""",
    section="store")

declare("store.<id>.blob-path", String(), """
    Directory of the blob files when this store backs `storage.blob`. Relative paths
    are taken relative to `storage.directory`.""",
    section="store", default_doc="`blobs` next to the database directory (`<path>/../blobs`)")
