"""Attack traffic: the leaked list and the attack kinds that replay or guess against it.

Owns the leak (30-60 % of its logins exist here, 7-25 % of those still valid) and one generator
per attack kind: single-source stuffing, a low-and-slow botnet, IPv6 rotation in a /64 and
across a /48, spraying of the most popular passwords, a targeted account, and stuffing from
behind a CGNAT that legitimate users share. Every event carries the truth: was it a hit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from rempart.model import Protocol
from rempart.sim import network
from rempart.sim.events import Event, ListSource
from rempart.sim.passwords import PasswordLists
from rempart.sim.population import DOMAIN, Population
from rempart.sim.scenario import AttackSpec, LeakSpec
from rempart.sim.useragents import UserAgents

LEAK_REPLAYS = frozenset({"stuffing", "botnet", "ipv6_64", "ipv6_48", "cgnat_stuffing"})
"""Attack kinds that replay the leaked list (spray and targeted guess instead)."""


@dataclass(frozen=True, slots=True)
class LeakedPair:
    login: str
    password: str
    user: int  # -1 when the login does not exist here


@dataclass(frozen=True, slots=True)
class Leak:
    pairs: tuple[LeakedPair, ...]

    def valid_at(self, pop: Population, t: float) -> list[LeakedPair]:
        return [p for p in self.pairs if p.user >= 0 and pop.password_at(p.user, t) == p.password]


def make_leak(spec: LeakSpec, pop: Population, pw: PasswordLists, seed: int) -> Leak:
    """A leaked list with exactly round(size*exist_share*valid_share) valid pairs at t=0."""
    rng = random.Random(f"{seed}:leak")
    size = max(1, round(spec.size_per_user * pop.users))
    n_exist = min(pop.users, round(size * spec.exist_share))
    n_valid = round(n_exist * spec.valid_share)
    users = rng.sample(range(pop.users), n_exist)
    pairs: list[LeakedPair] = []
    for k, user in enumerate(users):
        current = pop.password_at(user, 0.0)
        if k < n_valid:
            pairs.append(LeakedPair(pop.logins[user], current, user))
        else:
            old = pw.users.sample(rng, 1)[0]
            if old == current:
                old = current + "!"
            pairs.append(LeakedPair(pop.logins[user], old, user))
    for k in range(size - n_exist):
        ghost = f"{pw.users.sample(rng, 1)[0][:8].lower() or 'x'}.{k}@{DOMAIN}"
        ghost = "".join(c for c in ghost if c.isalnum() or c in ".@") or f"ghost{k}@{DOMAIN}"
        if ghost in pop.index:
            ghost = f"ghost{k}@{DOMAIN}"
        pairs.append(LeakedPair(ghost, pw.users.sample(rng, 1)[0], -1))
    rng.shuffle(pairs)
    return Leak(tuple(pairs))


class AttackBuilder:
    """Builds the events of one attack; all randomness from the scenario seed and attack index."""

    def __init__(
        self,
        pop: Population,
        leak: Leak,
        pw: PasswordLists,
        agents: UserAgents,
        seed: int,
        victims: dict[str, int],
    ) -> None:
        self.pop, self.leak, self.pw, self.agents, self.seed = pop, leak, pw, agents, seed
        self.victims = victims

    def build(self, spec: AttackSpec, index: int) -> ListSource:
        rng = random.Random(f"{self.seed}:attack:{index}:{spec.kind}")
        maker = getattr(self, f"_{spec.kind}")
        return ListSource(maker(spec, rng))

    # -- helpers ---------------------------------------------------------------------------
    def _event(
        self, t: float, login: str, password: str, ip: str, spec: AttackSpec, ua: str
    ) -> Event:
        user = self.pop.index.get(login, -1)
        exists = user >= 0
        correct = exists and self.pop.password_at(user, t) == password
        protocol = Protocol.parse(spec.protocol)
        agent = ua if protocol in (Protocol.WEB, Protocol.APP) else ""
        return Event(t, login, ip, protocol, password, spec.name, False, correct, exists, "", agent)

    def _paced(self, spec: AttackSpec, count: int) -> list[float]:
        """`count` times at `rate_per_min` from the start, cut at the attack's end."""
        step = 60.0 / spec.rate_per_min
        start = spec.start_h * 3600
        end = start + spec.duration_h * 3600
        return [t for t in (start + k * step for k in range(count)) if t < end]

    def _replay(
        self,
        spec: AttackSpec,
        rng: random.Random,
        ip_for: Callable[[int, float, random.Random], str],
    ) -> list[Event]:
        pairs = list(self.leak.pairs)
        rng.shuffle(pairs)
        ua = self.agents.desktop.sample(rng, 1)[0]
        times = self._paced(spec, len(pairs))
        return [
            self._event(t, p.login, p.password, ip_for(k, t, rng), spec, ua)
            for k, (t, p) in enumerate(zip(times, pairs, strict=False))
        ]

    # -- attack kinds ----------------------------------------------------------------------
    def _stuffing(self, spec: AttackSpec, rng: random.Random) -> list[Event]:
        base = rng.randrange(65_536)
        return self._replay(
            spec, rng, lambda k, t, r: network.v4(network.HOSTING_V4, base + k % spec.ips)
        )

    def _cgnat_stuffing(self, spec: AttackSpec, rng: random.Random) -> list[Event]:
        slots = [rng.randrange(self.pop.cgnat_ips) for _ in range(spec.ips)]
        return self._replay(
            spec, rng, lambda k, t, r: network.v4(network.MOBILE_CGNAT_V4, slots[k % len(slots)])
        )

    def _ipv6_64(self, spec: AttackSpec, rng: random.Random) -> list[Event]:
        prefix = network.ATTACK_V6_48 + rng.randrange(1 << 16)
        subnet = rng.randrange(1 << 16)
        return self._replay(
            spec, rng, lambda k, t, r: network.v6(prefix, subnet, r.getrandbits(64))
        )

    def _ipv6_48(self, spec: AttackSpec, rng: random.Random) -> list[Event]:
        prefix = network.ATTACK_V6_48 + rng.randrange(1 << 16)
        return self._replay(
            spec,
            rng,
            lambda k, t, r: network.v6(prefix, r.randrange(1 << 16), r.getrandbits(64)),
        )

    def _botnet(self, spec: AttackSpec, rng: random.Random) -> list[Event]:
        """Each bot tries at most `per_ip_per_hour` times an hour, its tries evenly spaced; a
        short list is spread over the whole attack (slower still) rather than sent in a burst."""
        start = spec.start_h * 3600
        end = start + spec.duration_h * 3600
        bots = [network.v4(network.BOTNET_V4, o) for o in rng.sample(range(1 << 23), spec.ips)]
        offsets = [rng.random() for _ in bots]
        pairs = list(self.leak.pairs)
        rng.shuffle(pairs)
        rounds = max(1, math.ceil(len(pairs) / spec.ips))
        spacing = max(3600.0 / spec.per_ip_per_hour, (end - start) / rounds)
        events: list[Event] = []
        for k, pair in enumerate(pairs):
            bot, rnd = k % spec.ips, k // spec.ips
            t = start + (rnd + offsets[bot]) * spacing
            if t >= end:
                continue  # more pairs than the bots can try within the attack at this rate
            ua = self.agents.desktop.sample(rng, 1)[0]
            events.append(self._event(t, pair.login, pair.password, bots[bot], spec, ua))
        return events

    def _spray(self, spec: AttackSpec, rng: random.Random) -> list[Event]:
        """Each of the top passwords across the harvested logins, from `ips` sources."""
        count = max(1, round(spec.logins_share * self.pop.users))
        logins = [self.pop.logins[u] for u in rng.sample(range(self.pop.users), count)]
        sources = [
            network.v4(network.HOSTING_V4, 40_000 + o) for o in rng.sample(range(8192), spec.ips)
        ]
        ua = self.agents.desktop.sample(rng, 1)[0]
        pairs = [
            (login, word) for word in self.pw.attackers.top(spec.passwords) for login in logins
        ]
        times = self._paced(spec, len(pairs))
        return [
            self._event(t, login, word, sources[k % len(sources)], spec, ua)
            for k, (t, (login, word)) in enumerate(zip(times, pairs, strict=False))
        ]

    def _targeted(self, spec: AttackSpec, rng: random.Random) -> list[Event]:
        """One account, the attacker's dictionary in popularity order, from a few addresses."""
        victim = self.victims.get(spec.name, 0)
        words = self.pw.attackers.top(spec.passwords)
        sources = [
            network.v4(network.HOSTING_V4, 50_000 + o) for o in rng.sample(range(4096), spec.ips)
        ]
        ua = self.agents.desktop.sample(rng, 1)[0]
        login = self.pop.logins[victim]
        times = self._paced(spec, len(words))
        return [
            self._event(t, login, word, sources[k % len(sources)], spec, ua)
            for k, (t, word) in enumerate(zip(times, words, strict=False))
        ]


def choose_victims(
    attacks: list[AttackSpec], pop: Population, pw: PasswordLists, seed: int
) -> dict[str, int]:
    """Pick each targeted attack's victim before traffic is generated (it may set a password)."""
    victims: dict[str, int] = {}
    for index, spec in enumerate(attacks):
        if spec.kind != "targeted":
            continue
        rng = random.Random(f"{seed}:victim:{index}")
        victim = rng.randrange(pop.users)
        if spec.victim_rank:
            words = pw.attackers.top(spec.passwords)
            pop.passwords[victim] = words[min(spec.victim_rank, len(words)) - 1]
        victims[spec.name] = victim
        pop.pinned.add(victim)
    return victims
