"""Who the processes run as, and the directories they must be able to write.

The master keeps the identity it was started with. Started as root, it binds every socket
(privileged ports included), then each forked process switches for good to
``server.run-as`` before it touches data or accepts a connection
(stalwart.worker.process.drop_privileges). The master itself stays root only so that a
reload can bind a new privileged listener; it never parses client input or opens mail
data. Postfix's master and Dovecot's master make the same trade: a small, mail-blind
privileged supervisor and unprivileged workers.

Started as another user, ``server.run-as`` naming a different account is ignored with a
warning (there is no way to switch), and everything runs as the current user.

``prepare_directories`` creates the state directories and, as root, hands them to the
run-as account: a directory whose owner differs is chowned with everything under it (the
first start, or after run-as changed); one already owned is left alone, so a large store
is not walked on every start. Symbolic links are never followed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from stalwart.config import Config
from stalwart.worker.process import Identity

__all__ = ["identity_for", "prepare_directories", "state_directories", "check_reachable"]

log = logging.getLogger("stalwart.master")


def identity_for(config: Config) -> Identity | None:
    """The identity children switch to, or None to stay who we are."""
    if config.run_as is None:
        return None
    user, group = config.run_as
    try:
        identity = Identity.lookup(user, group)
    except KeyError as exc:
        raise OSError(f"server.run-as: no such user or group: {exc}") from None
    if os.geteuid() != 0:
        if identity.uid != os.geteuid():
            log.warning("server.run-as.user is %r but the server was not started as root: "
                        "running as uid %d instead", user, os.geteuid())
        return None
    return identity


def state_directories(config: Config, log_files: list[Path]) -> list[Path]:
    dirs = [config.base_dir, config.run_dir, config.run_dir / "secondary"]
    for p in (config.store.path, config.store.blob_path):
        if p is not None:
            dirs.append(Path(p))
    dirs.extend(Path(f).parent for f in log_files)
    return list(dict.fromkeys(dirs))


def _chown_tree(top: Path, uid: int, gid: int) -> int:
    count = 0
    os.chown(top, uid, gid, follow_symlinks=False)
    for root, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
            count += 1
    return count


def _searchable(path: Path, identity: Identity) -> bool:
    st = path.stat()
    if st.st_uid == identity.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == identity.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def check_reachable(directory: Path, identity: Identity) -> None:
    """``OSError`` naming the first parent of ``directory`` the run-as account cannot enter."""
    for parent in reversed(Path(directory).absolute().parents):
        if not _searchable(parent, identity):
            raise OSError(f"{parent} is not searchable by {identity.user!r} (server.run-as): "
                          f"the workers could not reach {directory}")


def prepare_directories(config: Config, identity: Identity | None,
                        log_files: list[Path]) -> None:
    """Create the state directories; as root, make them the run-as account's."""
    if identity is not None:
        check_reachable(config.base_dir, identity)
    for d in state_directories(config, log_files):
        d.mkdir(parents=True, exist_ok=True, mode=0o750)
        if identity is None:
            continue
        st = d.lstat()
        if st.st_uid != identity.uid or st.st_gid != identity.gid:
            n = _chown_tree(d, identity.uid, identity.gid)
            log.info("%s: now owned by %s (%d entries below it)", d, identity.user, n)
    if identity is not None:
        for f in log_files:
            if f.exists():
                os.chown(f, identity.uid, identity.gid, follow_symlinks=False)
