"""The block list as HAProxy can enforce it: the source addresses and networks to refuse.

`EdgeSet` mirrors the block list's address and network entries and the allow list's entries
that name a source, and keeps the set of map keys HAProxy must hold: every live block entry
minus what an allow entry covers. Allow beats block as at the login layer: a blocked address
an allow entry names (alone, or with a login or JA3 fingerprint) is left out; a blocked network
that holds allowed addresses or networks is cut into the pieces around them. Login and JA3
allow entries name no source, so the edge, which sees no login, cannot honour them.

Every change records which map keys may have changed (`take_touched`), so the sync loop pushes
only differences; expiry is swept by `expire` from a heap of deadlines. Pure and synchronous:
no I/O, one writer (the feed's loop).
"""

from __future__ import annotations

import heapq
import ipaddress
import socket
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rempart.engine.lists import ListEntry

BLOCK_KINDS = ("ip", "netmask")
# Allow kinds that name a source address (the part before "|").
ALLOW_KINDS = ("ip", "netmask", "ip_login", "ip_ja3")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


@dataclass(frozen=True, slots=True)
class Net:
    """A network as integers: comparisons without building ipaddress objects."""

    version: int
    number: int  # the network address's top `plen` bits
    plen: int

    @property
    def bits(self) -> int:
        return 32 if self.version == 4 else 128

    @classmethod
    def parse(cls, text: str) -> Net:
        if "/" not in text:  # the common case, an address: without building ipaddress objects
            try:
                return cls._host(
                    socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
                )
            except OSError:
                pass  # a zone index or another form ipaddress knows: the slow path says
        net = ipaddress.ip_network(text, strict=False)
        if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped:
            mapped = net.network_address.ipv4_mapped
            net = ipaddress.ip_network(f"{mapped}/{max(0, net.prefixlen - 96)}", strict=False)
        return cls.of(net)

    @classmethod
    def _host(cls, packed: bytes) -> Net:
        if len(packed) == 16 and packed[:12] == _V4_MAPPED:
            packed = packed[12:]
        return cls(4 if len(packed) == 4 else 6, int.from_bytes(packed), len(packed) * 8)

    @classmethod
    def of(cls, net: Network) -> Net:
        bits = net.max_prefixlen
        return cls(net.version, int(net.network_address) >> (bits - net.prefixlen), net.prefixlen)

    def contains(self, other: Net) -> bool:
        return (
            self.version == other.version
            and self.plen <= other.plen
            and other.number >> (other.plen - self.plen) == self.number
        )

    def overlaps(self, other: Net) -> bool:
        return self.contains(other) or other.contains(self)

    def network(self) -> Network:
        address = self.number << (self.bits - self.plen)
        if self.version == 4:
            return ipaddress.IPv4Network((address, self.plen))
        return ipaddress.IPv6Network((address, self.plen))

    def key(self) -> str:
        """The map key: a bare address for a host, else CIDR."""
        bits = self.bits
        packed = (self.number << (bits - self.plen)).to_bytes(bits // 8)
        address = socket.inet_ntop(socket.AF_INET if self.version == 4 else socket.AF_INET6, packed)
        return address if self.plen == bits else f"{address}/{self.plen}"


def _source(kind: str, value: str) -> str:
    return value.split("|", 1)[0] if kind in ("ip_login", "ip_ja3") else value


class EdgeSet:
    """The desired content of HAProxy's block-list map, maintained incrementally."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str], tuple[Net, float]] = {}
        self._allows: dict[tuple[str, str], tuple[Net, float]] = {}
        # version -> prefix length -> network number -> how many allow entries name it
        self._allow_index: dict[int, dict[int, Counter[int]]] = {4: {}, 6: {}}
        self._pieces: dict[tuple[str, str], tuple[str, ...]] = {}
        self._refs: dict[str, int] = {}  # map key -> how many block entries want it
        self._touched: set[str] = set()
        self._deadlines: list[tuple[float, int, str, str]] = []  # (expires, 0 block/1 allow, ...)

    # --- reading -------------------------------------------------------------------------------
    def desired(self) -> set[str]:
        """Every map key HAProxy must hold now."""
        return set(self._refs)

    def __contains__(self, key: str) -> bool:
        return key in self._refs

    def __len__(self) -> int:
        return len(self._refs)

    def take_touched(self) -> set[str]:
        """Map keys whose presence may have changed since the last call."""
        touched, self._touched = self._touched, set()
        return touched

    def give_back(self, keys: Iterable[str]) -> None:
        """Keys taken but not pushed (HAProxy unreachable): they are pushed later."""
        self._touched.update(keys)

    def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    # --- changes ---------------------------------------------------------------------------------
    def add(self, allow: bool, entry: ListEntry, now: float) -> None:
        """A list entry added or replaced (an expired one is a removal)."""
        if entry.kind not in (ALLOW_KINDS if allow else BLOCK_KINDS):
            return
        if entry.expires and entry.expires <= now:
            self.remove(allow, entry.kind, entry.value)
            return
        try:
            net = Net.parse(_source(entry.kind, entry.value))
        except ValueError:
            return  # the engine normalised it; nothing HAProxy could match
        ident = (entry.kind, entry.value)
        if entry.expires:
            heapq.heappush(self._deadlines, (entry.expires, int(allow), entry.kind, entry.value))
        if allow:
            self._drop_allow(ident)
            self._allows[ident] = (net, entry.expires)
            self._allow_index[net.version].setdefault(net.plen, Counter())[net.number] += 1
            self._recompute_overlapping(net)
        else:
            self._blocks[ident] = (net, entry.expires)
            self._recompute(ident)

    def remove(self, allow: bool, kind: str, value: str) -> None:
        ident = (kind, value)
        if allow:
            net = self._drop_allow(ident)
            if net is not None:
                self._recompute_overlapping(net)
        elif self._blocks.pop(ident, None) is not None:
            self._recompute(ident)

    def expire(self, now: float, limit: int = 20_000) -> int:
        """Drop entries whose expiry has passed, at most `limit` (the caller's loop comes back
        for the rest: a mass expiry does not hold the event loop); how many were dropped."""
        dropped = 0
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now and dropped < limit:
            expires, allow, kind, value = heapq.heappop(deadlines)
            held = (self._allows if allow else self._blocks).get((kind, value))
            if held is not None and held[1] == expires:  # not replaced since
                self.remove(bool(allow), kind, value)
                dropped += 1
        return dropped

    # --- computation -----------------------------------------------------------------------------
    def _drop_allow(self, ident: tuple[str, str]) -> Net | None:
        held = self._allows.pop(ident, None)
        if held is None:
            return None
        net = held[0]
        table = self._allow_index[net.version][net.plen]
        table[net.number] -= 1
        if table[net.number] <= 0:
            del table[net.number]
        return net

    def _recompute_overlapping(self, allow: Net) -> None:
        for ident, (net, _) in list(self._blocks.items()):
            if net.overlaps(allow):
                self._recompute(ident)

    def _allowed_whole(self, net: Net) -> bool:
        """Whether an allow entry holds all of `net`."""
        for plen, numbers in self._allow_index[net.version].items():
            if plen <= net.plen and numbers and net.number >> (net.plen - plen) in numbers:
                return True
        return False

    def _allowed_inside(self, net: Net) -> list[Net]:
        return [
            Net(net.version, number, plen)
            for plen, numbers in self._allow_index[net.version].items()
            if plen > net.plen
            for number in numbers
            if number >> (plen - net.plen) == net.number
        ]

    def pieces(self, net: Net) -> tuple[str, ...]:
        """The map keys enforcing a block of `net` under the current allow entries."""
        if self._allowed_whole(net):
            return ()
        holes = self._allowed_inside(net) if net.plen < net.bits else []
        if not holes:
            return (net.key(),)
        parts: list[Network] = [net.network()]
        for hole in holes:
            cut = hole.network()
            next_parts: list[Network] = []
            for part in parts:
                if part.overlaps(cut):
                    if not part.subnet_of(cut):  # type: ignore[arg-type]
                        next_parts.extend(part.address_exclude(cut))  # type: ignore[arg-type]
                else:
                    next_parts.append(part)
            parts = next_parts
        return tuple(sorted(Net.of(p).key() for p in parts))

    def _recompute(self, ident: tuple[str, str]) -> None:
        held = self._blocks.get(ident)
        new = self.pieces(held[0]) if held is not None else ()
        old = self._pieces.pop(ident, ())
        if new:
            self._pieces[ident] = new
        if old == new:
            return
        refs, touched = self._refs, self._touched
        for key in old:
            count = refs[key] - 1
            if count:
                refs[key] = count
            else:
                del refs[key]
                touched.add(key)
        for key in new:
            count = refs.get(key, 0)
            if not count:
                touched.add(key)
            refs[key] = count + 1
