"""A real IMAP server for tests: Debian's dovecot, run unprivileged with its own config.

Nothing of the system's dovecot is used (`dovecot -F -c our.conf`: no /etc/dovecot, no root
service). Every process of it runs as the test user; when the tests run as root, dovecot
refuses root for its login processes and mail users, so the whole server is started as
Debian's `dovecot` system user instead. Its directory lives in a short path under the
system temp dir (dovecot's unix sockets must fit 108 bytes, and pytest's root-owned 0700 tmp
folders are not reachable by that user).

Mail is delivered with IMAP APPEND through the standard library's imaplib (a different
client from the hub's aioimaplib, so the two are not checked against each other's bugs).
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hub.embedded_db import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
# dovecot 2.3's post-login capabilities, minus IDLE: a server that makes the hub poll
NO_IDLE_CAPABILITY = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ NAMESPACE UIDPLUS CHILDREN"


def _run_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    for name in ("dovecot", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (dovecot, nobody) for dovecot")


class Dovecot:
    """One dovecot instance on a free loopback port with plaintext users in a passwd-file."""

    def __init__(self, idle: bool = True) -> None:
        self.idle = idle
        self.host = "127.0.0.1"
        self.port = free_port()
        self.user = _run_user()
        self.root = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
        self.users_file = self.root / "users"
        self.log_path = self.root / "dovecot.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        name, group = self.user.pw_name, grp.getgrgid(self.user.pw_gid).gr_name
        lines = [
            "protocols = imap",
            f"listen = {self.host}",
            f"base_dir = {self.root}/run",
            f"state_dir = {self.root}/state",
            f"instance_name = hub-dovecot-{self.port}",
            f"log_path = {self.log_path}",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "auth_failure_delay = 0",
            f"default_internal_user = {name}",
            f"default_internal_group = {group}",
            f"default_login_user = {name}",
            f"first_valid_uid = {self.user.pw_uid}",
            f"first_valid_gid = {self.user.pw_gid}",
            f"mail_location = maildir:{self.root}/mail/%u",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.users_file}",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%u {self.users_file}",
            "}",
            # an unprivileged master cannot chroot its login and anvil processes
            "service anvil {",
            "  chroot =",
            "}",
            "service imap-login {",
            "  chroot =",
            "  inet_listener imap {",
            f"    address = {self.host}",
            f"    port = {self.port}",
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
            "}",
        ]
        if not self.idle:
            lines.append(f"imap_capability = {NO_IDLE_CAPABILITY}")
        return "\n".join(lines) + "\n"

    def add_user(self, name: str, password: str, timeout: float = 10) -> None:
        """A mailbox account. Dovecot looks at the passwd-file again at most once a second, so
        a running server is asked until it accepts the new login."""
        home = self.root / "home" / name
        entry = f"{name}:{{PLAIN}}{password}:{self.user.pw_uid}:{self.user.pw_gid}::{home}\n"
        with self.users_file.open("a") as users:
            users.write(entry)
        self._own(self.users_file)
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client(name, password).logout()
                return
            except imaplib.IMAP4.error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def start(self, timeout: float = 15) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        conf = self.root / "dovecot.conf"
        conf.write_text(self._config())
        self.users_file.touch()
        for path in (self.root, conf, self.users_file):
            self._own(path)
        as_root = os.geteuid() == 0
        with (self.root / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(conf)],
                cwd=self.root,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                user=self.user.pw_uid if as_root else None,
                group=self.user.pw_gid if as_root else None,
                extra_groups=[] if as_root else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.logs()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"dovecot did not start: {self.logs()}")

    def logs(self) -> str:
        parts = [
            p.read_text(errors="replace") for p in (self.log_path, self.root / "stderr.log") if p.exists()
        ]
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # the master stops its children
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    # -- a mail client for the tests (blocking: call through asyncio.to_thread) --------------
    def client(self, user: str, password: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            client.login(user, password)
        except imaplib.IMAP4.error:
            client.shutdown()
            raise
        return client

    def append(self, user: str, password: str, raw: bytes) -> None:
        client = self.client(user, password)
        try:
            status, detail = client.append("INBOX", None, None, raw)
            assert status == "OK", detail
        finally:
            client.logout()

    def flags(self, user: str, password: str) -> list[str]:
        """The flags of every mail in INBOX, in order."""
        client = self.client(user, password)
        try:
            client.select("INBOX", readonly=True)
            status, data = client.fetch("1:*", "(FLAGS)")
            if status != "OK" or data == [None]:
                return []
            return [str(item.decode() if isinstance(item, bytes) else item) for item in data]
        finally:
            client.logout()

    def mark_unseen(self, user: str, password: str) -> None:
        """Clear \\Seen on every mail: what a crash between storing and flagging leaves."""
        client = self.client(user, password)
        try:
            client.select("INBOX")
            client.store("1:*", "-FLAGS", "(\\Seen)")
        finally:
            client.logout()
