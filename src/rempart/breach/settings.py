"""Typed settings of the leak corpus, read from the TOML's `[leaks]`, `[dovecot]` and `[logins]`.

Owns the defaults (documented on each field) and their validation; nothing else reads those tables
for the breach package. A missing file or table means the defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rempart.engine.keys import LoginRules


class SettingsError(ValueError):
    """A setting has the wrong type or an impossible value; the message names it."""


@dataclass(frozen=True, slots=True)
class DovecotHash:
    """Dovecot's `auth_policy_hash_nonce` / `auth_policy_hash_truncate`, to match its `pwhash`.

    `truncate_bits` 0 means the full 256-bit digest. With the Dovecot default (12 bits) one pwhash
    in 4096 matches a leaked pair of the same login by chance, so set 0 or >= 64 in Dovecot and here.
    """

    nonce: str = ""
    truncate_bits: int = 12

    @property
    def enabled(self) -> bool:
        return bool(self.nonce)

    @property
    def effective_bits(self) -> int:
        """How many leading digest bits Dovecot sends (256 when truncation is off)."""
        return 256 if self.truncate_bits == 0 else self.truncate_bits


@dataclass(frozen=True, slots=True)
class LeakSettings:
    """The `[leaks]` table."""

    popular_top_n: int = 100_000
    """How many of the shipped popular passwords (most frequent first) count as popular."""
    min_strength: int = 3
    """zxcvbn score (0-4) a new password needs for password-check to call it acceptable."""
    chunk_lines: int = 1_000_000
    """Lines per ingest checkpoint: a kill -9 loses at most this much work."""
    audit_workers: int = 0
    """Processes that verify leaked passwords against the user store; 0 = one per core."""
    max_password_bytes: int = 256
    """Longer passwords are rejected as junk lines."""


@dataclass(frozen=True, slots=True)
class BreachSettings:
    """Everything the breach package reads from the configuration."""

    leaks: LeakSettings = field(default_factory=LeakSettings)
    dovecot: DovecotHash = field(default_factory=DovecotHash)
    logins: LoginRules = field(default_factory=LoginRules)


def load_settings(path: str | os.PathLike[str] | None) -> BreachSettings:
    """Read the breach settings from a TOML file; `None` gives the defaults."""
    if path is None:
        return BreachSettings()
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config {p} is not valid TOML: {exc}") from None
    return settings_from_mapping(data)


def settings_from_mapping(data: dict[str, Any]) -> BreachSettings:
    """Build the settings from an already parsed TOML document."""
    lk = _table(data, "leaks")
    dv = _table(data, "dovecot")
    lg = _table(data, "logins")
    d_leaks = LeakSettings()
    leaks = LeakSettings(
        popular_top_n=_get(lk, "leaks", "popular_top_n", int, d_leaks.popular_top_n),
        min_strength=_get(lk, "leaks", "min_strength", int, d_leaks.min_strength),
        chunk_lines=_get(lk, "leaks", "chunk_lines", int, d_leaks.chunk_lines),
        audit_workers=_get(lk, "leaks", "audit_workers", int, d_leaks.audit_workers),
        max_password_bytes=_get(lk, "leaks", "max_password_bytes", int, d_leaks.max_password_bytes),
    )
    if not 0 <= leaks.min_strength <= 4:
        raise SettingsError("[leaks] min_strength must be between 0 and 4")
    if leaks.chunk_lines < 1000:
        raise SettingsError("[leaks] chunk_lines must be at least 1000")
    if leaks.popular_top_n < 0 or leaks.audit_workers < 0 or leaks.max_password_bytes < 1:
        raise SettingsError("[leaks] popular_top_n, audit_workers >= 0; max_password_bytes >= 1")
    dovecot = DovecotHash(
        nonce=_get(dv, "dovecot", "hash_nonce", str, ""),
        truncate_bits=_get(dv, "dovecot", "hash_truncate_bits", int, 12),
    )
    if not 0 <= dovecot.truncate_bits <= 255:
        raise SettingsError(
            "[dovecot] hash_truncate_bits must be 0 (full hash) to 255, as in Dovecot"
        )
    d_rules = LoginRules()
    aliases = lg.get("domain_aliases", {})
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise SettingsError("[logins.domain_aliases] keys and values must be strings")
    logins = LoginRules(
        lowercase=_get(lg, "logins", "lowercase", bool, d_rules.lowercase),
        fold_plus_tags=_get(lg, "logins", "fold_plus_tags", bool, d_rules.fold_plus_tags),
        domain_aliases={k.lower(): v.lower() for k, v in aliases.items()},
        default_domain=_get(lg, "logins", "default_domain", str, "").lower(),
    )
    return BreachSettings(leaks=leaks, dovecot=dovecot, logins=logins)


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise SettingsError(f"[{name}] must be a table")
    return value


def _get(table: dict[str, Any], section: str, key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if kind is int and isinstance(value, bool):
        raise SettingsError(f"[{section}] {key} must be an integer")
    if not isinstance(value, kind):
        raise SettingsError(f"[{section}] {key} must be of type {kind.__name__}")
    return value
