"""What the nftables sets should hold: every address and network of the lists, with the
changes not yet applied.

Interval sets refuse overlapping elements, so of nested networks of one list only the widest
live one is installed (the narrower are covered anyway); when it goes (removed or expired) the
narrower ones are installed again. `dirty` keeps the elements whose installed state may be
wrong, in the order they must be applied: narrower networks before the network that
now covers them, so that a bounded batch never adds a network over an installed narrower one.

The kernel keeps an expired interval element until its garbage collection runs, and that
ghost still refuses an overlapping addition; so networks are retired by Rempart itself
`NET_MARGIN_S` before their expiry (an explicit delete, the covered networks added in the
same batch), and their kernel timeout only matters while Rempart is down. Addresses are left
to expire in the kernel.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from rempart.firewall.ruleset import SETS, Net, SetName

Key = tuple[SetName, Net]
NET_MARGIN_S = 1.0


class Wanted:
    """The desired elements of the eight sets (one writer: the sync)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.entries: dict[SetName, dict[Net, float]] = {name: {} for name in SETS}
        # interval sets: prefix length -> network numbers in use (for nesting lookups)
        self._lengths: dict[SetName, dict[int, set[int]]] = {n: {} for n in SETS if n.nets}
        self.dirty: dict[Key, None] = {}
        self._expiries: list[tuple[float, float, SetName, Net]] = []

    def __len__(self) -> int:
        return sum(map(len, self.entries.values()))

    def put(self, name: SetName, net: Net, expires: float) -> None:
        entries = self.entries[name]
        known = net in entries
        entries[net] = expires
        if expires:
            retire = expires - NET_MARGIN_S if name.nets else expires
            heapq.heappush(self._expiries, (retire, expires, name, net))
        if name.nets:
            if not known:
                self._lengths[name].setdefault(net.prefixlen, set()).add(_number(net))
            self._mark_all(name, self._narrower(name, net))
        self._mark(name, net)

    def discard(self, name: SetName, net: Net) -> None:
        entries = self.entries[name]
        if entries.pop(net, None) is None:
            return
        self._mark(name, net)
        if name.nets:
            numbers = self._lengths[name][net.prefixlen]
            numbers.discard(_number(net))
            if not numbers:
                del self._lengths[name][net.prefixlen]
            self._mark_all(name, self._narrower(name, net))

    def clear(self) -> None:
        self._reset()

    def target(self, name: SetName, net: Net, now: float) -> float | None:
        """The expiry the element should be installed with (0: permanent), None when it should
        not be installed (not listed, expired, or inside a wider live network of its set)."""
        expires = self.entries[name].get(net)
        if expires is None or (expires and expires <= now + (NET_MARGIN_S if name.nets else 0)):
            return None
        if name.nets and self._covered(name, net, now):
            return None
        return expires

    def installable(self, now: float) -> dict[SetName, dict[Net, float]]:
        """Every element to install, by set (for a full resync)."""
        out: dict[SetName, dict[Net, float]] = {}
        for name, entries in self.entries.items():
            out[name] = {
                net: expires
                for net, expires in entries.items()
                if self.target(name, net, now) is not None
            }
        return out

    def expire(self, now: float) -> int:
        """Forget the entries whose expiry has passed (networks: is less than `NET_MARGIN_S`
        away); networks they covered become dirty. Returns how many were forgotten."""
        gone = 0
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, expires, name, net = heapq.heappop(heap)
            if self.entries[name].get(net) == expires:
                self.discard(name, net)
                gone += 1
        return gone

    # --- nesting -------------------------------------------------------------------------------
    def _covered(self, name: SetName, net: Net, now: float) -> bool:
        entries, bits = self.entries[name], net.max_prefixlen
        number = _number(net)
        for length, numbers in self._lengths[name].items():
            if length < net.prefixlen:
                wider = number >> (net.prefixlen - length)
                if wider in numbers:
                    expires = entries[_network(net, wider, length, bits)]
                    if not expires or expires > now + NET_MARGIN_S:
                        return True
        return False

    def _narrower(self, name: SetName, net: Net) -> Iterator[Net]:
        """The listed networks strictly inside `net`."""
        bits, number = net.max_prefixlen, _number(net)
        for length, numbers in list(self._lengths[name].items()):
            if length <= net.prefixlen:
                continue
            shift = length - net.prefixlen
            if (1 << shift) <= len(numbers):
                base = number << shift
                found = (n for n in range(base, base + (1 << shift)) if n in numbers)
            else:
                found = (n for n in numbers if n >> shift == number)
            for inner in list(found):
                yield _network(net, inner, length, bits)

    def _mark(self, name: SetName, net: Net) -> None:
        key = (name, net)
        self.dirty.pop(key, None)  # moved to the end: applied after what was marked before
        self.dirty[key] = None

    def _mark_all(self, name: SetName, nets: Iterator[Net]) -> None:
        for net in nets:
            self._mark(name, net)


def _number(net: Net) -> int:
    return int(net.network_address) >> (net.max_prefixlen - net.prefixlen)


def _network(like: Net, number: int, length: int, bits: int) -> Net:
    return type(like)((number << (bits - length), length))
