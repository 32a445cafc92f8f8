"""End to end with a real Dovecot: IMAP/POP3 logins go through Rempart's wforce-compatible API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.rig import SPRAY_RULE, DovecotRig, RempartProcess, ingest_leak

USERS = {"alice@example.org": "correct-horse", "bob@example.org": "tr0ub4dor"}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[RempartProcess, DovecotRig]]:
    rempart = RempartProcess(tmp_path / "rempart-data", SPRAY_RULE).start()
    dovecot = DovecotRig(tmp_path / "dovecot", rempart.port, USERS)
    try:
        dovecot.start()
        yield rempart, dovecot
    finally:
        dovecot.stop()
        rempart.stop()


def test_attacker_refused_legit_user_unaffected_and_block_survives_restart(rig) -> None:
    rempart, dovecot = rig
    home, attacker = "127.0.0.2", "127.0.0.66"

    assert dovecot.imap_login("alice@example.org", "correct-horse", home, "Thunderbird") == "OK"

    # One source tries many accounts with wrong passwords: refused once past the threshold,
    # even with a correct password, and with Rempart's message.
    # Four for a rule at three: the keyed distinct count may merge two of three logins (about
    # 1 % of fresh data directories, whose sketch key is random).
    answers = [dovecot.imap_login(f"user{i}@example.org", "123456", attacker) for i in range(4)]
    assert all("Authentication failed" in a for a in answers[:3]), answers
    assert "Authentication failed" in answers[3] or "Too many" in answers[3], answers
    refused = dovecot.imap_login("bob@example.org", "tr0ub4dor", attacker)
    # The spray rule, or the shipped rule on the source's failures that four of them reach.
    assert "Too many" in refused, refused
    assert "Too many" in dovecot.pop3_login("bob@example.org", "tr0ub4dor", attacker)

    # The legitimate user on another address keeps working, over IMAP and POP3.
    assert dovecot.imap_login("alice@example.org", "correct-horse", home, "Thunderbird") == "OK"
    assert dovecot.pop3_login("alice@example.org", "correct-horse", home) == "OK"

    # Reports taught familiarity: alice's network and client are now known.
    status, explained = rempart.request(
        "POST", "/v1/explain", {"login": "alice@example.org", "ip": "127.0.0.2", "protocol": "imap"}
    )
    assert status == 200
    assert explained["signals"]["familiar_network"] is True
    assert explained["signals"]["known_account"] is True
    status, stats = rempart.command("stats")
    assert stats["report_outcomes"]["successes"] >= 3 and stats["report_outcomes"]["failures"] >= 3

    # The automatic block is on the block list and survives a restart of Rempart.
    status, bl = rempart.command("getBL")
    assert [e["ip"] for e in bl["bl_entries"] if "ip" in e] == [attacker + "/32"]
    rempart.restart()
    assert "Too many" in dovecot.imap_login("bob@example.org", "tr0ub4dor", attacker)
    assert dovecot.imap_login("bob@example.org", "tr0ub4dor", "127.0.0.3") == "OK"


def test_strict_imap_keeps_familiar_clients_and_refuses_new_networks(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.integration.rig import PASSWORD

    rempart = RempartProcess(tmp_path / "rempart-data").start()
    dovecot = DovecotRig(tmp_path / "dovecot", rempart.port, USERS)
    try:
        dovecot.start()
        home, elsewhere = "127.0.0.2", "127.0.9.9"
        assert dovecot.imap_login("alice@example.org", "correct-horse", home, "Thunderbird") == "OK"
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "rempart",
                "posture",
                "set",
                "imap",
                "strict",
                "--reason",
                "stuffing campaign",
                "--ttl",
                "2h",
                "--url",
                rempart.url,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
        )
        assert cli.returncode == 0, cli.stderr
        # The familiar client keeps working.
        assert dovecot.imap_login("alice@example.org", "correct-horse", home, "Thunderbird") == "OK"
        # The same password from a new network (even claiming the same client) is refused with
        # a message saying how to get back in.
        refused = dovecot.imap_login("alice@example.org", "correct-horse", elsewhere, "Thunderbird")
        assert "only sign in from a device or network you have used before" in refused, refused
        assert "app password" in refused and "http" not in refused
        # POP3 is untouched.
        assert dovecot.pop3_login("alice@example.org", "correct-horse", elsewhere) == "OK"
        _status, doc = rempart.request("GET", "/v1/posture")
        assert doc["posture"]["imap"]["level"] == "strict" and doc["posture"]["imap"]["manual"]
        assert doc["posture"]["pop3"]["level"] == "normal"
    finally:
        dovecot.stop()
        rempart.stop()
    # The change is journaled with who and why.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rempart",
            "journal",
            "--data-dir",
            str(tmp_path / "rempart-data"),
            "--kind",
            "posture",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"reason": "stuffing campaign"' in out and '"by": "cli:' in out


def test_exposed_account_is_restricted_alone_until_password_change(tmp_path: Path) -> None:

    from tests.integration.rig import free_port

    config = '[dovecot]\nhash_nonce = "rig-nonce"\nhash_truncate_bits = 0\n'
    data = tmp_path / "rempart-data"
    rempart = RempartProcess(data, config)
    rempart.port = free_port()
    dovecot = DovecotRig(tmp_path / "dovecot", rempart.port, USERS, nonce="rig-nonce", truncate=0)
    combo = tmp_path / "combo.txt"
    combo.write_text(
        "junk line without separator\nAlice@Example.org:correct-horse\n"
        "bob@example.org:not-his-password\nnobody@example.org:123456\n"
    )
    ingest_leak(combo, data, rempart.config_path, dovecot.root / "users")
    rempart.start()
    try:
        dovecot.start()
        refused = dovecot.imap_login("alice@example.org", "correct-horse", "127.0.0.2")
        assert "appeared in a data leak" in refused and "website" in refused, refused
        assert "http" not in refused
        assert dovecot.imap_login("bob@example.org", "tr0ub4dor", "127.0.0.3") == "OK"
        status, body = rempart.request("POST", "/v1/accounts/alice@example.org/password-changed")
        assert status == 200 and body["restriction_lifted"] is True
        dovecot.set_users({**USERS, "alice@example.org": "a-new-long-passphrase"})
        assert dovecot.imap_login("alice@example.org", "a-new-long-passphrase", "127.0.0.2") == "OK"
        # The old, leaked password stays refused even though the restriction is lifted.
        dovecot.set_users(USERS)
        refused = dovecot.imap_login("alice@example.org", "correct-horse", "127.0.0.4")
        assert "appeared in a data leak" in refused, refused
    finally:
        dovecot.stop()
        rempart.stop()
