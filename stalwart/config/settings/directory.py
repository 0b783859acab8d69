"""Settings of directories: where accounts and their credentials come from."""

from __future__ import annotations

from ..registry import declare, section
from ..types import Enum, List, Size, String

section("directory", """
Directories hold accounts, groups and their credentials. `internal` keeps them in the
data store (managed with the web admin, the API or `stalwart-cli`). `memory` declares
them in this file, Stalwart's way:

```toml
[directory."memory"]
type = "memory"

[[directory."memory".principals]]
name = "jane"
class = "individual"
secret = "$argon2id$v=19$..."
email = ["jane@example.com", "j.doe@example.com"]
description = "Jane Doe"
quota = "5gb"
```

Principal secrets follow the rule of `authentication.fallback-admin.secret`
(`$argon2...` is a hash, anything else plain text).
""")

PRINCIPAL_CLASSES = ("individual", "admin", "group")

declare("directory.<id>.type", Enum(("internal", "memory")), """
    Kind of directory: `internal` (accounts in the data store) or `memory` (accounts
    listed in this file under `principals`).""",
    section="directory", required=True)

declare("directory.<id>.principals.<n>.name", String(), """
    Login name of a principal of a memory directory; unique across memory directories.""",
    section="directory", required=True)

declare("directory.<id>.principals.<n>.class", Enum(PRINCIPAL_CLASSES), """
    `individual` (a mail account), `admin` (an account with administrator rights) or
    `group` (a shared address).""",
    section="directory", default="individual")

declare("directory.<id>.principals.<n>.secret", String(), """
    Password: an argon2 hash (`$argon2...`) or plain text. A principal without one cannot
    log in.""",
    section="directory", secret=True)

declare("directory.<id>.principals.<n>.email", List(String()), """
    Addresses of the principal; the first is its primary address. Each address belongs
    to at most one principal.""",
    section="directory", default=[])

declare("directory.<id>.principals.<n>.description", String(allow_empty=True), """
    Display name of the principal.""",
    section="directory", default="")

declare("directory.<id>.principals.<n>.quota", Size(), """
    Storage quota of the principal; 0 means unlimited.""",
    section="directory", default=0)
