"""App passwords with a real Dovecot 2.3: created through the API, checked by Dovecot's sql
passdb over the table Rempart keeps, recognised by the policy from the passdb field Dovecot
passes in its auth_policy request.

Proves: an app password opens IMAP, POP3 and SMTP AUTH (Dovecot's SASL socket, as Postfix uses
it) while IMAP is strict and while the account is restricted (its password leaked); the main
password from a new network is refused with the message; a revoked or expired app password is
refused at once; the operator CLI lists and revokes; an account opted into "mail apps only with
app passwords" refuses its main password from a new network; the secret is in no log, journal record or
metric."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.rig import PASSWORD, DovecotRig, RempartProcess, free_port, ingest_leak

USERS = {"alice@example.org": "correct-horse", "bob@example.org": "tr0ub4dor"}
CONFIG = """
[dovecot]
hash_nonce = "rig-nonce"
hash_truncate_bits = 0

[app_passwords]
dovecot_db_group = "dovecot"
last_use_flush_s = 1
"""
HOME, ELSEWHERE, THIRD, FOURTH = "127.0.0.2", "127.0.9.9", "127.0.7.7", "127.0.6.6"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[RempartProcess, DovecotRig]]:
    data = tmp_path / "rempart-data"
    rempart = RempartProcess(data, CONFIG)
    rempart.port = free_port()
    dovecot = DovecotRig(
        tmp_path / "dovecot",
        rempart.port,
        USERS,
        nonce="rig-nonce",
        truncate=0,
        app_passwords_db=data / "dovecot-app-passwords.db",
    )
    # alice's current password is in a leak: her account is restricted.
    combo = tmp_path / "combo.txt"
    combo.write_text("alice@example.org:correct-horse\n")
    ingest_leak(combo, data, rempart.config_path, dovecot.root / "users")
    rempart.start()
    try:
        dovecot.start()
        yield rempart, dovecot
    finally:
        dovecot.stop()
        rempart.stop()


def cli(rempart: RempartProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rempart", "app-passwords", *args, "--url", rempart.url],
        capture_output=True,
        text=True,
        env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
    )


def create(rempart: RempartProcess, login: str, **body: object) -> dict[str, object]:
    status, doc = rempart.request("POST", f"/v1/app-passwords/{login}", {"label": "Phone", **body})
    assert status == 201, doc
    return doc


def web_sign_in(rempart: RempartProcess, login: str) -> None:
    """The website reports its second-factor sign-in, as it does before creating one."""
    body = {"login": login, "ip": "192.0.2.80", "protocol": "web", "success": True}
    status, doc = rempart.request("POST", "/v1/report", body)
    assert status == 200, doc


def test_app_passwords_open_mail_where_the_main_password_is_refused(rig, tmp_path) -> None:
    rempart, dovecot = rig
    secrets: list[str] = []

    # bob: his mail app at home works with his main password.
    assert dovecot.imap_login("bob@example.org", "tr0ub4dor", HOME, "Thunderbird") == "OK"
    bob = create(rempart, "bob@example.org", label="Bob's phone")
    secrets.append(str(bob["secret"]))

    # IMAP goes strict: the main password from a new network is refused with the message ...
    status, _ = rempart.request(
        "POST", "/v1/posture", {"protocol": "imap", "level": "strict", "reason": "campaign"}
    )
    assert status == 200
    refused = dovecot.imap_login("bob@example.org", "tr0ub4dor", ELSEWHERE)
    assert "only sign in from a device or network you have used before" in refused, refused
    # ... the app password opens IMAP, POP3 and SMTP AUTH from there.
    assert dovecot.imap_login("bob@example.org", str(bob["secret"]), ELSEWHERE) == "OK"
    assert dovecot.pop3_login("bob@example.org", str(bob["secret"]), ELSEWHERE) == "OK"
    assert dovecot.smtp_auth("bob@example.org", str(bob["secret"]), ELSEWHERE) == "OK"
    assert dovecot.smtp_auth("bob@example.org", "tr0ub4dor", HOME) == "OK"  # main still works
    # Its last use is recorded: network and time, in the user's list and the operator's CLI.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _s, doc = rempart.request("GET", "/v1/app-passwords/bob@example.org")
        if doc["app_passwords"][0]["last_network"] == ELSEWHERE:
            break
        time.sleep(0.3)
    assert doc["app_passwords"][0]["last_network"] == ELSEWHERE, doc
    listing = cli(rempart, "list", "bob@example.org")
    assert (
        listing.returncode == 0 and "Bob's phone" in listing.stdout and ELSEWHERE in listing.stdout
    )

    # alice: her password leaked, the account is restricted; her main password is refused even
    # at home, an app password created after her website sign-in opens her mail.
    refused = dovecot.imap_login("alice@example.org", "correct-horse", HOME)
    assert "appeared in a data leak" in refused, refused
    web_sign_in(rempart, "alice@example.org")
    alice = create(rempart, "alice@example.org", scopes=["imap", "pop3"])
    secrets.append(str(alice["secret"]))
    assert dovecot.imap_login("alice@example.org", str(alice["secret"]), THIRD) == "OK"
    assert dovecot.pop3_login("alice@example.org", str(alice["secret"]), THIRD) == "OK"
    # Not valid for SMTP: its scopes are imap and pop3.
    assert dovecot.smtp_auth("alice@example.org", str(alice["secret"]), THIRD) != "OK"
    # Another account's app password does not open alice's mail.
    assert dovecot.pop3_login("alice@example.org", str(bob["secret"]), THIRD) != "OK"

    # Revoked with the operator CLI: refused at once.
    revoked = cli(rempart, "revoke", "bob@example.org", str(bob["id"]))
    assert revoked.returncode == 0 and f"revoked {bob['id']}" in revoked.stdout, revoked.stderr
    assert dovecot.imap_login("bob@example.org", str(bob["secret"]), ELSEWHERE) != "OK"
    assert dovecot.pop3_login("bob@example.org", str(bob["secret"]), HOME) != "OK"

    # Expired: works until its expiry, refused from then on (Dovecot's query checks it). A fresh
    # source: Dovecot's own penalty slows the next login from an address that just failed.
    short = create(rempart, "alice@example.org", label="Kiosk", expires_in="8s")
    secrets.append(str(short["secret"]))
    assert dovecot.pop3_login("alice@example.org", str(short["secret"]), FOURTH) == "OK"
    time.sleep(max(0.0, float(short["expires"]) - time.time()) + 1.1)  # type: ignore[arg-type]
    assert dovecot.pop3_login("alice@example.org", str(short["secret"]), FOURTH) != "OK"

    # bob opts into "mail apps only with app passwords": his main password keeps his mail app
    # at home, and is refused on POP3 (normal posture) from a new network.
    opted = cli(rempart, "mail-apps-only", "bob@example.org", "on")
    assert opted.returncode == 0 and "True" in opted.stdout, opted.stderr
    assert dovecot.pop3_login("bob@example.org", "tr0ub4dor", HOME) == "OK"
    refused = dovecot.pop3_login("bob@example.org", "tr0ub4dor", "127.0.5.5")
    assert "only with an app password" in refused, refused

    counts = cli(rempart, "counts")
    assert counts.returncode == 0 and "accounts: 1" in counts.stdout, counts.stdout
    assert "mail apps only: 1" in counts.stdout

    # The secrets are in no log, journal record, metric or state file but the hash tables.
    _s, metrics = rempart.request("GET", "/metrics", password=None)
    rempart.stop()
    dovecot.stop()
    haystacks = {
        "dovecot.log": dovecot.log(),
        "rempart output": "".join(rempart.output),
        "metrics": str(metrics),
    }
    for path in (tmp_path / "rempart-data").rglob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_bytes().decode("latin-1")
    assert any("journal" in name for name in haystacks)
    for secret in secrets:
        for name, text in haystacks.items():
            assert secret not in text, f"secret found in {name}"
            assert secret.replace("-", "") not in text, f"secret found in {name}"
