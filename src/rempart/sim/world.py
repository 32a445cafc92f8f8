"""A scenario made concrete for one seed: population, leak, legitimate and attack traffic.

Owns the order of construction (victims, then legitimate habits, then the leak, then attacks,
so that every event's truth is consistent) and the merged, time-ordered event stream.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from rempart.sim import attacks as attacks_mod
from rempart.sim import legit, passwords, population, useragents
from rempart.sim.attacks import Leak
from rempart.sim.events import Event, Source
from rempart.sim.population import Population
from rempart.sim.scenario import Scenario

SLICE_S = 300.0  # events are generated and sorted five minutes at a time


@dataclass
class World:
    scenario: Scenario
    seed: int
    pop: Population
    leak: Leak
    sources: list[Source]
    attack_starts: dict[str, float]
    # Logins of the exposed users (current password in the leak) who use an app password in
    # their mail clients, and of those who do not; empty unless the scenario has app passwords.
    exposed_app_password: frozenset[str] = frozenset()
    exposed_no_app_password: frozenset[str] = frozenset()

    def cohorts(self) -> dict[str, frozenset[str]]:
        """Groups of legitimate users the scorer reports apart (legacy-mail refusals)."""
        if not self.exposed_app_password:
            return {}
        return {
            "exposed_with_app_password": self.exposed_app_password,
            "exposed_without_app_password": self.exposed_no_app_password,
        }

    @property
    def duration_s(self) -> float:
        return self.scenario.duration_h * 3600

    def stream(self) -> Iterator[Event]:
        """Every event of the scenario in time order (ties broken stably by source order)."""
        t0 = 0.0
        end = self.duration_s
        while t0 < end:
            t1 = min(t0 + SLICE_S, end)
            batch: list[Event] = []
            for source in self.sources:
                batch.extend(source.window(t0, t1))
            batch.sort(key=_time)
            yield from batch
            t0 = t1


def _time(event: Event) -> float:
    return event.t


def build(
    scenario: Scenario,
    seed: int,
    pw: passwords.PasswordLists | None = None,
    agents: useragents.UserAgents | None = None,
) -> World:
    pw = pw or passwords.load()
    agents = agents or useragents.load()
    pop = population.build(scenario.population, pw, agents, seed)
    victims = attacks_mod.choose_victims(scenario.attacks, pop, pw, seed)
    duration = scenario.duration_h * 3600
    sources: list[Source] = list(legit.sources(pop, seed, duration))
    leak = attacks_mod.make_leak(scenario.leak, pop, pw, seed)
    with_app, without_app = give_app_passwords(pop, leak, scenario.leak.app_password_share, seed)
    builder = attacks_mod.AttackBuilder(pop, leak, pw, agents, seed, victims)
    starts: dict[str, float] = {}
    for index, spec in enumerate(scenario.attacks):
        sources.append(builder.build(spec, index))
        starts[spec.name] = spec.start_h * 3600
    return World(scenario, seed, pop, leak, sources, starts, with_app, without_app)


def give_app_passwords(
    pop: Population, leak: Leak, share: float, seed: int
) -> tuple[frozenset[str], frozenset[str]]:
    """`share` of the exposed users (their current password leaked) created an app password
    during the grace period; their mail clients and fetchers use it from then on. Returns the
    logins with and without one (both empty when `share` is 0)."""
    if share <= 0:
        return frozenset(), frozenset()
    rng = random.Random(f"{seed}:app-passwords")
    exposed = sorted({p.user for p in leak.valid_at(pop, 0.0)})
    chosen = set(rng.sample(exposed, round(share * len(exposed))))
    for user in sorted(chosen):
        pop.app_passwords[user] = f"{rng.getrandbits(80):020x}"
    logins = pop.logins
    return (
        frozenset(logins[u] for u in chosen),
        frozenset(logins[u] for u in exposed if u not in chosen),
    )


_PWHASH: dict[str, str] = {}


def pwhash(password: str) -> str:
    """A stable password fingerprint: equal passwords give equal hashes (sha256, 16 hex)."""
    h = _PWHASH.get(password)
    if h is None:
        h = hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if len(_PWHASH) < 2_000_000:
            _PWHASH[password] = h
    return h
