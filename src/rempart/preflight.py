"""The checks a configuration must pass beyond parsing, shared by `rempart serve` (before it
listens or touches the data directory) and `rempart config check` (alone): one function, so
`check` accepts exactly what `serve` accepts.

Parsing (types, bounds, unknown tables and keys) already happened in `rempart.config`; here
come the checks that need more than the file: the policy rules compile, the ASN table loads,
the API password file is readable, the Redis client is installed when Redis is the backend,
the nft command exists when the nftables sync is on.
Everything raises `ConfigError`; only the CLI turns it into a message and an exit code.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rempart.config import ConfigError, Settings
from rempart.engine.asn import AsnTableError
from rempart.engine.engine import Engine
from rempart.extras import MissingExtra, require
from rempart.firewall.settings import NftSettings


@dataclass(frozen=True, slots=True)
class Checked:
    """What the checks found (for `config check` to report)."""

    rules: int


def preflight(settings: Settings) -> Checked:
    """Every check `rempart serve` runs before it starts; ConfigError naming the key otherwise."""
    try:
        engine = Engine(settings)  # compiles the policy, loads the ASN table
    except AsnTableError as exc:
        raise ConfigError(str(exc).removeprefix("[asn] database: "), "asn.database") from None
    password_file = settings.auth.api_password_file
    if password_file:
        try:
            Path(password_file).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {password_file}: {exc.strerror}", "auth.api_password_file"
            ) from None
    if settings.state.backend == "redis":
        try:
            require("redis", "redis", '[state] backend = "redis"')
        except MissingExtra as exc:
            raise ConfigError(str(exc), "state.backend") from None
    if settings.server.decision_workers and settings.state.backend != "redis":
        raise ConfigError(
            'decision workers share what they learn through Redis: set [state] backend = "redis" '
            "(and redis_url), or decision_workers = 0",
            "server.decision_workers",
        )
    nft = settings.section(NftSettings)
    if nft.enabled and shutil.which(nft.command[0]) is None:
        raise ConfigError(
            f"{nft.command[0]!r} is not an executable found on PATH (Debian: apt install nftables)",
            "nftables.command",
        )
    return Checked(rules=len(engine.rules))
