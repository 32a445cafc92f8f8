"""Familiarity: the networks and devices each account has logged in from successfully.

Each account keeps at most `max_networks` networks (IPv4 /24, IPv6 /64) and `max_devices`
devices with the time of the last success; an entry stops counting as familiar `ttl` seconds
after that (decay by age), and the oldest is forgotten first when the account is full.
Persistence is the Store's job: `learn` returns True when an entry is new or was refreshed after
`persist_every` seconds, so the caller writes it out without writing on every login.
"""

from __future__ import annotations

import enum


class MarkerKind(enum.StrEnum):
    """What a familiarity marker names; the value is its first character in stored markers."""

    NETWORK = "n"
    DEVICE = "d"


_NETWORK = MarkerKind.NETWORK.value


def network_marker(subnet: str) -> str:
    """The marker of a network (the subnet key from `engine.keys.net_keys`)."""
    return MarkerKind.NETWORK + subnet


def device_marker(device: str) -> str:
    return MarkerKind.DEVICE + device


class Familiarity:
    __slots__ = ("accounts", "max_devices", "max_networks", "persist_every", "ttl")

    def __init__(
        self, ttl: float, max_networks: int, max_devices: int, persist_every: float = 3600.0
    ) -> None:
        self.ttl = ttl
        self.max_networks = max_networks
        self.max_devices = max_devices
        self.persist_every = persist_every
        # login -> {network_marker(subnet) | device_marker(device): last success (UNIX time)}
        self.accounts: dict[str, dict[str, float]] = {}

    def known_account(self, login: str) -> bool:
        return login in self.accounts

    def familiar(self, login: str, marker: str, now: float) -> bool:
        seen = self.accounts.get(login)
        if not seen:
            return False
        last = seen.get(marker)
        return last is not None and now - last <= self.ttl

    def learn(self, login: str, marker: str, now: float) -> bool:
        """Record a success from `marker`; True when the change is worth persisting."""
        seen = self.accounts.get(login)
        if seen is None:
            seen = self.accounts[login] = {}
        last = seen.get(marker)
        seen[marker] = now
        if last is None:
            # Neither kind can be over its limit while the account holds fewer entries in all.
            if len(seen) > self.max_networks or len(seen) > self.max_devices:
                self._trim(seen, marker[0])
            return True
        return now - last >= self.persist_every

    def restore(self, login: str, marker: str, last: float) -> None:
        self.accounts.setdefault(login, {})[marker] = last

    def _trim(self, seen: dict[str, float], kind: str) -> None:
        """Forget the oldest entries of `kind` (a marker's first character) beyond its limit."""
        limit = self.max_networks if kind == _NETWORK else self.max_devices
        same = [m for m in seen if m[0] == kind]
        over = len(same) - limit
        if over == 1:  # the usual case: one new entry in a full account
            del seen[min(same, key=seen.__getitem__)]
        elif over > 1:
            for marker in sorted(same, key=seen.__getitem__)[:over]:
                del seen[marker]
