"""Who is asking: the client address behind trusted proxies, and attempts without a login.

Adapters that sit behind a reverse proxy (nginx `auth_request`) see the proxy's address on the
socket; the client's travels in a header the proxy sets. Such a header is believed only when
the peer is a configured trusted proxy, otherwise anyone could claim any address. Log lines and
proxied requests may also lack a login: they are then judged per source, under a pseudo-login
that is unique to the address (see `source_login`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from rempart.engine.keys import KeyError_, net_keys

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """A set of networks whose client-address headers are believed."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: list[Network] = []
        for item in networks:
            try:
                self.networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {item!r}") from None

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().removeprefix("::ffff:"))
        except ValueError:
            return False
        return any(ip in net for net in self.networks if net.version == ip.version)

    def client_address(self, peer: str, headers: Mapping[str, str], header: str) -> str | None:
        """The client's canonical address: `peer` itself unless it is a trusted proxy; then the
        address in `header` (for X-Forwarded-For the rightmost hop that is not a trusted proxy).

        None when a trusted proxy sent no usable address (a proxy misconfiguration)."""
        if not self.trusted(peer):
            return _canonical(peer)
        value = headers.get(header.lower(), "")
        if not value:
            return None
        if header.lower() != "x-forwarded-for":
            return _canonical(value)
        hops = [h.strip() for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusted(hop):
                return _canonical(hop)
        return _canonical(hops[0]) if hops else None


def _canonical(address: str) -> str | None:
    try:
        return net_keys(address.strip()).ip
    except KeyError_:
        return None


def source_login(ip: str) -> str:
    """The pseudo-login of an attempt whose login is unknown: unique per source address, so
    login-keyed counters never lump unrelated clients together."""
    return f"[{ip}]"
