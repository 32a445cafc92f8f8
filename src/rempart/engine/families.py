"""Key families: what the engine counts per attempt, declared once.

Every attempt is keyed under each family (its IP, its subnet, its login, ...). The table says, per
family, the one-character prefix of its keys in the engine's state, how many counter kinds its
ring holds, which distinct sketch it keeps of failing peers, and whether it keeps sketches of
successful users. The engine, the signals and the policy compiler read this table; adding a
family is one row here (plus, where it comes from, its derivation in `Engine._derive_keys`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from rempart.engine.windows import KINDS


class KeyFamily(enum.IntEnum):
    """Key families, in the order of an attempt's key tuple (the value is the index)."""

    IP = 0
    SUBNET = 1  # IPv4 /24, IPv6 /64
    WIDE = 2  # IPv6 /48 (none for IPv4: a /16 is too coarse to judge)
    LOGIN = 3
    IP_LOGIN = 4
    DEVICE = 5
    ASN = 6

    @property
    def spec(self) -> FamilySpec:
        return FAMILY_SPECS[self]

    @property
    def rule_name(self) -> str:
        """The name policy rules use: `failures(ip_login, 10m)`."""
        return self.name.lower()


class Peers(enum.Enum):
    """What a family's distinct sketch of failing peers holds."""

    LOGINS = "logins"  # failing logins seen from a source
    IPS = "ips"  # failing IPs seen for a login


@dataclass(frozen=True, slots=True)
class FamilySpec:
    prefix: str
    ring_kinds: int  # 1: failures only (the ring holds a single counter)
    peers: Peers | None
    users: bool  # sketches of successful and established users (shared-source detection)
    # Derived flags, plain attributes because the report loop reads them for every key (an
    # enum member or a property costs several times an attribute read there).
    failures_only: bool = field(init=False)
    peer_ips: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failures_only", self.ring_kinds == 1)
        object.__setattr__(self, "peer_ips", self.peers is Peers.IPS)


FAMILY_SPECS: dict[KeyFamily, FamilySpec] = {
    KeyFamily.IP: FamilySpec("i", KINDS, Peers.LOGINS, users=True),
    KeyFamily.SUBNET: FamilySpec("n", KINDS, Peers.LOGINS, users=True),
    KeyFamily.WIDE: FamilySpec("w", KINDS, Peers.LOGINS, users=False),
    KeyFamily.LOGIN: FamilySpec("l", KINDS, Peers.IPS, users=False),
    # The most numerous key: rules only read its failures.
    KeyFamily.IP_LOGIN: FamilySpec("p", 1, None, users=False),
    KeyFamily.DEVICE: FamilySpec("d", KINDS, None, users=False),
    KeyFamily.ASN: FamilySpec("a", KINDS, Peers.LOGINS, users=False),
}

# The table in key-tuple order, for loops on the hot path.
SPECS: Final[tuple[FamilySpec, ...]] = tuple(FAMILY_SPECS[f] for f in KeyFamily)
FAMILY_OF_PREFIX: dict[str, KeyFamily] = {s.prefix: f for f, s in FAMILY_SPECS.items()}


def rule_families(*, peers: Peers | None = None, users: bool = False) -> dict[str, int]:
    """Rule name -> family index of the families a rule function may take."""
    return {
        f.rule_name: int(f)
        for f, s in FAMILY_SPECS.items()
        if (peers is None or s.peers is peers) and (not users or s.users)
    }


def family_key(family: KeyFamily, body: str) -> str:
    """The engine's state key of `body` (an IP, a login, "ip|login", ...) in `family`."""
    return FAMILY_SPECS[family].prefix + body


def ip_login_body(ip: str, login: str) -> str:
    return ip + "|" + login
