"""Scores on scenarios small enough to count by hand."""

from __future__ import annotations

from rempart.sim import experiment
from tests.unit.sim.conftest import tiny

# 10 guesses at 2 a minute (one every 30 s) from one address, the victim's password is guess 7.
TARGETED = {
    "kind": "targeted",
    "protocol": "web",
    "start_h": 1.0,
    "duration_h": 1.0,
    "rate_per_min": 2,
    "ips": 1,
    "passwords": 10,
    "victim_rank": 7,
}


def test_targeted_attack_counted_by_hand(inputs: experiment.Inputs) -> None:
    sc = tiny(attack=[TARGETED])
    none = experiment.run_one(sc, "none", 1, inputs)
    assert none["classes"]["targeted"]["attempts"] == 10
    assert none["takeovers"] == 1 and none["takeover_attempts"] == 1
    f2b = experiment.run_one(sc, "fail2ban", 1, inputs)
    # guesses 1-5 fail (t = 0..120 s), the 5th failure bans: guesses 6-10 are dropped
    assert f2b["classes"]["targeted"]["denied"] == 5
    assert f2b["takeovers"] == 0
    assert f2b["time_to_first_deny_s"] == 150.0
    wf = experiment.run_one(sc, "wforce", 1, inputs)
    # > 3 distinct failures for IP+login → delay 3 s from guess 5 on; a delay still lets it in
    assert wf["classes"]["targeted"]["delayed"] == 6
    assert wf["takeovers"] == 1


def test_institution_sends_exactly_in_working_hours(inputs: experiment.Inputs) -> None:
    sc = tiny(
        duration_h=24.0,
        population={
            "users": 50,
            "institution_accounts": 3,
            "institution_period_s": 900,
            "imap_share": 0.0,
            "web_per_day": 0.0,
            "app_per_day": 0.0,
        },
    )
    result = experiment.run_one(sc, "none", 4, inputs)
    # 8:00-19:00 is 11 h = 44 periods of 15 min, for each of 3 accounts
    assert result["classes"] == {
        "institution": {
            "attempts": 132,
            "allowed": 132,
            "delayed": 0,
            "stepped_up": 0,
            "denied": 0,
            "failed": 0,
            "users": 3,
            "users_denied": 0,
            "users_delayed": 0,
            "users_stepped_up": 0,
        }
    }


def test_stale_client_fails_until_updated(inputs: experiment.Inputs) -> None:
    sc = tiny(
        duration_h=24.0,
        population={
            "users": 200,
            "imap_share": 1.0,
            "password_change_share": 1.0,
            "web_per_day": 0.0,
            "app_per_day": 0.0,
            "stale_min_h": 2.0,
            "stale_max_h": 2.0,
            "poll_min_s": 600,
            "poll_max_s": 600,
        },
    )
    none = experiment.run_one(sc, "none", 4, inputs)["classes"]["mail_client"]
    assert none["attempts"] == 200 * 144
    assert none["failed"] == 200 * 12  # 2 h of polls every 10 min with the old password
    f2b = experiment.run_one(sc, "fail2ban", 4, inputs)["classes"]["mail_client"]
    # one failure per 10 min never reaches 5 in 10 min from a user's own address, but a
    # CGNAT or corporate address shared by several stale clients does get banned
    assert 0 < f2b["users_denied"] < 200
