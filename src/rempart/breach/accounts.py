"""Password changes reported for exposed accounts (SQLite, WAL), which lift their restriction.

An account is restricted when the audit found its current password in a leak at time T and no
password change was reported after T. The exposures themselves live in the corpus generation.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from rempart.breach.store import leaks_dir


class PasswordChanges:
    """`login -> time of the last reported password change`, persisted."""

    def __init__(self, data_dir: Path) -> None:
        path = leaks_dir(data_dir) / "accounts.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS password_changes (login TEXT PRIMARY KEY, at REAL NOT NULL)"
        )

    def record(self, login: str, at: float | None = None) -> float:
        when = time.time() if at is None else at
        self._db.execute(
            "INSERT INTO password_changes(login, at) VALUES(?, ?) "
            "ON CONFLICT(login) DO UPDATE SET at = excluded.at",
            (login, when),
        )
        return when

    def all(self) -> dict[str, float]:
        return dict(self._db.execute("SELECT login, at FROM password_changes"))

    def close(self) -> None:
        self._db.close()
