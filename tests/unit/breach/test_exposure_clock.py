"""The start of each exposed account's grace period: the first sighting, kept across restarts."""

from __future__ import annotations

from pathlib import Path

from rempart.breach.accounts import ExposureClock

T0 = 1_800_000_000.0


def test_first_sighting_survives_a_restart(tmp_path: Path) -> None:
    clock = ExposureClock(tmp_path)
    assert clock.first_seen("a@example.org", T0) == T0
    assert clock.first_seen("a@example.org", T0 + 3600) == T0  # later asks keep the start
    assert clock.first_seen("b@example.org", T0 + 60) == T0 + 60
    clock.close()

    reopened = ExposureClock(tmp_path)
    assert reopened.first_seen("a@example.org", T0 + 86400) == T0
    assert reopened.first_seen("b@example.org", T0 + 86400) == T0 + 60
    assert reopened.first_seen("c@example.org", T0 + 86400) == T0 + 86400
    reopened.close()
