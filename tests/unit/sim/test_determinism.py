"""Same seed, same run; another seed, another run."""

from __future__ import annotations

from typing import Any

from rempart.sim import experiment, world
from tests.unit.sim.conftest import tiny

SC = tiny(
    population={"aggregator_share": 0.02, "institution_accounts": 2, "password_change_share": 0.1},
    leak={"size_per_user": 1.0},
    attack=[
        {"kind": "botnet", "start_h": 0.5, "duration_h": 3, "ips": 500},
        {"kind": "spray", "start_h": 1, "duration_h": 2, "ips": 5, "rate_per_min": 20},
        {"kind": "ipv6_48", "start_h": 1, "duration_h": 1, "rate_per_min": 10},
    ],
)


def _stable(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    out["runner"] = {k: v for k, v in result["runner"].items() if k != "seconds"}
    return out


def _events(seed: int, inputs: experiment.Inputs) -> list[tuple]:
    w = world.build(SC, seed, inputs.pw, inputs.agents)
    return [
        (e.t, e.login, e.ip, e.protocol, e.password, e.source, e.user_agent) for e in w.stream()
    ]


def test_same_seed_same_events_and_scores(inputs: experiment.Inputs) -> None:
    first = _events(7, inputs)
    assert first == _events(7, inputs)
    assert first != _events(8, inputs)
    assert [e[0] for e in first] == sorted(e[0] for e in first)
    a = experiment.run_one(SC, "wforce", 7, inputs)
    b = experiment.run_one(SC, "wforce", 7, inputs)
    assert _stable(a) == _stable(b)
    c = experiment.run_one(SC, "wforce", 8, inputs)
    assert _stable(a) != _stable(c)
