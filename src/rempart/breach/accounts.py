"""Per-account facts of exposed accounts (SQLite, WAL): password changes, which lift their
restriction, and when each exposure was first seen, which starts its grace period.

An account is restricted when the audit found its current password in a leak at time T and no
password change was reported after T. The exposures themselves live in the corpus generation.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
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


class ExposureClock:
    """`login -> when Rempart first saw the account exposed`, the start of its grace period.

    Read from memory on the decision path; a first sighting is queued and written by this
    object's own thread (the table's one writer), so the caller never waits on disk. A password
    change keeps the record: the grace period belonged to that exposure.
    """

    def __init__(self, data_dir: Path) -> None:
        path = leaks_dir(data_dir) / "accounts.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS exposure_seen (login TEXT PRIMARY KEY, at REAL NOT NULL)"
        )
        self.seen: dict[str, float] = dict(self._db.execute("SELECT login, at FROM exposure_seen"))
        self._queue: queue.SimpleQueue[tuple[str, float] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="rempart-exposure", daemon=True)
        self._writer.start()

    def first_seen(self, login: str, now: float) -> float:
        at = self.seen.get(login)
        if at is None:
            # setdefault: two threads racing on a first sighting agree on one time.
            at = self.seen.setdefault(login, now)
            if at == now:
                self._queue.put((login, now))
        return at

    def _write(self) -> None:
        db = self._db
        while (item := self._queue.get()) is not None:
            login, at = item
            db.execute(
                "INSERT INTO exposure_seen(login, at) VALUES(?, ?) ON CONFLICT(login) DO NOTHING",
                (login, at),
            )

    def close(self) -> None:
        """Write what is queued, then close."""
        self._queue.put(None)
        self._writer.join()
        self._db.close()
