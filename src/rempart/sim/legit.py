"""Legitimate traffic: mail clients polling IMAP, web and app logins, an aggregator, an institution.

Owns the behaviour of real users over the day: polling every 5-15 minutes, a diurnal rhythm
for interactive logins, typos followed by a retry, password changes that leave an old client
failing until it is updated, travel to a hotel network, a third-party POP3 fetcher serving
thousands of accounts from a handful of addresses, and an institution's SMTP senders.
"""

from __future__ import annotations

import math
import random

from rempart.model import Protocol
from rempart.sim import network
from rempart.sim.events import Event, ListSource, Source
from rempart.sim.population import MOBILE, RESIDENTIAL, Population, typo

# Relative login activity per hour of the day (night trough, morning and evening peaks).
DIURNAL = (
    0.15, 0.08, 0.05, 0.05, 0.06, 0.12, 0.35, 0.75, 1.0, 0.95, 0.85, 0.8,
    0.85, 0.8, 0.75, 0.75, 0.8, 0.9, 1.0, 1.05, 1.0, 0.8, 0.55, 0.3,
)  # fmt: skip


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; fine for the small means used here."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class PeriodicSource:
    """Accounts that log in every `period` seconds (mail clients, fetchers, senders).

    Keeps the next due time per account and advances it window by window, so the cost is
    one step per emitted event.
    """

    def __init__(
        self,
        pop: Population,
        users: list[int],
        periods: list[float],
        phases: list[float],
        protocol: Protocol,
        source: str,
        ip_of: list[str] | None,
        stale: dict[int, tuple[float, float, str]],
        hours: tuple[float, float] | None = None,
    ) -> None:
        self.pop = pop
        self.users = users
        self.periods = periods
        self.next = list(phases)
        self.protocol = protocol
        self.source = source
        self.ip_of = ip_of  # fixed address per entry, or None for the user's home network
        self.stale = stale  # user -> (from, until, password the client keeps using)
        self.hours = hours

    def window(self, t0: float, t1: float) -> list[Event]:
        out: list[Event] = []
        pop, protocol, source, hours = self.pop, self.protocol, self.source, self.hours
        app_passwords = pop.app_passwords
        nxt, periods, users, ip_of, stale = (
            self.next,
            self.periods,
            self.users,
            self.ip_of,
            self.stale,
        )
        for j in range(len(users)):
            t = nxt[j]
            if t >= t1:
                continue
            user = users[j]
            period = periods[j]
            while t < t1:
                if hours is None or hours[0] <= (t / 3600.0) % 24 < hours[1]:
                    ip = ip_of[j] if ip_of is not None else pop.home_ip(user, t)
                    app = app_passwords.get(user) if app_passwords else None
                    if app is not None:
                        # The client was given the app password: a main-password change
                        # leaves it working.
                        used, correct = app, True
                    else:
                        current = pop.password_at(user, t)
                        used = current
                        s = stale.get(user)
                        if s is not None and s[0] <= t < s[1]:
                            used = s[2]
                        correct = used == current
                    out.append(
                        Event(
                            t,
                            pop.logins[user],
                            ip,
                            protocol,
                            used,
                            source,
                            True,
                            correct,
                            app_password=app is not None,
                        )
                    )
                t += period
            nxt[j] = t
        return out


def mail_clients(pop: Population, rng: random.Random, duration_s: float) -> PeriodicSource:
    """IMAP pollers; some change their password and the old client keeps failing for hours."""
    spec = pop.spec
    users = [i for i in range(pop.users) if rng.random() < spec.imap_share]
    periods = [rng.uniform(spec.poll_min_s, spec.poll_max_s) for _ in users]
    phases = [rng.uniform(0, p) for p in periods]
    stale: dict[int, tuple[float, float, str]] = {}
    for user in users:
        if rng.random() < spec.password_change_share and user not in pop.pinned:
            changed = rng.uniform(0.1, 0.8) * duration_s
            until = changed + rng.uniform(spec.stale_min_h, spec.stale_max_h) * 3600
            old = pop.passwords[user]
            new = f"{old}-{rng.randrange(10, 99)}"
            pop.passwords[user] = new
            pop.changes[user] = (old, changed)
            stale[user] = (changed, until, old)
    return PeriodicSource(pop, users, periods, phases, Protocol.IMAP, "mail_client", None, stale)


