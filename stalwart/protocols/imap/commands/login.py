"""LOGIN (RFC 9051 6.2.3): user name and password, over TLS unless configured otherwise.

Without TLS (and without ``allow_plain_without_tls``) it is refused with
``NO [PRIVACYREQUIRED]`` and LOGINDISABLED is advertised (RFC 9051 6.2.3). A wrong password
gets ``NO [AUTHENTICATIONFAILED]``; after three failures the connection is closed. Each
failure is logged on the stable fail2ban line (``stalwart.log.auth_failure``).
"""

from __future__ import annotations

from .... import log as stalwart_log
from ..session import No

MAX_FAILURES = 3


async def run(s, cmd):
    if not s.plaintext_allowed():
        raise No("LOGIN is disabled until TLS is active", "PRIVACYREQUIRED")
    account = await s.store.authenticate(cmd.args.username, cmd.args.password)
    if account is None:
        return fail(s, cmd.tag, cmd.args.username)
    s.login(account)
    return "Logged in", "CAPABILITY " + s.capabilities()


def fail(s, tag: str, user: str, reason: str = "invalid credentials"):
    """Answer a failed authentication (one stable log line for fail2ban)."""
    s.auth_failures += 1
    stalwart_log.auth_failure("imap", s.remote_ip or "-", user, reason)
    s.tagged(tag, "NO", "Invalid credentials", "AUTHENTICATIONFAILED")
    if s.auth_failures >= MAX_FAILURES:
        s.untagged("BYE Too many authentication failures")
        s.close()
    return None
