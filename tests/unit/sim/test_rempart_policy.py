"""Rempart's real engine inside the simulator: it runs, learns, and its postures are timed."""

from __future__ import annotations

from pathlib import Path

from rempart.model import Protocol
from rempart.sim import experiment, network, policies, world
from rempart.sim.policies.rempart import RempartEngine, known_accounts
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


def test_fetcher_acting_for_exposed_users_is_not_refused(
    inputs: experiment.Inputs, tmp_path: Path
) -> None:
    """The aggregator's week of fetches made it a learned fetcher: its pulls for exposed accounts
    it fetched before keep working during the grace period (only accounts the deployment never
    saw it fetch for are refused); configured, it is refused for none. The replay is stopped."""
    sc = tiny(
        population={"users": 3000, "aggregator_share": 0.1, "aggregator_ips": 2},
        leak={"size_per_user": 1.0, "valid_share": 0.5, "known_to_defender": True},
        attack=[{"kind": "stuffing", "start_h": 1, "duration_h": 1, "rate_per_min": 60}],
    )
    w = world.build(sc, 1, inputs.pw, inputs.agents)
    exposed = {p.user for p in w.leak.valid_at(w.pop, 0.0)} & set(w.sources[1].users)
    known = known_accounts(w)
    never_seen = [u for u in exposed if not known[u]]
    assert len(exposed) >= 10  # the fetcher does act for exposed users

    ours = experiment.run_one(sc, "rempart", 1, inputs)
    assert ours["classes"]["aggregator"]["users_denied"] == len(never_seen)
    assert ours["takeovers"] == 0

    configured = tmp_path / "fetcher.toml"
    configured.write_text(f'[exposure]\nfetchers = ["{network.v4(network.AGGREGATOR_V4, 0)}/30"]\n')
    trusted = experiment.run_one(sc, "rempart", 1, inputs, str(configured))
    assert trusted["classes"]["aggregator"]["denied"] == 0
    assert trusted["takeovers"] == 0

    no_grace = tmp_path / "no-grace.toml"
    no_grace.write_text("[exposure]\ngrace_days = 0\n")
    strict = experiment.run_one(sc, "rempart", 1, inputs, str(no_grace))
    assert strict["classes"]["aggregator"]["users_denied"] == len(exposed)
