"""Rempart's engine as a simulated defender: the real `Engine`, in memory, on the virtual clock.

Owns the adapter only: it builds `Engine.in_memory(settings, leaks)` (the scenario's leak is
handed over when the scenario says the defender ingested it), drives the engine's once-a-second
timer (`Engine.tick`, which closes campaign-detector ticks) on the virtual clock, and records
the engine's posture changes so that the scorer can time them.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from rempart.config import Settings, load_settings
from rempart.engine.engine import Engine
from rempart.engine.keys import device_key, net_keys
from rempart.model import Attempt, Outcome, Verdict
from rempart.sim.defender import PostureChange
from rempart.sim.leaks import SimulatedLeaks
from rempart.sim.legit import PeriodicSource
from rempart.sim.population import MOBILE
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
        engine = Engine.in_memory(settings, leaks)
        if world.scenario.deployment.history == "week":
            warm_familiarity(engine, world)
        return cls(engine)

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


# Share of accounts Rempart has already seen succeed before the simulated day (the rest are new
# to it: a deployment's first weeks, or accounts that never log in).
KNOWN_SHARE = 0.95
HISTORY_S = 7 * 86400.0
# Users off the carrier's network at home whose phone still uses its mobile data.
MOBILE_DATA_SHARE = 0.3


def warm_familiarity(engine: Engine, world: World) -> None:
    """What a running deployment already knows when the day starts: each known account's home
    network, its carrier's CGNAT addresses, its company's NAT, the fetcher and the senders it
    uses, and its browsers and phones, learned over the past week (never the networks of the
    day's travel, nor anything of an attacker)."""
    pop = world.pop
    rng = random.Random(f"{world.seed}:history")
    fam = engine.familiarity
    learned_at = -HISTORY_S / 2
    known = [rng.random() < KNOWN_SHARE for _ in range(len(pop.logins))]

    def learn(user: int, ip: str) -> None:
        if known[user]:
            fam.learn(pop.logins[user], "n" + net_keys(ip).subnet, learned_at)

    for user in range(pop.users):
        if not known[user]:
            continue
        for hours in range(0, int(HISTORY_S // 3600), 6):
            learn(user, pop.home_ip(user, -HISTORY_S + hours * 3600))
        if pop.net[user] != MOBILE and rng.random() < MOBILE_DATA_SHARE:
            learn(user, pop.cgnat_ip(user, -HISTORY_S))  # their phone on this carrier's data
        for agent in (pop.phone_ua[user], pop.desktop_ua[user]):
            device = device_key("", agent)
            if device:
                fam.learn(pop.logins[user], "d" + device, learned_at)
    for source in world.sources:
        if isinstance(source, PeriodicSource) and source.ip_of is not None:
            for user, ip in zip(source.users, source.ip_of, strict=True):
                learn(user, ip)