def aggregator(pop: Population, rng: random.Random, duration_s: float) -> PeriodicSource:
    """A third-party fetcher: POP3 for thousands of accounts from a handful of addresses."""
    spec = pop.spec
    count = round(spec.aggregator_share * pop.users)
    users = sorted(rng.sample(range(pop.users), count))
    periods = [spec.aggregator_period_s] * count
    phases = [rng.uniform(0, spec.aggregator_period_s) for _ in users]
    ips = [network.v4(network.AGGREGATOR_V4, network.mix(u) % spec.aggregator_ips) for u in users]
    stale: dict[int, tuple[float, float, str]] = {}
    for user in users:
        if rng.random() < spec.aggregator_stale_share:
            stale[user] = (0.0, math.inf, "outdated-" + pop.password_at(user, 0.0))
    return PeriodicSource(pop, users, periods, phases, Protocol.POP3, "aggregator", ips, stale)


def institution(pop: Population, rng: random.Random) -> PeriodicSource:
    """An institution's senders (e.g. teletransmission software): SMTP in working hours."""
    spec = pop.spec
    users = list(range(pop.users, pop.users + spec.institution_accounts))
    periods = [spec.institution_period_s] * len(users)
    phases = [rng.uniform(0, spec.institution_period_s) for _ in users]
    ips = [network.v4(network.INSTITUTION_V4, j % spec.institution_ips) for j in range(len(users))]
    hours = (spec.institution_start_h, spec.institution_end_h)
    return PeriodicSource(pop, users, periods, phases, Protocol.SMTP, "institution", ips, {}, hours)


def interactive(pop: Population, rng: random.Random, duration_s: float) -> ListSource:
    """Web and app logins with a diurnal rhythm, typos with a retry, and travel."""
    spec = pop.spec
    days = duration_s / 86_400
    hours_in = max(1, math.ceil(duration_s / 3600))
    weights = [DIURNAL[h % 24] for h in range(hours_in)]
    cum: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    events: list[Event] = []
    for user in range(pop.users):
        travel: tuple[float, float, str] | None = None
        if rng.random() < spec.travel_share:
            start = rng.uniform(0, duration_s)
            hotel = network.v4(network.TRAVEL_V4, rng.randrange(65_536))
            travel = (start, start + rng.uniform(2, 10) * 3600, hotel)
        for protocol, lam in ((Protocol.WEB, spec.web_per_day), (Protocol.APP, spec.app_per_day)):
            for _ in range(_poisson(rng, lam * days)):
                hour = rng.choices(range(hours_in), cum_weights=cum)[0]
                t = min(duration_s - 60, hour * 3600 + rng.uniform(0, 3600))
                if travel is not None and travel[0] <= t < travel[1]:
                    ip = travel[2]
                elif (
                    protocol is Protocol.APP and pop.net[user] == RESIDENTIAL and rng.random() < 0.5
                ):
                    ip = pop.cgnat_ip(user, t)  # the phone on mobile data
                elif protocol is Protocol.APP and pop.net[user] == MOBILE:
                    ip = pop.cgnat_ip(user, t)
                else:
                    ip = pop.home_ip(user, t)
                ua = pop.phone_ua[user] if protocol is Protocol.APP else pop.desktop_ua[user]
                device = f"{'a' if protocol is Protocol.APP else 'w'}{user}"
                login = pop.logins[user]
                current = pop.password_at(user, t)
                if rng.random() < spec.typo_rate:
                    bad = typo(current, rng)
                    events.append(
                        Event(t, login, ip, protocol, bad, "user", True, False, True, device, ua)
                    )
                    t += rng.uniform(5, 30)
                    current = pop.password_at(user, t)
                events.append(
                    Event(t, login, ip, protocol, current, "user", True, True, True, device, ua)
                )
    return ListSource(events)


def sources(pop: Population, seed: int, duration_s: float) -> list[Source]:
    """All legitimate traffic; registers password changes in `pop` (attacks see them)."""
    rng = random.Random(f"{seed}:legit")
    return [
        mail_clients(pop, rng, duration_s),
        aggregator(pop, rng, duration_s),
        institution(pop, rng),
        interactive(pop, rng, duration_s),
    ]
