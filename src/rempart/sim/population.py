"""The simulated user base: accounts, passwords, home networks, devices and habits.

Owns who exists and what is true about each account at a given time (its current password);
columnar lists rather than one object per user, so 100,000 users build in about a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rempart.sim import network
from rempart.sim.passwords import PasswordLists
from rempart.sim.scenario import PopulationSpec
from rempart.sim.useragents import UserAgents

RESIDENTIAL, MOBILE, CORPORATE = 0, 1, 2
DOMAIN = "example.net"


def user_login(i: int) -> str:
    return f"user{i:06d}@{DOMAIN}"


def institution_login(j: int) -> str:
    return f"practice{j:04d}@{DOMAIN}"


def typo(password: str, rng: random.Random) -> str:
    """A plausible mistyping: a doubled, dropped or swapped character (never the same string)."""
    if len(password) < 2:
        return password + "1"
    k = rng.randrange(len(password))
    choice = rng.random()
    if choice < 0.4:
        out = password[:k] + password[k] + password[k:]
    elif choice < 0.7:
        out = password[:k] + password[k + 1 :]
    else:
        out = password.swapcase() if password.swapcase() != password else password + "!"
    return out if out != password else password + "1"


@dataclass
class Population:
    """Accounts 0..n-1 are ordinary users; n.. are the institution's sending accounts."""

    spec: PopulationSpec
    logins: list[str]
    passwords: list[str]  # current password at the end of the day
    net: list[int]  # RESIDENTIAL, MOBILE or CORPORATE (users only)
    has_v6: list[bool]
    phone_ua: list[str]
    desktop_ua: list[str]
    index: dict[str, int]
    # user -> (old password, time of change); before the change the old one is current
    changes: dict[int, tuple[str, float]] = field(default_factory=dict)
    pinned: set[int] = field(default_factory=set)  # accounts whose password must not change
    # user -> the app password their mail clients and fetchers use instead of the main one
    app_passwords: dict[int, str] = field(default_factory=dict)
    # address caches (the hot path formats each address once)
    _v6: dict[tuple[int, int], str] = field(default_factory=dict, repr=False)
    _fixed: dict[int, str] = field(default_factory=dict, repr=False)
    _cgnat: list[str] = field(default_factory=list, repr=False)

    @property
    def cgnat_ips(self) -> int:
        """Public addresses of the mobile carrier's CGNAT (mobile users share them)."""
        return max(1, round(self.spec.users * self.spec.mobile / self.spec.cgnat_users_per_ip))

    @property
    def users(self) -> int:
        return self.spec.users

    def password_at(self, user: int, t: float) -> str:
        change = self.changes.get(user)
        if change is not None and t < change[1]:
            return change[0]
        return self.passwords[user]

    def home_ip(self, user: int, t: float) -> str:
        """The address a user's home network shows at time t."""
        kind = self.net[user]
        if kind == RESIDENTIAL:
            if self.has_v6[user]:
                # privacy address: a new interface id every 6 hours, phase per user
                epoch = int((t + (user % 97) * 223) // 21_600)
                key = (user, epoch)
                ip = self._v6.get(key)
                if ip is None:
                    ip = self._v6[key] = network.household_v6(user, network.mix(user, epoch))
                return ip
        elif kind == MOBILE:
            return self.cgnat_ip(user, t)
        ip = self._fixed.get(user)
        if ip is None:
            if kind == RESIDENTIAL:
                ip = network.v4(network.RESIDENTIAL_V4, user * 3 + 11)
            else:
                ip = network.v4(network.CORPORATE_V4, user // self.spec.company_size)
            self._fixed[user] = ip
        return ip

    def cgnat_ip(self, user: int, t: float) -> str:
        """CGNAT maps a subscriber to one of the carrier's public addresses, changing over time."""
        pool = self._cgnat
        if not pool:
            pool.extend(network.v4(network.MOBILE_CGNAT_V4, s) for s in range(self.cgnat_ips))
        return pool[network.mix(user, int(t // 1800)) % len(pool)]


def build(spec: PopulationSpec, pw: PasswordLists, agents: UserAgents, seed: int) -> Population:
    rng = random.Random(f"{seed}:population")
    n = spec.users
    passwords = pw.users.sample(rng, n)
    net: list[int] = []
    for r in (rng.random() for _ in range(n)):
        net.append(
            RESIDENTIAL
            if r < spec.residential
            else MOBILE
            if r < spec.residential + spec.mobile
            else CORPORATE
        )
    has_v6 = [k == RESIDENTIAL and rng.random() < spec.ipv6_share for k in net]
    phone_ua = agents.mobile.sample(rng, n)
    desktop_ua = agents.desktop.sample(rng, n)
    logins = [user_login(i) for i in range(n)]
    for j in range(spec.institution_accounts):
        logins.append(institution_login(j))
        passwords.append(f"Inst-{rng.getrandbits(64):016x}")
    index = {login: i for i, login in enumerate(logins)}
    return Population(spec, logins, passwords, net, has_v6, phone_ua, desktop_ua, index)
