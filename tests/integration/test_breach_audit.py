"""Audit against real hashes made by Dovecot's `doveadm pw`, through the CLI (ingest → exposed)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rempart.breach.audit import split_scheme, verify
from tests.conftest import need

SCHEMES = ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID", "PLAIN"]
CLI = [sys.executable, "-c", "from rempart.breach.cli import leaks; leaks()"]


def doveadm_pw(scheme: str, password: str) -> str:
    need("dovecot", shutil.which("doveadm") is not None, "doveadm not installed (dovecot-core)")
    out = subprocess.run(
        ["doveadm", "pw", "-s", scheme, "-p", password], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.dovecot
@pytest.mark.parametrize("scheme", SCHEMES)
def test_verify_real_dovecot_hashes(scheme: str) -> None:
    stored = doveadm_pw(scheme, "s3cret-\u00e9t\u00e9")
    name, hashed = split_scheme(stored)
    assert name == scheme
    assert verify(name, hashed, "s3cret-\u00e9t\u00e9".encode())
    assert not verify(name, hashed, b"s3cret-ete")


@pytest.mark.dovecot
def test_ingest_audit_marks_only_accounts_whose_current_password_leaked(tmp_path: Path) -> None:
    users, combo = [], []
    for i, scheme in enumerate(SCHEMES):
        login = f"user{i}@example.org"
        users.append(f"{login}:{doveadm_pw(scheme, f'current-{i}')}::::::")
        combo.append(f"{login.upper()}:current-{i}" if i % 2 == 0 else f"{login}:old-{i}")
    users.append("nobody@example.org:{CRAM-MD5}abcdef::::::")
    (tmp_path / "users").write_text("\n".join(users) + "\n")
    (tmp_path / "combo.txt").write_text("\n".join([*combo, "stranger@example.org:x"]) + "\n")
    data = tmp_path / "d"
    r = subprocess.run(
        [*CLI, "ingest", str(tmp_path / "combo.txt"), "--source", "breach-2026",
         "--audit-userdb", str(tmp_path / "users"), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "audit: 3 account(s)" in r.stdout and "unsupported scheme CRAM-MD5" in r.stdout
    out = subprocess.run(
        [*CLI, "exposed", "--format", "json", "--data-dir", str(data)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = json.loads(out.stdout)
    assert [r["login"] for r in rows] == [
        "user0@example.org",
        "user2@example.org",
        "user4@example.org",
    ]
    assert {r["source"] for r in rows} == {"breach-2026"}
    assert "current" not in out.stdout
    csv_out = subprocess.run(
        [*CLI, "exposed", "--data-dir", str(data)], capture_output=True, text=True, check=True
    ).stdout
    assert csv_out.splitlines()[0] == "login,source,date,restricted"
    from rempart.breach.corpus import LeakCorpus

    c = LeakCorpus(data)
    assert c.account_restricted("user0@example.org") and not c.account_restricted(
        "user1@example.org"
    )
    assert c.exposure_seen("user0@example.org", 1000.0) == 1000.0  # its grace starts
    assert c.exposure_seen("user0@example.org", 2000.0) == 1000.0
    assert c.password_changed("User0@example.org")
    assert not c.account_restricted("user0@example.org")
    assert c.exposure_seen("user0@example.org", 3000.0) == -math.inf  # no grace after a change
    c.close()
    again = LeakCorpus(data)
    assert not again.account_restricted("user0@example.org")  # persisted
    assert again.exposure_seen("user0@example.org", 3000.0) == -math.inf
    assert again.account_restricted("user2@example.org")
    assert again.exposure_seen("user2@example.org", 3000.0) == 3000.0
    again.close()
