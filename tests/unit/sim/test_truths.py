"""What the scenarios must show, on small populations: the baselines' known failures."""

from __future__ import annotations

from rempart.sim import experiment
from tests.unit.sim.conftest import tiny

BOTNET = {"kind": "botnet", "start_h": 0.5, "duration_h": 3.0, "ips": 2000, "per_ip_per_hour": 1}
STUFFING = {"kind": "stuffing", "start_h": 0.5, "duration_h": 2.0, "rate_per_min": 30}


def test_no_protection_lets_every_valid_leaked_pair_in(inputs: experiment.Inputs) -> None:
    sc = tiny(
        leak={"size_per_user": 0.5, "exist_share": 0.6, "valid_share": 0.25}, attack=[STUFFING]
    )
    result = experiment.run_one(sc, "none", 5, inputs)
    # 300 users * 0.5 = 150 pairs; 90 exist; 22 (round(22.5) = 22) still valid
    assert result["valid_leaked_pairs"] == 22
    assert result["classes"]["stuffing"]["attempts"] == 150  # whole list replayed
    assert result["takeovers"] == 22
    assert result["takeover_attempts"] == 22


def test_fail2ban_misses_the_low_and_slow_botnet(inputs: experiment.Inputs) -> None:
    sc = tiny(leak={"size_per_user": 10.0}, attack=[BOTNET])
    none = experiment.run_one(sc, "none", 2, inputs)
    f2b = experiment.run_one(sc, "fail2ban", 2, inputs)
    assert none["takeovers"] > 20
    assert f2b["takeovers"] == none["takeovers"]
    assert f2b["classes"]["botnet"]["denied"] == 0
    assert f2b["time_to_first_deny_s"] is None


def test_fail2ban_stops_single_source_stuffing(inputs: experiment.Inputs) -> None:
    sc = tiny(leak={"size_per_user": 1.0}, attack=[STUFFING])
    f2b = experiment.run_one(sc, "fail2ban", 2, inputs)
    assert f2b["classes"]["stuffing"]["denied"] >= 290
    assert f2b["time_to_first_deny_s"] is not None and f2b["time_to_first_deny_s"] <= 60


def test_closure_cuts_off_every_legit_user_of_the_protocol(inputs: experiment.Inputs) -> None:
    sc = tiny(
        population={"aggregator_share": 0.05},
        leak={"size_per_user": 1.0},
        attack=[{**STUFFING, "rate_per_min": 60}],
    )
    result = experiment.run_one(sc, "closure", 3, inputs)
    assert result["closures"], "the attack must trigger the closure"
    start = min(c["start_s"] for c in result["closures"])
    assert 1800 <= start < 1800 + 600
    for cls in ("mail_client", "aggregator"):
        counts = result["classes"][cls]
        assert counts["users"] > 0
        assert counts["users_denied"] == counts["users"], cls  # every one of them
    assert result["classes"]["user"]["denied"] == 0  # web and app stay open
    assert result["closure_user_minutes"] > 0


def test_takeovers_count_distinct_accounts_across_attacks(inputs: experiment.Inputs) -> None:
    sc = tiny(
        leak={"size_per_user": 0.5, "exist_share": 0.6, "valid_share": 0.25},
        attack=[STUFFING, {**STUFFING, "name": "again", "start_h": 2.0}],
    )
    result = experiment.run_one(sc, "none", 5, inputs)
    assert result["classes"]["stuffing"]["takeovers"] == 22
    assert result["classes"]["again"]["takeovers"] == 22
    assert result["takeovers"] == 22  # the same 22 accounts
    assert result["takeover_attempts"] == 44
