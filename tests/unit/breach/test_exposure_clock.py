"""The start of each exposed account's grace period: first sighting kept across restarts,
forgotten on a password change."""

from __future__ import annotations

from pathlib import Path

from rempart.breach.accounts import ExposureClock

T0 = 1_800_000_000.0


def test_first_sighting_survives_a_restart_and_a_change_forgets_it(tmp_path: Path) -> None:
    clock = ExposureClock(tmp_path)
    assert clock.first_seen("a@example.org", T0) == T0
    assert clock.first_seen("a@example.org", T0 + 3600) == T0  # later asks keep the start
    assert clock.first_seen("b@example.org", T0 + 60) == T0 + 60
    clock.close()

    reopened = ExposureClock(tmp_path)
    assert reopened.first_seen("a@example.org", T0 + 86400) == T0
    reopened.forget("a@example.org")  # the password was changed
    reopened.close()

    again = ExposureClock(tmp_path)
    assert again.first_seen("a@example.org", T0 + 2 * 86400) == T0 + 2 * 86400
    assert again.first_seen("b@example.org", T0 + 2 * 86400) == T0 + 60
    again.close()
