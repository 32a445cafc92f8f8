"""The `[app_passwords]` table: limits, hash cost, and the table Dovecot reads."""

from __future__ import annotations

from dataclasses import dataclass

from rempart.config import knob, section

SCOPES = ("imap", "pop3", "smtp")


def _scopes(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of imap, pop3, smtp")
    out = []
    for item in value:
        if item not in SCOPES:
            raise ValueError(f"unknown scope {item!r} (one of {', '.join(SCOPES)})")
        out.append(item)
    return tuple(dict.fromkeys(out))


@section(
    "app_passwords",
    doc="App passwords (one per device or mail app), checked by Dovecot through a table "
    "Rempart keeps; see docs/app-passwords.md.",
)
@dataclass(frozen=True, slots=True)
class AppPasswordSettings:
    enabled: bool = knob(True, "Serve the app-password API and keep the Dovecot table.")
    require_known_account: bool = knob(
        True,
        "Create app passwords only for accounts that have signed in successfully before (on "
        "any protocol, as reported to Rempart); false for a backend that vouches for its logins.",
    )
    max_per_account: int = knob(20, "Most app passwords one account may hold at once.", ge=1)
    max_label_chars: int = knob(64, "Longest label (device or app name).", ge=1, le=256)
    default_scopes: tuple[str, ...] = knob(
        SCOPES,
        "Protocols a new app password opens when the request names none.",
        parse=_scopes,
        show=list,
    )
    max_lifetime_days: int = knob(
        0,
        "Longest expiry a request may ask for, in days (0: no limit; never-expiring allowed).",
        ge=0,
    )
    argon2_memory_kib: int = knob(
        19456,
        "Argon2id memory cost of the stored hash (KiB); Dovecot verifies it with the same cost "
        "on every app-password login.",
        ge=1024,
    )
    argon2_time_cost: int = knob(2, "Argon2id passes.", ge=1, le=10)
    dovecot_db: str = knob(
        "",
        "SQLite file Dovecot's sql passdb reads (hashes, scopes and expiry only; no labels, no "
        "networks). Empty: dovecot-app-passwords.db in the data directory; point it at a "
        "directory Dovecot's auth process can read.",
    )
    dovecot_db_group: str = knob(
        "",
        "Group given read access to dovecot_db (mode 0640), e.g. dovecot; empty: the file is "
        "readable by the service's user only (mode 0600).",
    )
    last_use_flush_s: float = knob(
        5.0, "How often recorded uses (last used, last network) are written to disk.", gt=0
    )
