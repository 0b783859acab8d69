"""LOGIN (RFC 9051 6.2.3): user name and password, over TLS unless configured otherwise;
and the failed-login policy AUTHENTICATE shares.

Without TLS (and without ``allow_plain_without_tls``) it is refused with
``NO [PRIVACYREQUIRED]`` and LOGINDISABLED is advertised (RFC 9051 6.2.3). A wrong password
gets ``NO [AUTHENTICATIONFAILED]``; after three failures the connection is closed. Each
failure is logged on the stable fail2ban line (``stalwart.log.auth_failure``).

With ``s.penalty`` (a ``stalwart.limits.ClientLimits`` over the table every worker of
every protocol maps, so SMTP, IMAP and POP3 failures of one address add up) each failure
is also counted per client address: from the penalty's ``delay_after``-th failure the NO
is answered only after a growing delay, and the ``ban_after``-th bans the address; the
connection then gets ``* BYE`` and is closed, as does any connection of a banned address
that tries to log in (no more guesses, even on a connection opened before the ban).
Exempt addresses (``smtp.limits.exempt``) are neither delayed nor banned.
"""

from __future__ import annotations

import logging

from .... import log as stalwart_log
from ..session import No

log = logging.getLogger("stalwart.imap")

MAX_FAILURES = 3


async def run(s, cmd):
    if not s.plaintext_allowed():
        raise No("LOGIN is disabled until TLS is active", "PRIVACYREQUIRED")
    if refuse_banned(s, cmd.tag):
        return None
    account = await s.store.authenticate(cmd.args.username, cmd.args.password)
    if account is None:
        return await fail(s, cmd.tag, cmd.args.username)
    s.login(account)
    return "Logged in", "CAPABILITY " + s.capabilities()


def banned_text(s) -> str:
    return f"Too many failed logins from {s.remote_ip or 'this address'}, try again later"


def refuse_banned(s, tag: str) -> bool:
    """A banned client (banned meanwhile, by this connection or another) gets no more
    guesses: NO [UNAVAILABLE] (RFC 5530), BYE, closed. True when refused."""
    penalty = s.penalty
    if penalty is None or penalty.banned(s.remote_ip) <= 0:
        return False
    s.tagged(tag, "NO", "Login refused", "UNAVAILABLE")
    s.bye(banned_text(s))
    return True


async def fail(s, tag: str, user: str, reason: str = "invalid credentials"):
    """Answer a failed authentication (one stable log line for fail2ban), after the
    penalty's delay; BYE when this failure banned the client or it is banned already."""
    s.auth_failures += 1
    stalwart_log.auth_failure("imap", s.remote_ip or "-", user, reason)
    banned = False
    penalty = s.penalty
    if penalty is not None and not penalty.is_exempt(s.remote_ip):
        delay, banned = penalty.auth_failed(s.remote_ip)
        if delay > 0:
            await s.sleep(delay)
        if banned:
            log.warning("imap: %s banned for %ds after repeated failed logins", s.remote_ip,
                        int(penalty.auth.ban_time))
        banned = banned or penalty.banned(s.remote_ip) > 0
    s.tagged(tag, "NO", "Invalid credentials", "AUTHENTICATIONFAILED")
    if banned:
        s.bye(banned_text(s))
    elif s.auth_failures >= MAX_FAILURES:
        s.untagged("BYE Too many authentication failures")
        s.close()
    return None
