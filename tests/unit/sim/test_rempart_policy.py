"""Rempart's real engine inside the simulator: it runs, learns, and its postures are timed."""

from __future__ import annotations

from rempart.model import Protocol
from rempart.sim import experiment, policies, world
from rempart.sim.policies.rempart import RempartEngine
from tests.unit.sim.conftest import tiny

SC = tiny(
    leak={"size_per_user": 1.0},
    attack=[{"kind": "stuffing", "start_h": 1, "duration_h": 1, "rate_per_min": 30}],
)


def test_engine_stops_single_source_stuffing(inputs: experiment.Inputs) -> None:
    none = experiment.run_one(SC, "none", 1, inputs)
    ours = experiment.run_one(SC, "rempart", 1, inputs)
    assert ours["runner"]["events"] == none["runner"]["events"]
    assert none["takeovers"] > 5
    assert ours["takeovers"] < none["takeovers"]
    assert ours["classes"]["stuffing"]["denied"] > 200


def test_posture_changes_are_recorded(inputs: experiment.Inputs) -> None:
    w = world.build(SC, 1, inputs.pw, inputs.agents)
    defender = policies.make("rempart", w)
    assert isinstance(defender, RempartEngine)
    defender.engine.set_posture(Protocol.IMAP, "strict", "test", "why", now=50.0)
    defender._watch(60.0)
    defender.engine.set_posture(Protocol.IMAP, "normal", "test", "why", now=70.0)
    defender._watch(80.0)
    assert [(p.t, p.protocol, p.posture) for p in defender.posture_changes] == [
        (60.0, Protocol.IMAP, "strict"),
        (80.0, Protocol.IMAP, "normal"),
    ]


def test_known_leak_reaches_the_engine(inputs: experiment.Inputs) -> None:
    sc = tiny(
        leak={"size_per_user": 1.0, "known_to_defender": True},
        attack=[{"kind": "stuffing", "start_h": 1, "duration_h": 1, "rate_per_min": 30}],
    )
    result = experiment.run_one(sc, "rempart", 1, inputs)
    assert result["takeovers"] == 0
    attack_codes = {k.partition(":")[2] for k in result["reasons"] if k.startswith("attack:")}
    assert attack_codes & {"leaked_pair", "account_exposed"}
