"""What each adapter is given by the server: one frozen context per adapter, holding only what
that adapter uses. Adapters never reach back into the server that assembles them.

The callables are the server's (bound methods or small closures): a login canonicaliser that
answers 400 for an unusable login, the keyed password fingerprinter, `commit` (wait until
acknowledged changes are on disk) and the journal's operator-event writer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.apppass.store import AppPasswordIndex
from rempart.config import Settings
from rempart.engine.engine import Engine
from rempart.engine.keys import LoginRules
from rempart.engine.oracle import LeakOracle
from rempart.model import Attempt

CanonicalLogin = Callable[[str], str]
"""The canonical login of a request's raw login; HTTPError 400 naming the field otherwise."""
FingerprintPassword = Callable[[Attempt, str], None]
"""Fill an attempt's fingerprints from a plaintext password, which is then dropped."""
Commit = Callable[[], Awaitable[None]]
"""Return once every change made so far is in the journal and the state store, on disk
(group commit); HTTPError 503 when that cannot be confirmed."""
JournalDurable = Callable[[str, dict[str, Any]], None]
"""Journal an operator-side event that does not pass through the engine; acknowledge it only
after `Commit`."""


ALLOW_STATUSES = ("allowed", "blacklisted", "whitelisted", "denied", "tarpitted")


class WforceCounters:
    """wforce's per-command and per-allow-status counts, under its own names so an existing
    dashboard keeps working. Written only by the wforce API; read by `stats` and `/metrics`."""

    __slots__ = ("allow_status", "commands", "started")

    def __init__(self, started: float) -> None:
        self.commands: dict[str, int] = {}
        self.allow_status: dict[str, int] = dict.fromkeys(ALLOW_STATUSES, 0)
        self.started = started


@dataclass(frozen=True, slots=True)
class WforceContext:
    """The wforce-compatible API (`adapters/wforce.py`)."""

    engine: Engine
    login_rules: LoginRules
    canonical_login: CanonicalLogin
    step_up_status: int
    commit: Commit
    stats: Callable[[], dict[str, Any]]
    confirm_prefixes: tuple[int, int]  # IPv4, IPv6: entries this wide or wider need confirm
    counters: WforceCounters
    exact_list_logins: bool  # list entries name the login as given, as wforce does
    app_passwords: AppPasswordIndex | None = None  # marks attempts that use an app password


@dataclass(frozen=True, slots=True)
class NativeContext:
    """The native JSON API (`adapters/native.py`)."""

    engine: Engine
    login_rules: LoginRules
    fingerprint_password: FingerprintPassword


@dataclass(frozen=True, slots=True)
class OperatorContext:
    """The operator and account endpoints (`adapters/operator.py`)."""

    engine: Engine
    login_rules: LoginRules
    leaks: LeakOracle | None
    commit: Commit
    journal_durable: JournalDurable


@dataclass(frozen=True, slots=True)
class NginxContext:
    """nginx `auth_request` (`adapters/nginx.py`); its `[nginx]` settings come beside it."""

    engine: Engine
    login_rules: LoginRules
    fingerprint_password: FingerprintPassword


@dataclass(frozen=True, slots=True)
class TailContext:
    """Log tailing inside `rempart serve` (`adapters/logtail.py`): the `[tail]` table and the
    login rules come from `settings`, the offsets file defaults to `data_dir`."""

    engine: Engine
    settings: Settings
    data_dir: Path
