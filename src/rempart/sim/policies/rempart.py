"""Rempart's engine as a simulated defender: the real `Engine`, in memory, on the virtual clock.

Owns the adapter only: it builds `Engine.in_memory(settings, leaks)` (the scenario's leak is
handed over when the scenario says the defender ingested it), drives the engine's once-a-second
timer (`Engine.tick`, which closes campaign-detector ticks) on the virtual clock, and records
the engine's posture changes so that the scorer can time them.
"""

from __future__ import annotations

import math
from pathlib import Path

from rempart.config import Settings, load_settings
from rempart.engine.engine import Engine
from rempart.model import Attempt, Outcome, Verdict
from rempart.sim.defender import PostureChange
from rempart.sim.leaks import SimulatedLeaks
from rempart.sim.world import World


class RempartEngine:
    name = "rempart"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.posture_changes: list[PostureChange] = []
        self._postures: dict = {}
        self._next_tick = -math.inf

    @classmethod
    def for_world(cls, world: World, config: str | Path | None = None) -> RempartEngine:
        settings = load_settings(config) if config else Settings.default()
        leaks = (
            SimulatedLeaks(world.leak, world.pop) if world.scenario.leak.known_to_defender else None
        )
        return cls(Engine.in_memory(settings, leaks))

    def decide(self, attempt: Attempt, now: float) -> Verdict:
        if now >= self._next_tick:  # what the server's one-second timer does
            self.engine.tick(now)
            self._next_tick = math.floor(now) + 1.0
        verdict = self.engine.decide(attempt, now)
        self._watch(now)
        return verdict

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        self.engine.report(attempt, outcome, now)
        self._watch(now)

    def _watch(self, now: float) -> None:
        postures = self.engine.postures
        if postures != self._postures:
            for protocol in set(postures) | set(self._postures):
                level = postures.get(protocol, "normal")
                if level != self._postures.get(protocol, "normal"):
                    self.posture_changes.append(PostureChange(now, protocol, level))
            self._postures = dict(postures)
