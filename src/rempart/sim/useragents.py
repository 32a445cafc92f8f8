"""User agents for simulated devices and attackers, drawn with real usage weights.

Owns reading the `fake-useragent` package's bundled data (the `sim` extra) into two weighted
pools, mobile and desktop. Nothing is fetched from the network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rempart.extras import require


@dataclass(frozen=True, slots=True)
class AgentPool:
    """User-agent strings with cumulative weights (their `percent` in fake-useragent's data)."""

    agents: tuple[str, ...]
    cum: tuple[float, ...]

    def sample(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.agents, cum_weights=self.cum, k=k)


@dataclass(frozen=True, slots=True)
class UserAgents:
    mobile: AgentPool
    desktop: AgentPool


def _pool(rows: list[tuple[str, float]]) -> AgentPool:
    agents: list[str] = []
    cum: list[float] = []
    total = 0.0
    for agent, weight in rows:
        total += max(weight, 1e-6)
        agents.append(agent)
        cum.append(total)
    return AgentPool(tuple(agents), tuple(cum))


def load() -> UserAgents:
    """Read fake-useragent's bundled browsers.jsonl; raise MissingExtra if it is absent."""
    fua_load = require("fake_useragent.utils", "sim", "the simulator").load
    mobile: list[tuple[str, float]] = []
    desktop: list[tuple[str, float]] = []
    for row in fua_load():
        kind = row.get("type")
        entry = (row["useragent"], float(row.get("percent") or 0.0))
        (desktop if kind == "desktop" else mobile).append(entry)
    return UserAgents(_pool(mobile), _pool(desktop))
