"""Postfix on loopback as a peer MTA, everything it writes in one directory.

    pf = Postfix(port, domains=("peer.test",), users=("user1", "user2"),
                 transports={"example.test": "smtp:[127.0.0.1]:2525"}).start()
    ...                                   # SMTP to 127.0.0.1:pf.port
    pf.messages("user1@peer.test")        # delivered mail (Maildir files), oldest first
    pf.stop()

What this instance is (Debian 12's Postfix, started as root like any Postfix; its
services run as the ``postfix`` user, nothing chrooted):

- smtpd on 127.0.0.1:``port``, ``myhostname`` ``hostname`` (default mx.peer.test), offering
  STARTTLS with a self-signed certificate for that name; ``mynetworks`` is 127.0.0.0/8, so
  loopback clients may relay (that is how a test hands Postfix mail for us).
- Local mail: ``domains`` are virtual mailbox domains; only ``users`` exist in each
  (``user@domain``), others get ``550 5.1.1`` at RCPT. virtual(8) writes Maildir files
  under ``<dir>/mail/<domain>/<user>/`` as the ``nobody`` user.
- Outbound: ``transports`` maps domains to Postfix transports (``smtp:[127.0.0.1]:PORT``);
  with ``relayhost`` every other domain goes there, otherwise it fails at once
  (``error:`` transport): nothing ever leaves the machine. The smtp client uses STARTTLS
  when offered (``smtp_tls_security_level = may``) and logs the TLS it got.
- ``hold=True``: smtpd puts every accepted message on hold (``HOLD`` action);
  ``release()`` lets them all go at once (``postsuper -H ALL`` + ``postqueue -f``), for
  benchmarks that time the delivery of a full queue.
- The log (postlogd, ``maillog_file``) is ``<dir>/postfix.log`` (``log()``).

The directory must be reachable by the ``postfix`` user: it is made under ``/tmp`` with
mode 0755 (pytest's own temporary directories are 0700) and removed by ``stop()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping

from .certs import self_signed

__all__ = ["Postfix", "SmtpSink", "POSTFIX", "SMTP_SINK", "self_signed"]

POSTFIX = "/usr/sbin/postfix"
POSTSUPER = "/usr/sbin/postsuper"
POSTQUEUE = "/usr/sbin/postqueue"
SMTP_SINK = "/usr/sbin/smtp-sink"
DAEMON_DIR = "/usr/lib/postfix/sbin"


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            ok = s.recv(512).startswith(b"220")
            s.sendall(b"QUIT\r\n")
            return ok
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:                                  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Postfix:
    def __init__(self, port: int, *, hostname: str = "mx.peer.test",
                 domains: Iterable[str] = ("peer.test",),
                 users: Iterable[str] = ("user1", "user2"),
                 transports: Mapping[str, str] | None = None,
                 relayhost: str | None = None, hold: bool = False,
                 extra: Mapping[str, str] | None = None) -> None:
        if not Path(POSTFIX).exists():
            raise RuntimeError(f"{POSTFIX} is missing (tests/install-peers.sh installs "
                               "postfix)")
        self.port = port
        self.hostname = hostname
        self.domains = tuple(d.lower() for d in domains)
        self.users = tuple(users)
        self.transports = dict(transports or {})
        self.relayhost = relayhost
        self.hold = hold
        self.extra = dict(extra or {})
        self.dir = Path(tempfile.mkdtemp(prefix="pf", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.etc = self.dir / "etc"
        self.spool = self.dir / "spool"
        self.mail = self.dir / "mail"
        self.pid: int | None = None
        self.cert_der: bytes = b""

    # -- configuration -----------------------------------------------------------------

    def _write(self) -> None:
        d, etc = self.dir, self.etc
        for sub in ("etc", "spool", "data", "mail"):
            (d / sub).mkdir(exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        postfix = pwd.getpwnam("postfix")
        os.chown(self.spool, 0, 0)
        os.chown(d / "data", postfix.pw_uid, postfix.pw_gid)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        self.cert_der = self_signed(self.hostname, etc / "cert.pem", etc / "key.pem")
        mailboxes = [f"{u}@{dom} {dom}/{u}/" for dom in self.domains for u in self.users]
        (etc / "vmailbox").write_text("\n".join(mailboxes) + "\n")
        (etc / "transport").write_text(
            "".join(f"{dom} {t}\n" for dom, t in self.transports.items()))
        outbound = "smtp" if self.relayhost else "error:this test peer sends nothing out"
        recipient_checks = "check_client_access static:HOLD, " if self.hold else ""
        settings = {
            "compatibility_level": "3.6",
            "config_directory": str(etc),
            "queue_directory": str(self.spool),
            "data_directory": str(d / "data"),
            "command_directory": "/usr/sbin",
            "daemon_directory": DAEMON_DIR,
            "meta_directory": "/etc/postfix",
            "shlib_directory": "/usr/lib/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            # postlogd writes here; without both settings "postfix start" fails silently
            "maillog_file": str(d / "postfix.log"),
            "maillog_file_prefixes": str(d),
            "myhostname": self.hostname,
            "mydomain": self.hostname.split(".", 1)[-1],
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": f"{recipient_checks}permit_mynetworks, "
                                            "reject_unauth_destination",
            "append_dot_mydomain": "no",
            "biff": "no",
            "smtputf8_enable": "yes",
            "relayhost": self.relayhost or "",
            "default_transport": outbound,
            "relay_transport": outbound if not self.relayhost else "relay",
            "transport_maps": f"texthash:{etc}/transport",
            "virtual_mailbox_domains": " ".join(self.domains),
            "virtual_mailbox_maps": f"texthash:{etc}/vmailbox",
            "virtual_mailbox_base": str(self.mail),
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "virtual_minimum_uid": "1",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": str(etc / "cert.pem"),
            "smtpd_tls_key_file": str(etc / "key.pem"),
            "smtpd_tls_received_header": "yes",
            "smtpd_tls_loglevel": "1",
            "smtp_tls_security_level": "may",
            "smtp_tls_loglevel": "1",
            # No DNS here: next hops are IP literals, so nothing waits for a resolver.
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            # Retry quickly (tests wait for outcomes, not for Postfix's 5-minute defaults).
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "5s",
            "delay_warning_time": "0",
            **self.extra,
        }
        (etc / "main.cf").write_text(
            "# Generated by tests/integration/postfixpeer.py\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        (etc / "master.cf").write_text(f"""\
