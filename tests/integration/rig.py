"""Real components for integration tests: a `rempart serve` process and a Dovecot instance.

Both run on free loopback ports with their own files in a temporary directory; nothing touches
the system's configuration.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import imaplib
import json
import os
import poplib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rempart.process import ServeProcess, free_port
from tests.conftest import need

PASSWORD = "test-api-password"
__all__ = ["PASSWORD", "SPRAY_RULE", "DovecotRig", "RempartProcess", "free_port"]
# The shipped spray rule with a lower threshold, so a test needs few slow Dovecot failures
# (Dovecot itself delays every failure by ~2 s, plus its per-IP penalty).
SPRAY_RULE = """
[[policy.rules]]
name = "spray_pattern"
when = "failed_logins(ip, '1h') >= 3 and not shared_ip"
action = "deny"
block = { scope = "ip", ttl = "1h" }
message = "Too many different accounts tried from your address. Try again later."
"""


class RempartProcess(ServeProcess):
    """`rempart serve` in a subprocess, with a JSON client for its APIs."""

    def __init__(self, data_dir: Path, config: str = "", env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, config, PASSWORD, env)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        password: str | None = PASSWORD,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if password is not None:
            token = base64.b64encode(f"wforce:{password}".encode()).decode()
            hdrs["Authorization"] = f"Basic {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        try:
            return resp.status, json.loads(payload)
        except ValueError:
            return resp.status, payload.decode("utf-8", "replace")

    def command(self, name: str, body: Any = None) -> tuple[int, Any]:
        return self.request("POST", f"/?command={name}", body if body is not None else {})


DOVECOT_CONF = """\
base_dir = {rig}/run
state_dir = {rig}/state
instance_name = rig{imap}
log_path = {rig}/dovecot.log
info_log_path = {rig}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
default_internal_user = dovecot
default_login_user = dovenull
mail_uid = vmail
mail_gid = vmail
first_valid_uid = 100
mail_location = maildir:{rig}/mail/%d/%n
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {rig}/users
}}
userdb {{
  driver = passwd-file
  args = {rig}/users
  default_fields = uid=vmail gid=vmail home={rig}/mail/%d/%n
}}
auth_verbose = yes
auth_policy_server_url = http://127.0.0.1:{policy_port}/
auth_policy_server_api_header = Authorization: Basic {token}
auth_policy_server_timeout_msecs = 2000
auth_policy_hash_mech = sha256
auth_policy_hash_nonce = {nonce}
auth_policy_hash_truncate = {truncate}
auth_policy_request_attributes = login=%{{requested_username}} pwhash=%{{hashed_password}} remote=%{{rip}} device_id=%{{client_id}} protocol=%s
auth_policy_reject_on_fail = no
auth_policy_check_before_auth = yes
auth_policy_check_after_auth = yes
auth_policy_report_after_auth = yes
imap_id_retain = yes
"""

# App passwords (docs/app-passwords.md): the main passdb marks its successes, a second passdb
# reads the table Rempart keeps, and the policy request says which one matched. A Postfix-style
# SASL socket lets tests exercise SMTP AUTH against the same passdbs.
APP_PASSWORD_CONF = """passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {rig}/users
  override_fields = rempart_credential=main
}}
passdb {{
  driver = sql
  args = {rig}/app-passwords.conf.ext
}}
auth_policy_request_attributes = login=%{{requested_username}} pwhash=%{{hashed_password}} \
  remote=%{{rip}} device_id=%{{client_id}} protocol=%s \
  attrs/credential=%{{passdb:rempart_credential}} attrs/app_password=%{{passdb:rempart_app_password}}
service auth {{
  unix_listener sasl {{
    mode = 0666
  }}
}}
"""
SASL_CONF = """service auth {
  unix_listener sasl {
    mode = 0666
  }
}
"""
APP_PASSWORD_SQL = """\
driver = sqlite
connect = {db}
password_query = SELECT password, 'app' AS rempart_credential, id AS rempart_app_password \
  FROM dovecot_app_passwords \
  WHERE login = '%u' AND selector = '%2w' AND scopes LIKE '%%,%s,%%' \
  AND (expires = 0 OR expires > CAST(strftime('%%s', 'now') AS INTEGER))
