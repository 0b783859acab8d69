"""Settings of authentication that do not depend on a directory: the fallback admin."""

from __future__ import annotations

from ..registry import declare, section
from ..types import String

section("authentication", """
The fallback administrator can always log in to the management API and the web admin,
even when the directory is unreachable or empty. Its secret is either plain text or an
argon2 hash; a value starting with `$argon2` (the PHC string format of argon2-cffi and
the `argon2` tool, such as `$argon2id$v=19$m=65536,t=3,p=4$...`) is a hash, anything else
is the password itself. Prefer the hash: the config file is then harmless to read. Other
hash schemes (`$6$`, `$2b$`, ...) are rejected rather than mistaken for a password.
""")

declare("authentication.fallback-admin.user", String(), """
    Login name of the fallback administrator. Set together with the secret, or not at
    all.""",
    section="authentication")

declare("authentication.fallback-admin.secret", String(), """
    Password of the fallback administrator: an argon2 hash (`$argon2...`) or plain
    text.""",
    section="authentication", secret=True)