# Generated by tests/integration/postfixpeer.py: Debian's services, nothing chrooted.
127.0.0.1:{self.port} inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
local     unix - n n - - local
virtual   unix - n n - - virtual
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
""")

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            # postfix check prints its reasons only to a terminal: run it under script(1)
            why = subprocess.run(["script", "-qec", f"{POSTFIX} -c {self.etc} check",
                                  "/dev/null"], capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
            raise RuntimeError(f"postfix {' '.join(args)} failed: {result.stdout}"
                               f"{result.stderr}{why.stdout}\n{self.log()[-3000:]}")
        return result

    # -- process -------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "Postfix":
        self._write()
        self._postfix("check")
        # The daemons inherit our descriptors: give them none of the test's pipes.
        subprocess.run([POSTFIX, "-c", str(self.etc), "start"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=60)
        deadline = time.monotonic() + timeout
        pid_file = self.spool / "pid" / "master.pid"
        while time.monotonic() < deadline:
            try:
                self.pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                self.pid = None
            if self.pid and _alive(self.pid) and _greets(self.port):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"postfix did not start on port {self.port}:\n{self.log()[-3000:]}")

    def stop(self, remove: bool = True) -> None:
        if self.pid is not None and _alive(self.pid):
            subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True,
                           timeout=60, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def release(self) -> None:
        """Deliver every held message now (``hold=True``)."""
        subprocess.run([POSTSUPER, "-c", str(self.etc), "-H", "ALL"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([POSTQUEUE, "-c", str(self.etc), "-f"], check=True,
                       capture_output=True, timeout=120)

    # -- observation ---------------------------------------------------------------------

    def log(self) -> str:
        try:
            return (self.dir / "postfix.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def queue_size(self) -> int:
        """Messages in Postfix's queues (incoming, active, deferred, hold)."""
        total = 0
        for sub in ("incoming", "active", "deferred", "hold", "maildrop"):
            for _root, _dirs, files in os.walk(self.spool / sub):
                total += len(files)
        return total

    def maildir(self, address: str) -> Path:
        user, _, domain = address.partition("@")
        return self.mail / domain.lower() / user

    def messages(self, address: str) -> list[bytes]:
        """The messages delivered to ``address`` (Maildir new/ and cur/), oldest first."""
        box = self.maildir(address)
        files = [p for sub in ("new", "cur") if (box / sub).is_dir()
                 for p in (box / sub).iterdir() if p.is_file()]
        files.sort(key=lambda p: (p.stat().st_mtime, p.name))
        return [p.read_bytes() for p in files]


class SmtpSink:
    """Postfix's ``smtp-sink`` on 127.0.0.1:``port``: accepts every message and throws it
    away, counting them (``count()``: messages whose final dot it received)."""

    def __init__(self, port: int, directory: Path, *, backlog: int = 256) -> None:
        self.port = port
        self.out = Path(directory) / f"smtp-sink-{port}.out"
        self.backlog = backlog
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SmtpSink":
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [SMTP_SINK, "-c", "-u", "nobody", "-h", "sink.test", "-m", "1024",
                 f"127.0.0.1:{self.port}", str(self.backlog)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _greets(self.port):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"smtp-sink did not start: {self.out.read_text(errors='replace')}")

    def count(self) -> int:
        """The sink's running message counter (``mesg=N``), 0 before the first."""
        with open(self.out, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 200))
            tail = f.read().decode(errors="replace")
        counters = [c for c in tail.replace("\r", "\n").split("\n") if "mesg=" in c]
        if not counters:
            return 0
        return int(counters[-1].rsplit("mesg=", 1)[1].split()[0] or 0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
