"""End to end with a real Dovecot: IMAP/POP3 logins go through Rempart's wforce-compatible API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.rig import DovecotRig, RempartProcess

USERS = {"alice@example.org": "correct-horse", "bob@example.org": "tr0ub4dor"}
# The shipped spray rule with a lower threshold, so the test needs few slow Dovecot failures
# (Dovecot itself delays every failure by ~2 s, plus its per-IP penalty).
CONFIG = """
[[policy.rules]]
name = "spray_pattern"
when = "failed_logins(ip, '1h') >= 3 and not shared_ip"
action = "deny"
block = { scope = "ip", ttl = "1h" }
message = "Too many different accounts tried from your address. Try again later."
"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[RempartProcess, DovecotRig]]:
    rempart = RempartProcess(tmp_path / "rempart-data", CONFIG).start()
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
    answers = [dovecot.imap_login(f"user{i}@example.org", "123456", attacker) for i in range(3)]
    assert all("Authentication failed" in a for a in answers), answers
    refused = dovecot.imap_login("bob@example.org", "tr0ub4dor", attacker)
    assert "Too many different accounts tried from your address" in refused, refused
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
    assert stats["reports"]["successes"] >= 3 and stats["reports"]["failures"] >= 3

    # The automatic block is on the block list and survives a restart of Rempart.
    status, bl = rempart.command("getBL")
    assert [e["ip"] for e in bl["bl_entries"]["ips"]] == [attacker]
    rempart.restart()
    assert "Too many" in dovecot.imap_login("bob@example.org", "tr0ub4dor", attacker)
    assert dovecot.imap_login("bob@example.org", "tr0ub4dor", "127.0.0.3") == "OK"
