"""Block and allow lists: ip, CIDR, login, ip+login, JA3 and ip+JA3 entries with expiry and reason.

JA3 entries (a TLS client fingerprint, as wforce keeps them) match only an attempt that carries
that fingerprint: a front end sending JA3 is never blocked by IP because of them.

Lookups are in memory (dicts, one per CIDR prefix length in use); persistence belongs to the
Store, which replays the entries at start. Allow beats block: an attempt matching any allow
entry is allowed whatever block entries or rules say (documented in the README).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass, replace

from mypy_extensions import mypyc_attr

from rempart.bounds import storable_expiry
from rempart.engine.keys import KeyError_, net_keys

log = logging.getLogger(__name__)

KINDS = ("ip", "netmask", "login", "ip_login", "ja3", "ip_ja3")
MAX_JA3_CHARS = 256


# A plain Python class even when compiled: orjson serializes it, and orjson 3.13 crashes on
# a mypyc native class with a float field (tests/unit/engine/test_compiled_equivalence.py).
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class ListEntry:
    """One entry; `expires` is a UNIX time, 0 for never."""

    kind: str  # one of KINDS
    value: str  # canonical ip, network "a.b.c.d/n", login, "ip|login", ja3 or "ip|ja3"
    expires: float
    reason: str
    created: float

    def live(self, now: float) -> bool:
        return self.expires == 0 or self.expires > now


def normalise(kind: str, value: str, login: str = "") -> str:
    """Canonical value of an entry, or KeyError_ naming what is wrong."""
    if kind == "ip":
        return net_keys(value).ip
    if kind == "netmask":
        try:
            net = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise KeyError_(f"not a network: {value[:64]!r}") from None
        if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped:
            mapped = net.network_address.ipv4_mapped
            net = ipaddress.ip_network(f"{mapped}/{max(0, net.prefixlen - 96)}", strict=False)
        return str(net)
    if kind == "login":
        if not value:
            raise KeyError_("empty login")
        return value
    if kind == "ip_login":
        return f"{net_keys(value).ip}|{login}"
    if kind == "ja3":
        return _ja3(value)
    if kind == "ip_ja3":
        return f"{net_keys(value).ip}|{_ja3(login)}"
    raise KeyError_(f"unknown list kind {kind!r}")


def showable(entry: ListEntry) -> ListEntry:
    """`entry` with an expiry every page and API can show: one that no calendar holds (stored
    before expiries were bounded at the boundary, e.g. `expire_secs` of 1e300) becomes
    permanent, with a warning, so it is listed and can be removed."""
    expires = entry.expires
    kept = storable_expiry(expires if isinstance(expires, int | float) else math.nan)
    if kept is not None and kept == expires:
        return entry
    log.warning(
        "list entry %s %s: expiry %r cannot be shown; kept as %s",
        entry.kind,
        entry.value,
        expires,
        "permanent" if kept is None else "expired",
    )
    return replace(entry, expires=kept or 0.0)


def _ja3(value: str) -> str:
    value = value.strip()
    if not value:
        raise KeyError_("empty ja3")
    if len(value) > MAX_JA3_CHARS or not value.isprintable():
        raise KeyError_(f"not a ja3 fingerprint: {value[:64]!r}")
    return value


class AccessList:
    """One list (block or allow)."""

    __slots__ = ("by_ip", "by_ip_ja3", "by_ja3", "by_login", "by_pair", "nets4", "nets6")

    def __init__(self) -> None:
        self.by_ip: dict[str, ListEntry] = {}
        self.by_login: dict[str, ListEntry] = {}
        self.by_pair: dict[str, ListEntry] = {}
        self.by_ja3: dict[str, ListEntry] = {}
        self.by_ip_ja3: dict[str, ListEntry] = {}
        # prefix length -> {network as int: entry}
        self.nets4: dict[int, dict[int, ListEntry]] = {}
        self.nets6: dict[int, dict[int, ListEntry]] = {}

    def __len__(self) -> int:
        nets = sum(len(d) for d in self.nets4.values()) + sum(len(d) for d in self.nets6.values())
        exact = len(self.by_ip) + len(self.by_login) + len(self.by_pair)
        return exact + len(self.by_ja3) + len(self.by_ip_ja3) + nets

    def _exact(self, kind: str) -> dict[str, ListEntry] | None:
        if kind == "ip":
            return self.by_ip
        if kind == "login":
            return self.by_login
        if kind == "ip_login":
            return self.by_pair
        if kind == "ja3":
            return self.by_ja3
        if kind == "ip_ja3":
            return self.by_ip_ja3
        return None

    def put(self, entry: ListEntry) -> None:
        entry = showable(entry)
        exact = self._exact(entry.kind)
        if exact is not None:
            exact[entry.value] = entry
        else:
            nets, plen, number = self._net_slot(entry.value)
            nets.setdefault(plen, {})[number] = entry

    def get(self, kind: str, value: str, now: float) -> ListEntry | None:
        """The live entry of exactly this kind and canonical value, if any."""
        exact = self._exact(kind)
        if exact is not None:
            entry = exact.get(value)
        else:
            table, plen, number = self._net_slot(value)
            entry = table.get(plen, {}).get(number)
        return entry if entry is not None and entry.live(now) else None

    def remove(self, kind: str, value: str) -> ListEntry | None:
        exact = self._exact(kind)
        if exact is not None:
            return exact.pop(value, None)
        table, plen, number = self._net_slot(value)
        found = table.get(plen, {}).pop(number, None)
        if plen in table and not table[plen]:
            del table[plen]
        return found

    def _net_slot(self, value: str) -> tuple[dict[int, dict[int, ListEntry]], int, int]:
        net = ipaddress.ip_network(value, strict=False)
        table = self.nets4 if net.version == 4 else self.nets6
        bits = 32 if net.version == 4 else 128
        return table, net.prefixlen, int(net.network_address) >> (bits - net.prefixlen)

    def match(
        self, ip: str, packed: bytes, login: str, now: float, ja3: str = ""
    ) -> ListEntry | None:
        """The live entry matching this ip / login / pair / ja3, if any (expired entries are
        dropped). JA3 entries are looked at only when the attempt carries a fingerprint."""
        entry = self._first_live(((self.by_ip, ip), (self.by_login, login)), now)
        if entry is None and ja3 and self.by_ja3:
            entry = self._first_live(((self.by_ja3, ja3),), now)
        if entry is None and self.by_pair:
            entry = self._first_live(((self.by_pair, f"{ip}|{login}"),), now)
        if entry is None and ja3 and self.by_ip_ja3:
            entry = self._first_live(((self.by_ip_ja3, f"{ip}|{ja3}"),), now)
        if entry is not None:
            return entry
        nets = self.nets4 if len(packed) == 4 else self.nets6
        if nets:
            number = int.from_bytes(packed)
            bits = len(packed) * 8
            for plen, net_table in nets.items():
                entry = net_table.get(number >> (bits - plen))
                if entry is not None and entry.live(now):
                    return entry
        return None

    def match_login_as_given(self, ip: str, raw_login: str, now: float) -> ListEntry | None:
        """A login or ip+login entry naming the login exactly as the client sent it (entries
        made on the wforce API with `exact_list_logins`)."""
        if not (self.by_login or self.by_pair):
            return None
        return self._first_live(
            ((self.by_login, raw_login), (self.by_pair, f"{ip}|{raw_login}")), now
        )

    @staticmethod
    def _first_live(
        lookups: tuple[tuple[dict[str, ListEntry], str], ...], now: float
    ) -> ListEntry | None:
        for table, key in lookups:
            if table:
                entry = table.get(key)
                if entry is not None:
                    if entry.live(now):
                        return entry
                    del table[key]
        return None

    def entries(self, now: float) -> list[ListEntry]:
        exact = (self.by_ip, self.by_login, self.by_pair, self.by_ja3, self.by_ip_ja3)
        out = [e for t in exact for e in t.values()]
        out += [e for nets in (self.nets4, self.nets6) for t in nets.values() for e in t.values()]
        return [e for e in out if e.live(now)]
