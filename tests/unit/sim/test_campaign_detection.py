"""The campaign detector inside the simulator: a botnet seen within 30 s, a quiet day left alone."""

from __future__ import annotations

from rempart.sim import experiment, policies, runner, world
from rempart.sim.policies.rempart import RempartEngine
from tests.unit.sim.conftest import tiny


def test_botnet_turns_the_posture_within_30_seconds_and_hurts_no_user(
    inputs: experiment.Inputs,
) -> None:
    # 3,000 leaked pairs over 2 hours: about 25 tries a minute, one per address.
    sc = tiny(
        duration_h=3.5,
        population={"users": 3000},
        leak={"size_per_user": 1.0},
        attack=[{"kind": "botnet", "start_h": 1.5, "duration_h": 2, "ips": 12000}],
    )
    result = experiment.run_one(sc, "rempart", 1, inputs)
    # The tick closing at 30 s, applied by the next attempt.
    assert result["time_to_posture_change_s"] is not None
    assert result["time_to_posture_change_s"] <= 31.0
    assert result["time_to_strict_s"] is not None and result["time_to_strict_s"] <= 90.0
    assert result["legit"]["users_denied"] == 0 and result["legit"]["users_stepped_up"] == 0
    none = experiment.run_one(sc, "none", 1, inputs)
    assert result["takeovers"] <= max(1, none["takeovers"] // 20)


def test_a_quiet_day_never_leaves_normal(inputs: experiment.Inputs) -> None:
    sc = tiny(duration_h=8.0, population={"users": 3000, "password_change_share": 0.01})
    w = world.build(sc, 1, inputs.pw, inputs.agents)
    defender = policies.make("rempart", w)
    result = runner.run(w, defender)
    assert result["runner"]["events"] > 10_000
    assert isinstance(defender, RempartEngine) and defender.posture_changes == []
    assert result["legit"]["users_denied"] == 0
