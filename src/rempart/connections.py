"""Connection limits of the HTTP server: who may open a connection, and when one is closed.

One `ConnectionGuard` per listening app. It admits or refuses each new connection (a global
ceiling kept below the process's descriptor limit, headroom in that ceiling reserved for trusted
clients such as the Dovecot hosts, a cap per client address or IPv6 /64), and a single periodic
sweep closes connections whose request headers did not arrive in time or that sat idle between
keep-alive requests too long. Connections only stamp a coarse clock that the sweep advances, so
the request path never reads the time or arms a timer. When a limit acts, the guard counts it
(Prometheus) and logs one summary line per limit and interval, never one line per connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from rempart.config import ServerSettings

log = logging.getLogger("rempart.connections")

# Descriptors kept out of the connection ceiling for everything else the process opens:
# SQLite databases and their WAL, journal segments, the leak corpus, tailed logs, Redis.
MIN_SPARE_DESCRIPTORS = 128
LOG_INTERVAL = 10.0
REFUSALS = ("ceiling", "per_client")
TIMEOUTS = ("header", "idle")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What `[server]` says; `max_connections = 0` and `trusted_reserve = 0` mean automatic."""

    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 0
    max_connections_per_client: int = 256
    trusted_clients: tuple[str, ...] = ("127.0.0.0/8", "::1")
    trusted_reserve: int = 0

    @classmethod
    def of(cls, server: ServerSettings) -> ConnectionLimits:
        """The limits `[server]` sets."""
        return cls(
            header_timeout=server.header_timeout,
            idle_timeout=server.idle_timeout,
            max_connections=server.max_connections,
            max_connections_per_client=server.max_connections_per_client,
            trusted_clients=tuple(server.trusted_clients),
            trusted_reserve=server.trusted_reserve,
        )