"""


def ingest_leak(combo: Path, data: Path, config: Path, userdb: Path) -> None:
    """`rempart leaks ingest` of a combo list, auditing it against the rig's Dovecot userdb (so
    accounts whose current password leaked are restricted)."""
    ingest = subprocess.run(
        [
            sys.executable,
            "-m",
            "rempart",
            "leaks",
            "ingest",
            str(combo),
            "--source",
            "test-leak",
            "--data-dir",
            str(data),
            "--config",
            str(config),
            "--audit-userdb",
            str(userdb),
        ],
        capture_output=True,
        text=True,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr


def dovecot_available() -> tuple[bool, str]:
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        return False, "install dovecot-core dovecot-imapd dovecot-pop3d"
    if os.geteuid() != 0:
        return False, "the Dovecot rig needs root (it switches to the vmail/dovecot users)"
    return True, ""


class DovecotRig:
    """A Dovecot 2.3 with IMAP and POP3 on free ports, auth_policy pointing at Rempart."""

    def __init__(
        self,
        root: Path,
        policy_port: int,
        users: dict[str, str],
        nonce: str = "rig-nonce",
        truncate: int = 12,
        policy: bool = True,
        app_passwords_db: Path | None = None,
        sasl: bool = False,
    ) -> None:
        ok, why = dovecot_available()
        need("dovecot", ok, why)
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for parent in self.root.parents:  # Dovecot's users must be able to traverse the path
            if str(parent).startswith("/tmp"):
                with contextlib.suppress(PermissionError):
                    os.chmod(parent, os.stat(parent).st_mode | 0o711)
        self.imap_port, self.pop3_port = free_port(), free_port()
        self.policy_port = policy_port
        if subprocess.run(["id", "vmail"], capture_output=True, check=False).returncode != 0:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    "vmail",
                ],
                check=True,
            )
        (self.root / "mail").mkdir(exist_ok=True)
        shutil.chown(self.root / "mail", "vmail", "vmail")
        token = base64.b64encode(f"wforce:{PASSWORD}".encode()).decode()
        conf = DOVECOT_CONF.format(
            rig=self.root,
            imap=self.imap_port,
            pop3=self.pop3_port,
            policy_port=policy_port,
            token=token,
            nonce=nonce,
            truncate=truncate,
        )
        if not policy:  # no auth_policy at all: a Dovecot that only writes its log
            conf = conf.replace(f"auth_policy_server_url = http://127.0.0.1:{policy_port}/\n", "")
        if app_passwords_db is not None:
            passdb = conf[conf.index("passdb {") : conf.index("userdb {")]
            conf = conf.replace(passdb, "").replace(
                "auth_policy_request_attributes = ", "# replaced below: "
            )
            conf += APP_PASSWORD_CONF.format(rig=self.root)
            sql = APP_PASSWORD_SQL.format(db=app_passwords_db)
            (self.root / "app-passwords.conf.ext").write_text(sql)
        elif sasl:  # the SASL socket alone, for a Postfix's smtpd_sasl_path
            conf += SASL_CONF
        (self.root / "dovecot.conf").write_text(conf)
        self.set_users(users)

    def set_users(self, users: dict[str, str]) -> None:
        lines = []
        for login, password in users.items():
            hashed = subprocess.run(
                ["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", password],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            lines.append(f"{login}:{hashed}::::::")
        path = self.root / "users"
        path.write_text("\n".join(lines) + "\n")
        shutil.chown(path, "root", "dovecot")
        os.chmod(path, 0o640)

    def start(self) -> DovecotRig:
        subprocess.run(["dovecot", "-c", str(self.root / "dovecot.conf")], check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.imap_port), timeout=1),
            ):
                # Start the auth process now: spawned by the first login on a loaded machine,
                # it can miss the login's deadline ("Temporary authentication failure").
                subprocess.run(
                    ["doveadm", "-c", str(self.root / "dovecot.conf"), "auth", "lookup", "-"],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
                return self
            time.sleep(0.1)
        raise RuntimeError("dovecot did not start: " + self.log())

    def stop(self) -> None:
        subprocess.run(
            ["doveadm", "-c", str(self.root / "dovecot.conf"), "stop"],
            capture_output=True,
            check=False,
        )

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def imap_login(self, login: str, password: str, source: str, client_id: str = "") -> str:
        """'OK' or the server's refusal text."""
        conn = _SourcedIMAP("127.0.0.1", self.imap_port, source)
        try:
            if client_id:
                conn._simple_command("ID", f'("name" "{client_id}")')
            conn.login(login, password)
            conn.logout()
            return "OK"
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            with contextlib.suppress(Exception):
                conn.shutdown()

    def pop3_login(self, login: str, password: str, source: str) -> str:
        conn = _SourcedPOP3("127.0.0.1", self.pop3_port, source)
        try:
            conn.user(login)
            conn.pass_(password)
            conn.quit()
            return "OK"
        except poplib.error_proto as exc:
            return exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    @property
    def sasl_path(self) -> Path:
        """Dovecot's SASL socket (with `sasl=True` or app passwords), for Postfix."""
        return self.root / "run" / "sasl"

    def smtp_auth(self, login: str, password: str, source: str) -> str:
        """SMTP AUTH PLAIN as Postfix asks Dovecot: over the auth socket, service=smtp.

        'OK', or the FAIL line's reason (empty when Dovecot gives none)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(str(self.root / "run" / "sasl"))
            reader = sock.makefile("r", encoding="utf-8", newline="\n")
            sock.sendall(f"VERSION\t1\t2\nCPID\t{os.getpid()}\n".encode())
            while reader.readline().rstrip("\n") != "DONE":
                pass
            resp = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
            fields = f"service=smtp\tnologin\tlip=127.0.0.1\trip={source}\tresp={resp}"
            sock.sendall(f"AUTH\t1\tPLAIN\t{fields}\n".encode())
            answer = reader.readline().rstrip("\n").split("\t")
        if answer[0] == "OK":
            return "OK"
        reasons = [f.removeprefix("reason=") for f in answer if f.startswith("reason=")]
        return "FAIL " + (reasons[0] if reasons else "")


imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")


class _SourcedIMAP(imaplib.IMAP4):
    def __init__(self, host: str, port: int, source: str) -> None:
        self._source = source
        super().__init__(host, port, timeout=60)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, (self._source, 0))


class _SourcedPOP3(poplib.POP3):
    def __init__(self, host: str, port: int, source: str) -> None:
        self._source = source
        super().__init__(host, port, timeout=60)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, (self._source, 0))
