"""Rempart's engine as a simulated defender: the real `Engine`, in memory, on the virtual clock.

Owns the adapter only: it builds `Engine.in_memory(settings, leaks)` (the scenario's leak is
handed over when the scenario says the defender ingested it), drives the engine's once-a-second
timer (`Engine.tick`, which closes campaign-detector ticks) on the virtual clock, and records
the engine's posture changes so that the scorer can time them.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from rempart.config import Settings, load_settings
from rempart.engine.distinct import item_hash
from rempart.engine.engine import Engine
from rempart.engine.familiarity import device_marker, network_marker
from rempart.engine.keys import device_key, net_keys
from rempart.model import Attempt, Outcome, Verdict
from rempart.sim.defender import PostureChange
from rempart.sim.leaks import SimulatedLeaks
from rempart.sim.legit import PeriodicSource
from rempart.sim.population import MOBILE
from rempart.sim.world import World
from rempart.state.checkpoint import decode, encode


class RempartEngine:
    name = "rempart"

    def __init__(
        self,
        engine: Engine,
        restart_at: float = math.inf,
        leaks: SimulatedLeaks | None = None,
    ) -> None:
        self.engine = engine
        self.posture_changes: list[PostureChange] = []
        self._postures: dict = {}
        self._next_tick = -math.inf
        # A restart (kill -9: what was saved at the last `save_seconds` boundary survives, and
        # the counters of the last `[state] checkpoint_seconds` boundary).
        self.restart_at = restart_at
        self._leaks = leaks
        self._next_save = -math.inf
        self._saved: str | None = None
        every = engine.settings.state.checkpoint_seconds
        self._checkpoint_at = math.inf
        if every > 0 and restart_at < math.inf:
            self._checkpoint_at = math.floor(restart_at / every) * every
        self._counters: bytes | None = None
        self.restored_keys = 0  # tracked keys the restarted engine took from the checkpoint
        # The engine's clock runs this far ahead of the scenario's (a learned history sits
        # before the day, at non-negative times, as in any real log).
        self.offset = 0.0

    @classmethod
    def for_world(cls, world: World, config: str | Path | None = None) -> RempartEngine:
        settings = load_settings(config) if config else Settings.default()
        deployment = world.scenario.deployment
        # The engine's clock runs this far ahead of the scenario's (a learned history sits
        # before the day, at non-negative times, as in any real log).
        offset = deployment.history_days * 86400.0 if deployment.history == "learned" else 0.0
        spec = world.scenario.leak
        seen_at = offset - spec.seen_days_before * 86400.0 if spec.seen_days_before > 0 else None
        leaks = SimulatedLeaks(world.leak, world.pop, seen_at) if spec.known_to_defender else None
        engine = Engine.in_memory(settings, leaks)
        if deployment.history == "week":
            warm_familiarity(engine, world)
        elif deployment.history == "learned":
            from rempart.sim.history import warm_from_logs

            warm_from_logs(engine, world, settings)
        restart = deployment.restart_h * 3600 if deployment.restart_h >= 0 else math.inf
        made = cls(engine, restart, leaks)
        made.offset = offset
        return made

    def _save_and_restart(self, now: float) -> None:
        """What `rempart serve` keeps: the detector state saved every `save_seconds`; lists,
        familiarity and postures written as they change; the counters as of the last
        checkpoint (only the one before the restart is taken: it is all a kill -9 leaves)."""
        if self._counters is None and now >= self._checkpoint_at:
            self._counters = b"".join(encode(self.engine.counter_state(now + self.offset)))
        campaign = self.engine.campaign
        if campaign is None:
            return
        if now >= self._next_save:
            self._saved = json.dumps(campaign.dump())
            every = self.engine.campaign_settings.save_seconds
            self._next_save = (math.floor(now / every) + 1) * every
        if now < self.restart_at:
            return
        self.restart_at = math.inf
        old = self.engine
        new = Engine.in_memory(old.settings, self._leaks)
        new.familiarity = old.familiarity
        new.blocklist, new.allowlist = old.blocklist, old.allowlist
        if self._saved is not None and new.campaign is not None:
            new.campaign.load(json.loads(self._saved))
        if self._counters is not None:  # the file format and checks `rempart serve` reads
            self.restored_keys = new.restore_counters(decode(self._counters))
        # As `rempart serve` restores them: the detector first, then each posture record
        # through the engine's one posture path (which sets the detector's level too).
        for protocol in list(old.postures):
            new.restore_posture(old.posture_record(protocol), now + self.offset)
        self.engine = new

    def decide(self, attempt: Attempt, now: float) -> Verdict:
        if self.restart_at < math.inf:
            self._save_and_restart(now)
        if now >= self._next_tick:
            # The server's one-second timer fired on every whole second since the last attempt;
            # what each firing changed dates from that second.
            first = math.floor(now)
            fired = first if self._next_tick == -math.inf else max(self._next_tick, first - 3600.0)
            while fired <= now:
                self.engine.tick(fired + self.offset)
                self._watch(fired)
                fired = math.floor(fired) + 1.0
            self._next_tick = fired
        verdict = self.engine.decide(attempt, now + self.offset)
        self._watch(now)
        return verdict

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        self.engine.report(attempt, outcome, now + self.offset)
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


def known_accounts(world: World, rng: random.Random | None = None) -> list[bool]:
    """Which accounts the deployment has seen succeed before the day (`KNOWN_SHARE` of them)."""
    rng = rng or random.Random(f"{world.seed}:history")
    return [rng.random() < KNOWN_SHARE for _ in range(len(world.pop.logins))]


def warm_familiarity(engine: Engine, world: World) -> None:
    """What a running deployment already knows when the day starts: each known account's home
    network, its carrier's CGNAT addresses, its company's NAT, the fetcher and the senders it
    uses, and its browsers and phones, learned over the past week (never the networks of the
    day's travel, nor anything of an attacker), and the fixed addresses that fetched or sent for
    many accounts all week (the aggregator becomes a learned fetcher)."""
    pop = world.pop
    rng = random.Random(f"{world.seed}:history")
    fam = engine.familiarity
    learned_at = -HISTORY_S / 2
    known = known_accounts(world, rng)

    def learn(user: int, ip: str) -> None:
        if known[user]:
            fam.learn(pop.logins[user], network_marker(net_keys(ip).subnet), learned_at)

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
                fam.learn(pop.logins[user], device_marker(device), learned_at)
    fetchers = engine.fetchers
    for source in world.sources:
        if isinstance(source, PeriodicSource) and source.ip_of is not None:
            for user, ip in zip(source.users, source.ip_of, strict=True):
                learn(user, ip)
                # The week's fetches (and sends) from these fixed addresses, as `report` counts
                # them: what makes the aggregator's addresses learned fetchers.
                account = item_hash(pop.logins[user])
                stale = user in source.stale  # an outdated password fails on every fetch
                for at in (-HISTORY_S, learned_at):
                    fetchers.observe(ip, account, not stale, False, at)
