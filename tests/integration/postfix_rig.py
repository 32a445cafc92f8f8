"""A private Postfix instance for integration tests: its own configuration, queue and data
directories in a temporary directory (`postfix -c DIR start`), smtpd on a free loopback port,
SMTP AUTH through a Dovecot SASL socket, every message discarded once queued. Nothing touches
the system's Postfix (/etc/postfix stays as installed, its master is not started).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from rempart.process import free_port
from tests.conftest import need

# smtpd answers on a free port, not chrooted (the SASL socket and policy service are reached by
# absolute path and TCP); the few services a message needs to be queued and discarded.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
# The lines docs/postfix.md documents (SASL through Dovecot, Rempart's policy service before
# permit_sasl_authenticated), around a test instance that queues and discards everything.
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = rig.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
default_transport = discard
relay_transport = discard
local_transport = discard
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl}
smtpd_relay_restrictions = permit_sasl_authenticated, permit_auth_destination, reject
smtpd_recipient_restrictions =
    check_policy_service {{ inet:127.0.0.1:{policy}, timeout=10s, default_action=DUNNO }}
    permit_sasl_authenticated, permit_auth_destination, reject
"""


def postfix_available() -> tuple[bool, str]:
    if shutil.which("postfix") is None or not Path("/usr/lib/postfix/sbin/smtpd").exists():
        return False, "install postfix (Debian package)"
    if os.geteuid() != 0:
        return False, "a Postfix instance needs root (its master switches to the postfix user)"
    return True, ""


class PostfixRig:
    """Postfix 3.x listening on 127.0.0.1:<free port>, asking Rempart's policy service."""

    def __init__(self, root: Path, sasl_path: Path, policy_port: int) -> None:
        ok, why = postfix_available()
        need("postfix", ok, why)
        self.root = root
        self.port = free_port()
        self.config = root / "etc"
        for name in ("etc", "spool", "data"):
            (root / name).mkdir(parents=True, exist_ok=True)
            os.chmod(root / name, 0o755)  # whatever this process's umask (see `postfix`)
        os.chmod(root, 0o755)
        shutil.chown(root / "data", "postfix")
        (self.config / "main.cf").write_text(
            MAIN_CF.format(root=root, sasl=sasl_path, policy=policy_port)
        )
        (self.config / "master.cf").write_text(MASTER_CF.format(port=self.port))
        for name in ("main.cf", "master.cf"):
            os.chmod(self.config / name, 0o644)

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Postfix's own umask, not the test process's: a `Service` built earlier in the same
        # process set 077 (data files private), and queue directories made under it would be
        # unreadable to Postfix's unprivileged programs.
        return subprocess.run(
            ["postfix", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            umask=0o022,
        )

    def start(self) -> PostfixRig:
        started = self.postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix did not start: {started.stderr}\n{self.log()}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            time.sleep(0.1)
        raise RuntimeError("postfix does not listen: " + self.log())

    def stop(self) -> None:
        if self.postfix("stop").returncode != 0:
            self.postfix("abort")

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""
