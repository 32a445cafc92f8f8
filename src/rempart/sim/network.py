"""Address plans for the simulated Internet: residential ISPs, mobile CGNAT, corporate NAT, IPv6.

Owns turning integers into addresses deterministically and cheaply (no `ipaddress` on the hot
path). All ranges are plain unicast blocks chosen for the simulation; nothing is ever contacted.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def mix(a: int, b: int = 0) -> int:
    """A stateless 64-bit hash of two integers (splitmix64 finaliser); deterministic everywhere."""
    z = (a * 0x9E3779B97F4A7C15 + b * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def v4(base: int, offset: int) -> str:
    """The IPv4 address `base + offset` (base given as a 32-bit integer)."""
    n = (base + offset) & 0xFFFFFFFF
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def v4_int(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def v6(prefix48: int, subnet: int, iid: int) -> str:
    """An IPv6 address from a 48-bit prefix, a 16-bit subnet id and a 64-bit interface id."""
    p = prefix48 & 0xFFFFFFFFFFFF
    return (
        f"{p >> 32:x}:{(p >> 16) & 0xFFFF:x}:{p & 0xFFFF:x}:{subnet & 0xFFFF:x}:"
        f"{(iid >> 48) & 0xFFFF:x}:{(iid >> 32) & 0xFFFF:x}:"
        f"{(iid >> 16) & 0xFFFF:x}:{iid & 0xFFFF:x}"
    )


# Address plan (integers so that offsets are cheap).
RESIDENTIAL_V4 = v4_int("78.192.0.0")  # a /10 of residential lines, one per household
RESIDENTIAL_V6_48 = 0x2A010E0A0000  # 2a01:e0a::/32, one /48 per household (household id in bits)
MOBILE_CGNAT_V4 = v4_int("80.214.0.0")  # the public side of a mobile carrier's CGNAT
CORPORATE_V4 = v4_int("193.248.0.0")  # one NAT address per company
AGGREGATOR_V4 = v4_int("209.85.128.0")  # a large webmail's mail fetcher
INSTITUTION_V4 = v4_int("194.2.10.0")  # an institution's sending hosts
TRAVEL_V4 = v4_int("151.80.0.0")  # hotels and cafés
BOTNET_V4 = v4_int("92.128.0.0")  # compromised residential hosts, scattered over a /9
HOSTING_V4 = v4_int("45.133.0.0")  # rented servers used by single-source attackers
ATTACK_V6_48 = 0x2A0EF2000000  # an attacker's allocation: 2a0e:f200::/32 region


def household_v6(household: int, iid: int) -> str:
    """A privacy address inside the household's /64 (one /48 per household, subnet 1)."""
    return v6(RESIDENTIAL_V6_48 + household, 1, iid)
