"""Running scenarios: one policy, or every policy side by side, in-process or over HTTP.

Owns the glue between a scenario name and results: building the world once per run (worlds
are consumed by their stream), loading the password lists and user agents once, and the
compressed-time settings shared by the two runners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rempart.sim import http_runner, passwords, policies, runner, useragents, world
from rempart.sim.scenario import Scenario


@dataclass
class Inputs:
    """Data loaded once for many runs."""

    pw: passwords.PasswordLists
    agents: useragents.UserAgents

    @classmethod
    def load(cls, password_dir: str | None = None) -> Inputs:
        return cls(passwords.load(password_dir), useragents.load())


def run_one(
    scenario: Scenario,
    policy: str,
    seed: int,
    inputs: Inputs,
    config: str | None = None,
    time_scale: float = 1.0,
) -> dict[str, Any]:
    w = world.build(scenario, seed, inputs.pw, inputs.agents)
    result = runner.run(w, policies.make(policy, w, config), time_scale)
    result["passwords"] = inputs.pw.source
    result["users"] = scenario.population.users
    return result


def compare(
    scenario: Scenario,
    seed: int,
    inputs: Inputs,
    names: tuple[str, ...] = policies.NAMES,
    config: str | None = None,
) -> list[dict[str, Any]]:
    return [run_one(scenario, name, seed, inputs, config) for name in names]


def run_http(
    scenario: Scenario,
    seed: int,
    inputs: Inputs,
    url: str,
    password: str,
    time_scale: float,
    max_requests: int = 20_000,
    max_seconds: float = 600.0,
) -> dict[str, Any]:
    """Replay the compressed scenario against a loopback `rempart serve`; bounded."""
    w = world.build(scenario, seed, inputs.pw, inputs.agents)
    client = http_runner.WforceClient(url, password)
    pacer = http_runner.WallPacer(client, max_requests, max_seconds)
    try:
        result = runner.run(w, client, time_scale, pace=pacer, kind="http")
    finally:
        client.close()
    result["runner"].update(
        requests=client.requests, http_errors=client.errors, max_lag_s=round(pacer.max_lag, 3)
    )
    result["passwords"] = inputs.pw.source
    result["users"] = scenario.population.users
    return result
