"""The attack generators keep their defining constraints."""

from __future__ import annotations

import itertools
from collections import defaultdict

from rempart.engine.keys import net_keys
from rempart.sim import experiment, world
from tests.unit.sim.conftest import tiny


def _attack_events(inputs: experiment.Inputs, attack: dict, leak: dict | None = None) -> list:
    sc = tiny(duration_h=12.0, leak=leak or {"size_per_user": 1.0}, attack=[attack])
    w = world.build(sc, 9, inputs.pw, inputs.agents)
    return [e for e in w.stream() if not e.legit]


def test_botnet_is_low_and_slow(inputs: experiment.Inputs) -> None:
    spec = {"kind": "botnet", "start_h": 1, "duration_h": 10, "ips": 100, "per_ip_per_hour": 1}
    events = _attack_events(inputs, spec)
    assert len(events) == 300  # the whole leak, 3 rounds of 100 bots
    by_ip: dict[str, list[float]] = defaultdict(list)
    for e in events:
        by_ip[e.ip].append(e.t)
    assert len(by_ip) == 100
    gaps = [b - a for ts in by_ip.values() for a, b in itertools.pairwise(ts)]
    assert min(gaps) >= 3600  # at most one try per address per hour
    assert max(e.t for e in events) > 3600 + 0.6 * 36_000  # spread over the attack
    assert max(e.t for e in events) < 3600 + 36_000


def test_botnet_caps_at_its_rate(inputs: experiment.Inputs) -> None:
    spec = {"kind": "botnet", "start_h": 1, "duration_h": 2, "ips": 100, "per_ip_per_hour": 1}
    events = _attack_events(inputs, spec)
    assert len(events) == 200  # 300 pairs, but 100 bots x 2 hours x 1 per hour


def test_ipv6_rotation_stays_in_its_prefix(inputs: experiment.Inputs) -> None:
    e64 = _attack_events(inputs, {"kind": "ipv6_64", "rate_per_min": 10, "duration_h": 1})
    assert len({e.ip for e in e64}) == len(e64)
    assert len({net_keys(e.ip).subnet for e in e64}) == 1
    e48 = _attack_events(inputs, {"kind": "ipv6_48", "rate_per_min": 10, "duration_h": 1})
    assert len({net_keys(e.ip).wide for e in e48}) == 1
    assert len({net_keys(e.ip).subnet for e in e48}) > 0.9 * len(e48)


def test_leak_shares(inputs: experiment.Inputs) -> None:
    events = _attack_events(
        inputs,
        {"kind": "stuffing", "rate_per_min": 600, "duration_h": 1},
        {"size_per_user": 2.0, "exist_share": 0.4, "valid_share": 0.1},
    )
    assert len(events) == 600
    assert sum(e.exists for e in events) == 240
    assert sum(e.correct for e in events) == 24


def test_spray_uses_the_most_popular_passwords(inputs: experiment.Inputs) -> None:
    spec = {"kind": "spray", "passwords": 3, "logins_share": 0.1, "ips": 4, "rate_per_min": 60}
    events = _attack_events(inputs, spec)
    assert len(events) == 3 * 30
    assert [e.password for e in events[::30]] == inputs.pw.attackers.top(3)
    assert len({e.ip for e in events}) == 4