class Guarded(Protocol):
    """What the guard needs of a connection (`httpserver._Connection`)."""

    client_key: str
    trusted: bool
    admitted: bool
    reading_since: float
    idle_since: float
    served: bool

    def expire(self) -> None: ...


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def automatic_ceiling(descriptors: int) -> int:
    """Connections allowed under a descriptor limit: a tenth (at least 128) kept spare."""
    return max(16, descriptors - max(MIN_SPARE_DESCRIPTORS, descriptors // 10))


def parse_networks(
    entries: Iterable[str], where: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Networks from addresses or CIDR strings; ValueError naming `where` and the bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{where}: {entry!r} is not an IP address or network") from None
    return tuple(networks)


class ConnectionGuard:
    """Admission, per-client counts, timeouts and their accounting for one HTTP app."""

    def __init__(self, limits: ConnectionLimits, descriptors: int | None = None) -> None:
        self.limits = limits
        if descriptors is None:
            descriptors = raise_descriptor_limit()
        ceiling = automatic_ceiling(descriptors)
        if limits.max_connections:
            ceiling = min(limits.max_connections, ceiling)
        self.ceiling = ceiling
        reserve = limits.trusted_reserve or ceiling // 10
        self.untrusted_ceiling = max(0, ceiling - min(reserve, ceiling))
        self.trusted_networks = parse_networks(limits.trusted_clients, "trusted_clients")
        self.open = 0
        self.per_client: dict[str, int] = {}
        self.refused = dict.fromkeys(REFUSALS, 0)
        self.timed_out = dict.fromkeys(TIMEOUTS, 0)
        self.now = time.monotonic()
        self._keys: dict[str, tuple[str, bool]] = {}
        self._logged = dict.fromkeys(REFUSALS + TIMEOUTS, 0.0)
        self._unlogged = dict.fromkeys(REFUSALS + TIMEOUTS, 0)
        self._last_client = dict.fromkeys(REFUSALS, "")

    # --- admission ---------------------------------------------------------------------------
    def classify(self, address: str) -> tuple[str, bool]:
        """(client key, trusted): the key is the address, or its /64 for IPv6."""
        found = self._keys.get(address)
        if found is not None:
            return found
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            found = (address, False)  # a UNIX socket or an unknown family
        else:
            if ip.version == 6 and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            key = address if ip.version == 4 else str(ipaddress.ip_network(f"{ip}/64", False))
            found = (key, any(ip in net for net in self.trusted_networks))
        if len(self._keys) >= 65536:
            self._keys.clear()
        self._keys[address] = found
        return found

    def admit(self, conn: Guarded, address: str) -> bool:
        """Count the connection in, or say why not (the caller closes it)."""
        key, trusted = self.classify(address)
        conn.client_key, conn.trusted = key, trusted
        conn.reading_since, conn.idle_since, conn.served = 0.0, self.now, False
        if self.open >= (self.ceiling if trusted else self.untrusted_ceiling):
            self._note("ceiling", key)
            return False
        count = self.per_client.get(key, 0)
        cap = self.limits.max_connections_per_client
        if not trusted and cap and count >= cap:
            self._note("per_client", key)
            return False
        self.per_client[key] = count + 1
        self.open += 1
        conn.admitted = True
        return True

    def release(self, conn: Guarded) -> None:
        if not conn.admitted:
            return
        conn.admitted = False
        self.open -= 1
        left = self.per_client[conn.client_key] - 1
        if left:
            self.per_client[conn.client_key] = left
        else:
            del self.per_client[conn.client_key]

    # --- timeouts ----------------------------------------------------------------------------
    def sweep(self, connections: Iterable[Guarded], now: float | None = None) -> int:
        """Advance the clock and close what has waited too long; how many were closed."""
        self.now = now = time.monotonic() if now is None else now
        header_deadline = now - self.limits.header_timeout
        idle_deadline = now - self.limits.idle_timeout
        expired: list[tuple[Guarded, str]] = []
        for conn in connections:
            if conn.reading_since:
                if conn.reading_since < header_deadline:
                    expired.append((conn, "header"))
            # A connection that never sent a request has the header timeout to start one.
            elif conn.idle_since and conn.idle_since < (
                idle_deadline if conn.served else header_deadline
            ):
                expired.append((conn, "idle" if conn.served else "header"))
        for conn, why in expired:
            self.timed_out[why] += 1
            self._unlogged[why] += 1
            conn.expire()
        self._flush_log(now)
        return len(expired)

    async def run(self, connections: Iterable[Guarded]) -> None:
        """The periodic sweep, until cancelled."""
        step = max(0.05, min(1.0, self.limits.header_timeout / 4, self.limits.idle_timeout / 4))
        while True:
            await asyncio.sleep(step)
            self.sweep(connections)

    # --- accounting --------------------------------------------------------------------------
    def _note(self, limit: str, key: str) -> None:
        self.refused[limit] += 1
        self._unlogged[limit] += 1
        self._last_client[limit] = key
        if self.now - self._logged[limit] >= LOG_INTERVAL:
            self._flush_one(limit, self.now)

    def _flush_log(self, now: float) -> None:
        for kind, count in self._unlogged.items():
            if count and now - self._logged[kind] >= LOG_INTERVAL:
                self._flush_one(kind, now)

    def _flush_one(self, kind: str, now: float) -> None:
        count, self._unlogged[kind] = self._unlogged[kind], 0
        self._logged[kind] = now
        if kind == "ceiling":
            log.warning(
                "connection limit: refused %d connection(s): %d open, ceiling %d "
                "(%d for untrusted clients; the rest is kept for trusted_clients); last from %s",
                count,
                self.open,
                self.ceiling,
                self.untrusted_ceiling,
                self._last_client[kind],
            )
        elif kind == "per_client":
            log.warning(
                "connection limit: refused %d connection(s) over max_connections_per_client=%d; "
                "last from %s",
                count,
                self.limits.max_connections_per_client,
                self._last_client[kind],
            )
        else:
            # Idle keep-alive connections closing is routine; headers that never came are not.
            timeout = self.limits.header_timeout if kind == "header" else self.limits.idle_timeout
            log.log(
                logging.INFO if kind == "header" else logging.DEBUG,
                "connection limit: closed %d connection(s) by the %s timeout (%gs)",
                count,
                kind,
                timeout,
            )

    def snapshot(self) -> dict[str, object]:
        return {
            "open": self.open,
            "ceiling": self.ceiling,
            "untrusted_ceiling": self.untrusted_ceiling,
            "refused": dict(self.refused),
            "timed_out": dict(self.timed_out),
        }
