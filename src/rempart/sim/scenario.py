"""Scenario files: TOML describing a population, a leak and the attacks, with documented defaults.

Owns parsing and validating a scenario (`load`, `parse`) and listing the scenarios shipped in
`rempart/sim/scenarios/`. Unknown keys are errors, so a typo cannot silently change a result.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

ATTACK_KINDS = (
    "stuffing",  # single source replaying the leak
    "botnet",  # low and slow: at most `per_ip_per_hour` tries per IP over many residential IPs
    "ipv6_64",  # rotating addresses inside one /64
    "ipv6_48",  # rotating /64s inside one /48
    "spray",  # the most popular passwords across many logins
    "targeted",  # one account, a dictionary in popularity order
    "cgnat_stuffing",  # stuffing from a mobile carrier's CGNAT addresses shared with users
)


@dataclass
class PopulationSpec:
    """Who the users are and how they behave; sizes are relative to `users` where possible."""

    users: int = 100_000
    residential: float = 0.55  # share of users on a residential line (rest: mobile, corporate)
    mobile: float = 0.30  # share whose home network is a mobile carrier behind CGNAT
    ipv6_share: float = 0.5  # residential households with IPv6 (privacy addresses in a /64)
    cgnat_users_per_ip: int = 1250  # mobile subscribers sharing one public IPv4 of the CGNAT
    company_size: int = 200  # users behind one corporate NAT address
    imap_share: float = 0.22  # users with a mail client polling IMAP
    poll_min_s: float = 300.0
    poll_max_s: float = 900.0
    web_per_day: float = 2.0
    app_per_day: float = 1.5
    typo_rate: float = 0.03  # share of interactive logins first mistyped
    password_change_share: float = 0.01  # pollers whose password changes, stale client failing
    stale_min_h: float = 2.0
    stale_max_h: float = 12.0
    travel_share: float = 0.02  # users logging in from a hotel network for part of the day
    aggregator_share: float = 0.02  # accounts fetched over POP3 by a third-party aggregator
    aggregator_ips: int = 4
    aggregator_period_s: float = 600.0
    aggregator_stale_share: float = 0.02  # aggregator accounts with an outdated password
    institution_accounts: int = 100  # senders that must never be cut off (SMTP)
    institution_ips: int = 3
    institution_period_s: float = 900.0
    institution_start_h: float = 8.0
    institution_end_h: float = 19.0


@dataclass
class LeakSpec:
    size_per_user: float = 0.2  # pairs in the leaked list, per user of the service
    exist_share: float = 0.45  # logins that exist at this service (30-60 %)
    valid_share: float = 0.15  # of those, still using the leaked password (7-25 %)
    known_to_defender: bool = False  # the leak was ingested by the defender before the attack
    # Days before the simulated day that the defender first saw each exposed account (the start
    # of its grace period, `[exposure] grace_days` in Rempart's config); 0: first seen during
    # the day, at the account's first attempt. Only with `known_to_defender`.
    seen_days_before: float = 0.0
    # Share of the exposed users (current password in the leak) who created an app password
    # during the grace period and put it in their mail clients and fetchers: their IMAP/POP3
    # attempts authenticate with it (`Attempt.app_password`); the attacker never has it.
    app_password_share: float = 0.0

    def __post_init__(self) -> None:
        if self.seen_days_before < 0:
            raise ValueError("[leak] seen_days_before: must be >= 0")
        if not 0.0 <= self.app_password_share <= 1.0:
            raise ValueError("[leak] app_password_share: must be between 0 and 1")


@dataclass
class AttackSpec:
    kind: str
    name: str = ""
    start_h: float = 6.0
    duration_h: float = 12.0
    protocol: str = "imap"
    rate_per_min: float = 30.0  # stuffing, ipv6, spray, targeted, cgnat_stuffing
    ips: int = 1  # botnet size, spray sources, CGNAT addresses used
    per_ip_per_hour: float = 1.0  # botnet
    passwords: int = 5  # spray: top passwords tried; targeted: dictionary length
    logins_share: float = 0.05  # spray: share of the service's users targeted
    victim_rank: int = 0  # targeted: victim's password is the attacker's n-th guess (0: natural)

    def __post_init__(self) -> None:
        if self.kind not in ATTACK_KINDS:
            raise ValueError(f"unknown attack kind {self.kind!r}; one of {', '.join(ATTACK_KINDS)}")
        if not self.name:
            self.name = self.kind


HISTORIES = (
    "week",  # the defender has run for a week: familiarity warmed, detector learning from 0:00
    "none",  # a fresh deployment: no familiarity, no baselines (the detector's priors only)
    "learned",  # fresh, after `rempart learn` on Dovecot logs of the previous days
)


@dataclass
class DeploymentSpec:
    """What the defender knows when the simulated day starts, and whether it restarts."""

    history: str = "week"
    history_days: float = 2.0  # "learned": days of Dovecot logs replayed before the start
    restart_h: float = -1.0  # restart (persisted state saved, then restored) at this hour

    def __post_init__(self) -> None:
        if self.history not in HISTORIES:
            raise ValueError(f"[deployment] history: one of {', '.join(HISTORIES)}")


@dataclass
class Scenario:
    name: str
    description: str = ""
    duration_h: float = 24.0
    population: PopulationSpec = field(default_factory=PopulationSpec)
    leak: LeakSpec = field(default_factory=LeakSpec)
    attacks: list[AttackSpec] = field(default_factory=list)
    deployment: DeploymentSpec = field(default_factory=DeploymentSpec)

    def scaled(self, users: int) -> Scenario:
        """The same scenario for a different number of users (every other size is relative)."""
        ratio = users / self.population.users
        accounts = max(1, round(self.population.institution_accounts * ratio))
        pop = dataclasses.replace(self.population, users=users, institution_accounts=accounts)
        return dataclasses.replace(self, population=pop)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    return cls(**data)


def parse(data: dict[str, Any], default_name: str = "scenario") -> Scenario:
    data = dict(data)
    population = _build(PopulationSpec, data.pop("population", {}), "[population]")
    leak = _build(LeakSpec, data.pop("leak", {}), "[leak]")
    attacks = [_build(AttackSpec, a, "[[attack]]") for a in data.pop("attack", [])]
    deployment = _build(DeploymentSpec, data.pop("deployment", {}), "[deployment]")
    data.setdefault("name", default_name)
    scenario = _build(Scenario, data, "scenario")
    scenario.population, scenario.leak, scenario.attacks = population, leak, attacks
    scenario.deployment = deployment
    return scenario


def shipped() -> list[str]:
    """Names of the scenarios shipped in the package."""
    folder = resources.files("rempart.sim") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        text = path.read_text("utf-8")
        stem = path.stem
    else:
        resource = resources.files("rempart.sim") / "scenarios" / f"{name_or_path}.toml"
        if not resource.is_file():
            raise FileNotFoundError(
                f"no scenario {name_or_path!r}: shipped ones are {', '.join(shipped())}"
            )
        text = resource.read_text("utf-8")
        stem = name_or_path
    return parse(tomllib.loads(text), stem)
