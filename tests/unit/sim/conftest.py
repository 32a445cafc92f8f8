"""Fixtures for the simulator tests: the real password lists and user agents, loaded once."""

from __future__ import annotations

from typing import Any

import pytest

from rempart.sim import experiment, scenario


@pytest.fixture(scope="session")
def inputs() -> experiment.Inputs:
    return experiment.Inputs.load()


def tiny(**overrides: Any) -> scenario.Scenario:
    """A small scenario: few users, a few hours, no aggregator/institution unless asked."""
    data: dict[str, Any] = {
        "name": overrides.pop("name", "tiny"),
        "duration_h": overrides.pop("duration_h", 4.0),
        "population": {
            "users": 300,
            "aggregator_share": 0.0,
            "institution_accounts": 0,
            "password_change_share": 0.0,
            **overrides.pop("population", {}),
        },
        "leak": overrides.pop("leak", {}),
        "attack": overrides.pop("attack", []),
        "deployment": overrides.pop("deployment", {}),
    }
    assert not overrides, overrides
    return scenario.parse(data)
