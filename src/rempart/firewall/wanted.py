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
import ipaddress
from collections.abc import Iterator
from itertools import count

from rempart.firewall.ruleset import SETS, Element, SetName

Key = tuple[SetName, Element]
NET_MARGIN_S = 1.0


class Wanted:
    """The desired elements of the eight sets (one writer: the sync)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.entries: dict[SetName, dict[Element, float]] = {name: {} for name in SETS}
        # interval sets: prefix length -> network numbers in use (for nesting lookups)
        self._lengths: dict[SetName, dict[int, set[int]]] = {n: {} for n in SETS if n.nets}
        self.dirty: dict[Key, None] = {}
        # (when to forget, tie-breaker, expiry, set, element)
        self._expiries: list[tuple[float, int, float, SetName, Element]] = []
        self._order = count()

    def __len__(self) -> int:
        return sum(map(len, self.entries.values()))

    def put(self, name: SetName, element: Element, expires: float) -> None:
        entries = self.entries[name]
        known = element in entries
        entries[element] = expires
        if expires:
            retire = expires - NET_MARGIN_S if name.nets else expires
            heapq.heappush(self._expiries, (retire, next(self._order), expires, name, element))
        if name.nets:
            length, number = _parse(element)
            if not known:
                self._lengths[name].setdefault(length, set()).add(number)
            self._mark_all(name, self._narrower(name, element))
        self._mark(name, element)

    def discard(self, name: SetName, element: Element) -> None:
        if self.entries[name].pop(element, None) is None:
            return
        self._mark(name, element)
        if name.nets:
            length, number = _parse(element)
            numbers = self._lengths[name][length]
            numbers.discard(number)
            if not numbers:
                del self._lengths[name][length]
            self._mark_all(name, self._narrower(name, element))

    def clear(self) -> None:
        self._reset()

    def target(self, name: SetName, element: Element, now: float) -> float | None:
        """The expiry the element should be installed with (0: permanent), None when it should
        not be installed (not listed, expired, or inside a wider live network of its set)."""
        expires = self.entries[name].get(element)
        if expires is None or (expires and expires <= now + (NET_MARGIN_S if name.nets else 0)):
            return None
        if name.nets and self._lengths[name] and self._covered(name, element, now):
            return None
        return expires

    def installable(self, now: float) -> dict[SetName, dict[Element, float]]:
        """Every element to install, by set (for a full resync)."""
        return {
            name: {
                element: expires
                for element, expires in entries.items()
                if self.target(name, element, now) is not None
            }
            for name, entries in self.entries.items()
        }

    def expire(self, now: float) -> int:
        """Forget the entries whose expiry has passed (networks: is less than `NET_MARGIN_S`
        away); networks they covered become dirty. Returns how many were forgotten."""
        gone = 0
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, _, expires, name, element = heapq.heappop(heap)
            if self.entries[name].get(element) == expires:
                self.discard(name, element)
                gone += 1
        return gone

    # --- nesting -------------------------------------------------------------------------------
    def _covered(self, name: SetName, element: Element, now: float) -> bool:
        length, number = _parse(element)
        bits = 32 if name.version == 4 else 128
        entries = self.entries[name]
        for wider_length, numbers in self._lengths[name].items():
            if wider_length < length:
                wider = number >> (length - wider_length)
                if wider in numbers:
                    expires = entries[_text(name, wider, wider_length, bits)]
                    if not expires or expires > now + NET_MARGIN_S:
                        return True
        return False

    def _narrower(self, name: SetName, element: Element) -> Iterator[Element]:
        """The listed networks strictly inside `element`."""
        length, number = _parse(element)
        bits = 32 if name.version == 4 else 128
        for inner_length, numbers in list(self._lengths[name].items()):
            if inner_length <= length:
                continue
            shift = inner_length - length
            if (1 << shift) <= len(numbers):
                base = number << shift
                found = [n for n in range(base, base + (1 << shift)) if n in numbers]
            else:
                found = [n for n in numbers if n >> shift == number]
            for inner in found:
                yield _text(name, inner, inner_length, bits)

    def _mark(self, name: SetName, element: Element) -> None:
        key = (name, element)
        self.dirty.pop(key, None)  # moved to the end: applied after what was marked before
        self.dirty[key] = None

    def _mark_all(self, name: SetName, elements: Iterator[Element]) -> None:
        for element in elements:
            self._mark(name, element)


def _parse(element: Element) -> tuple[int, int]:
    """(prefix length, network number) of a network element."""
    net = ipaddress.ip_network(element)
    return net.prefixlen, int(net.network_address) >> (net.max_prefixlen - net.prefixlen)


def _text(name: SetName, number: int, length: int, bits: int) -> Element:
    kind = ipaddress.IPv4Network if name.version == 4 else ipaddress.IPv6Network
    return str(kind((number << (bits - length), length)))
