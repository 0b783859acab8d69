"""Who may log in: the directories of accounts and their credentials.

``authenticate(config, store, login, password) -> Principal | None`` is what every protocol
calls (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3, ManageSieve, HTTP Basic for JMAP and
the management API). It asks, in order:

1. the memory directories of the config (``[[directory.<id>.principals]]``),
2. the internal directory (accounts in the store, ``store.authenticate``),
3. the fallback administrator (``[authentication.fallback-admin]``),

and returns the first principal whose credentials match. A login that a source knows but
whose password is wrong does not fall through to the next source, so a memory principal
cannot be shadowed by a store account of the same name and vice versa.

Secrets in the config are plain text or argon2 hashes (``$argon2...``); see ``secret``.
"""

from .authenticate import authenticate
from .memory import MemoryDirectory
from .principal import Principal
from .secret import verify_secret

__all__ = ["authenticate", "MemoryDirectory", "Principal", "verify_secret"]
