"""The simulated leak corpus as the engine sees it: a `LeakOracle` over the scenario's leak.

Owns what a defender that ingested the leak would know: which (login, pwhash) pairs leaked,
which logins appear, and, as an offline audit would find, which accounts still use the leaked
password. Used only when the scenario says the leak is known to the defender.
"""

from __future__ import annotations

from rempart.model import Attempt
from rempart.sim.attacks import Leak
from rempart.sim.population import Population
from rempart.sim.world import pwhash


class SimulatedLeaks:
    """Implements rempart.engine.oracle.LeakOracle from the scenario's leaked list."""

    def __init__(self, leak: Leak, pop: Population, seen_at: float | None = None) -> None:
        """`seen_at`: the engine time at which the defender first saw every exposure (the
        leak was ingested and the accounts asked about before the day); None: each account's
        first ask during the day starts its grace period."""
        self.pairs = {(p.login, pwhash(p.password)) for p in leak.pairs}
        self.logins = {p.login for p in leak.pairs}
        self.restricted = {p.login for p in leak.valid_at(pop, 0.0)}
        # when each exposure was first seen (grace start)
        self.seen: dict[str, float] = (
            {} if seen_at is None else dict.fromkeys(sorted(self.logins), seen_at)
        )

    def leaked_pair(self, attempt: Attempt) -> bool:
        return (attempt.login, attempt.pwhash) in self.pairs

    def login_exposed(self, login: str) -> bool:
        return login in self.logins

    def account_restricted(self, login: str) -> bool:
        return login in self.restricted

    def exposure_seen(self, login: str, now: float) -> float:
        return self.seen.setdefault(login, now)
