"""Key derivation: canonical logins and the per-attempt keys (ip, subnets, ASN, login, ip+login, device).

Everything here runs once per attempt on the hot path, so it leans on `socket.inet_pton`
(strict, C-speed) instead of the `ipaddress` module.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass

# Re-exported: callers of canonical_login build one.
from rempart.config import LoginRules as LoginRules

MAX_LOGIN_BYTES = 1024
_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"


class KeyError_(ValueError):
    """Raised for input that cannot be turned into keys (bad IP, login too long...)."""


def canonical_login(raw: str, rules: LoginRules = LoginRules()) -> str:
    """Canonical form of a login: trimmed, lower-cased, `+tag` folded, domain aliases applied.

    >>> canonical_login("  Alice+news@Mail.Example.ORG ", LoginRules(domain_aliases={"mail.example.org": "example.org"}))
    'alice@example.org'
    """
    login = raw.strip()
    if (
        len(login) > MAX_LOGIN_BYTES
        or len(login.encode("utf-8", "surrogatepass")) > MAX_LOGIN_BYTES
    ):
        raise KeyError_(f"login longer than {MAX_LOGIN_BYTES} bytes")
    if rules.lowercase:
        login = login.lower()
    local, at, domain = login.rpartition("@")
    if not at:
        local, domain = login, rules.default_domain
        if not domain:
            return local
    if rules.fold_plus_tags and "+" in local:
        local = local.split("+", 1)[0]
    domain = rules.domain_aliases.get(domain, domain)
    return f"{local}@{domain}"


# `init=False` and a written `__init__`: in a compiled module the one `dataclass` generates stays
# interpreted (model.Attempt says more).
@dataclass(slots=True, eq=True, init=False)
class NetKeys:
    """The network keys of one source address."""

    ip: str  # canonical text form
    v6: bool
    subnet: str  # IPv4 /24 or IPv6 /64, the "network" used for familiarity
    wide: str  # IPv4 /16 or IPv6 /48
    packed: bytes

    def __init__(self, ip: str, v6: bool, subnet: str, wide: str, packed: bytes) -> None:
        self.ip = ip
        self.v6 = v6
        self.subnet = subnet
        self.wide = wide
        self.packed = packed


NET_CACHE_SIZE = 16384
_net_cache: dict[str, NetKeys] = {}


def net_keys(address: str) -> NetKeys:
    """Derive the network keys of an address; IPv4-mapped IPv6 is treated as IPv4.

    Raises KeyError_ for anything that is not a literal IPv4 or IPv6 address. Results are
    cached (the same source sends allow, allow and report in a row); treat them as read-only.
    The cache is a plain dict emptied when full, not an LRU: with sources that rarely come
    back (a botnet, a cluster's peer reports) an LRU only pays to order and evict entries
    that are never asked for again, and a large one is a table of cache misses.
    """
    found = _net_cache.get(address)
    if found is not None:
        return found
    keys = _derive(address)
    if len(_net_cache) >= NET_CACHE_SIZE:
        _net_cache.clear()
    _net_cache[address] = keys
    return keys


def _derive(address: str) -> NetKeys:
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:  # zone index, meaningless off-link
        text = text.split("%", 1)[0]
    try:
        if ":" not in text:
            packed = socket.inet_pton(socket.AF_INET, text)
            # inet_pton takes only the canonical dotted quad (no leading zeros, four parts),
            # so the text is the address's canonical form and its prefixes are string cuts.
            head = text[: text.rindex(".")]
            return NetKeys(
                ip=text,
                v6=False,
                subnet="4:" + head,
                wide="4w:" + head[: head.rindex(".")],
                packed=packed,
            )
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        raise KeyError_(f"not an IP address: {address[:64]!r}") from None
    if packed[:12] == _MAPPED_PREFIX:
        return _v4(packed[12:])
    ip = socket.inet_ntop(socket.AF_INET6, packed)
    return NetKeys(
        ip=ip,
        v6=True,
        subnet="6:" + packed[:8].hex(),
        wide="6w:" + packed[:6].hex(),
        packed=packed,
    )


def _v4(packed: bytes) -> NetKeys:
    a, b, c, d = packed
    return NetKeys(
        ip=f"{a}.{b}.{c}.{d}",
        v6=False,
        subnet=f"4:{a}.{b}.{c}",
        wide=f"4w:{a}.{b}",
        packed=packed,
    )


def subnet_label(subnet_key: str) -> str:
    """Human form of a subnet key: `192.0.2.0/24` or `2001:db8:0:1::/64`."""
    family, _, body = subnet_key.partition(":")
    if family == "4":
        return f"{body}.0/24"
    if family == "4w":
        return f"{body}.0.0/16"
    raw = bytes.fromhex(body)
    bits = len(raw) * 8
    address = socket.inet_ntop(socket.AF_INET6, raw.ljust(16, b"\0"))
    return f"{address}/{bits}"


def device_key(device_id: str, user_agent: str) -> str:
    """A short stable key for a client/device: its id, else its user agent; '' when neither."""
    source = device_id or user_agent
    if not source:
        return ""
    return hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
