"""What each ops page is given by the server: one frozen context per page, holding only what
that page uses. Ops pages never reach back into the server that assembles them.

Features a node may lack are callables answering None (load shedding not configured) or
None themselves (no journal, no leak corpus), so a page says "not configured" rather than
guessing from attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.adapters.context import Commit, JournalDurable, WforceCounters
from rempart.engine.engine import Engine
from rempart.engine.keys import LoginRules
from rempart.engine.oracle import LeakOracle
from rempart.ops.host_journals import HostJournals
from rempart.ops.journal import Journal


@dataclass(frozen=True, slots=True)
class StatusContext:
    """The public status page (`ops/status.py`)."""

    # Protocol name -> posture level, for every protocol whose posture was ever set.
    postures: Callable[[], Mapping[str, str]]
    # The shedding controller's public view ({"services": {name: level}}), None without [shed].
    shed_public_status: Callable[[], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    """The operator console (`ops/console.py`, `ops/dashboard.py`)."""

    engine: Engine
    data_dir: Path  # operators and notices live here
    api_password: str  # signs the first operator in until operators are created
    login_rules: LoginRules
    journal: Journal | HostJournals | None
    leaks: LeakOracle | None
    commit: Commit  # acknowledged changes on disk (group commit), else HTTPError 503
    journal_durable: JournalDurable  # an operator-side event, acknowledged after commit
    shed_status: Callable[[], dict[str, Any] | None]  # None without [shed]
    status: StatusContext
    # App-password counts (accounts, active, expired, mail_apps_only); None when disabled.
    app_password_counts: Callable[[], dict[str, int] | None] = lambda: None


@dataclass(frozen=True, slots=True)
class MetricsContext:
    """The Prometheus collector (`ops/metrics.py`): engine counters plus three process figures."""

    engine: Engine
    wforce: WforceCounters  # wforce's command and allow-status counts, under its names
    journal_records: Callable[[], int]
    write_errors: Callable[[], int]
    handler_errors: Callable[[], int]
