"""The leak corpus's sections of the configuration: `[leaks]` and `[dovecot]`.

Both are registered with `rempart.config` (defaults and documentation declared once, on the
fields); `BreachSettings.of(settings)` gathers what the breach package reads, the `[logins]`
canonicalisation included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rempart.config import LoginRules, Settings, knob, section


@section(
    "dovecot",
    doc="Dovecot's auth_policy_hash_nonce and auth_policy_hash_truncate, needed to match "
    "Dovecot's pwhash against the leak corpus (set hash_truncate_bits to 0 or >= 64 for a "
    "useful match).",
)
@dataclass(frozen=True, slots=True)
class DovecotHash:
    """Dovecot's `auth_policy_hash_nonce` / `auth_policy_hash_truncate`, to match its `pwhash`.

    `truncate_bits` 0 means the full 256-bit digest. With the Dovecot default (12 bits) one pwhash
    in 4096 matches a leaked pair of the same login by chance, so set 0 or >= 64 in Dovecot and here.
    """

    nonce: str = knob("", "", key="hash_nonce")
    truncate_bits: int = knob(
        12, "0 means the full hash, as in Dovecot.", key="hash_truncate_bits", ge=0, le=255
    )

    @property
    def enabled(self) -> bool:
        return bool(self.nonce)

    @property
    def effective_bits(self) -> int:
        """How many leading digest bits Dovecot sends (256 when truncation is off)."""
        return 256 if self.truncate_bits == 0 else self.truncate_bits


@section("leaks")
@dataclass(frozen=True, slots=True)
class LeakSettings:
    """The `[leaks]` table."""

    popular_top_n: int = knob(
        100_000,
        "How many of the shipped popular passwords (most frequent first) count as popular.",
        ge=0,
    )
    min_strength: int = knob(
        3,
        "zxcvbn score (0-4) a new password needs for `password-check` to call it acceptable.",
        ge=0,
        le=4,
    )
    chunk_lines: int = knob(
        1_000_000, "Lines per ingest checkpoint: a kill -9 loses at most this much work.", ge=1000
    )
    audit_workers: int = knob(
        0,
        "Processes verifying leaked passwords against the user store; 0 = one per core.",
        ge=0,
    )
    max_password_bytes: int = knob(256, "Longer passwords are rejected as junk lines.", ge=1)


@dataclass(frozen=True, slots=True)
class BreachSettings:
    """Everything the breach package reads from the configuration."""

    leaks: LeakSettings = field(default_factory=LeakSettings)
    dovecot: DovecotHash = field(default_factory=DovecotHash)
    logins: LoginRules = field(default_factory=LoginRules)

    @classmethod
    def of(cls, settings: Settings) -> BreachSettings:
        return cls(settings.section(LeakSettings), settings.section(DovecotHash), settings.logins)
