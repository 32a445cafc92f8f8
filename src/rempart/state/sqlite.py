"""The embedded store: SQLite in WAL mode under the data directory, written by one background thread.

Familiarity, the most frequent write (a success from a new network), is appended to
`familiarity_log`, a table in insertion order, and merged into the keyed `familiarity` table
in bulk (at open, and by the writer once the log holds `_COMPACT_ROWS` rows). Written straight
into the keyed table, each row landed on a random page of a large B-tree, and every commit
wrote each of those 4 KB pages to the WAL again: the store's thread spent more than the engine
applying the reports that taught them. A merge writes each page once for many rows.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from rempart.engine.lists import ListEntry

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS list_entries (
  list TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
  expires REAL NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL,
  PRIMARY KEY (list, kind, value)
);
CREATE TABLE IF NOT EXISTS familiarity (
  login TEXT NOT NULL, marker TEXT NOT NULL, last REAL NOT NULL,
  PRIMARY KEY (login, marker)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS familiarity_log (
  login TEXT NOT NULL, marker TEXT NOT NULL, last REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# The log merged into the keyed table (the newest time of each pair wins), then emptied.
_MERGE_FAMILIARITY = (
    "INSERT INTO familiarity (login, marker, last)"
    " SELECT login, marker, MAX(last) FROM familiarity_log WHERE true GROUP BY login, marker"
    " ON CONFLICT (login, marker) DO UPDATE SET last = MAX(last, excluded.last)",
    "DELETE FROM familiarity_log",
)
_COMPACT_ROWS = 200_000

_Op = tuple[str, tuple[Any, ...]] | threading.Event | Future[bool] | None

_FAMILIARITY_INSERT, _FAMILIARITY_ROW = "INSERT INTO familiarity_log VALUES ", "(?, ?, ?)"
_PUT_FAMILIARITY = _FAMILIARITY_INSERT + _FAMILIARITY_ROW
# Statements written in bulk, as one multi-row statement per chunk instead of `executemany`:
# the sqlite3 module releases and retakes the GIL around every row it steps, and each retake
# waits for the event loop to yield it, so a batch of thousands of familiarity rows cost
# thousands of thread switches on the decision path. One statement steps once per chunk.
_MULTI_ROW = {_PUT_FAMILIARITY: (_FAMILIARITY_INSERT, _FAMILIARITY_ROW)}
_ROWS_PER_STATEMENT = 256  # x 3 parameters, well under SQLite's 32,766
_CACHE_KIB = 65536  # per connection, taken only as pages are read
_CHECKPOINT_PAGES = 8192  # a WAL of up to 32 MB between checkpoints


class SqliteStore:
    """Durable facts in `<data_dir>/state.sqlite3`."""

    def __init__(self, data_dir: str | Path, batch_interval: float = 0.05) -> None:
        self.path = Path(data_dir) / "state.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()
        self._db.executescript(_SCHEMA)
        try:
            self._merge_familiarity(self._db)
        except sqlite3.OperationalError as exc:  # busy: the writer merges it later
            log.warning("familiarity log of %s not merged at open: %s", self.path, exc)
        self._log_rows = 0  # appended to familiarity_log since the last merge (writer thread)
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._interval = batch_interval
        self._urgent = threading.Event()  # a caller waits: commit without the gathering pause
        self.write_errors = 0
        self._writer = threading.Thread(target=self._run, name="rempart-store", daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # Familiarity rows land on random pages of a table of millions: with SQLite's default
        # 2 MB cache every batch read its pages back from the file, and a checkpoint every
        # 1,000 WAL pages (4 MB) wrote the same hot pages to the database over and over.
        db.execute(f"PRAGMA cache_size={-_CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        return db

    # --- reads (start-up and operator queries; never on the decision path) -------------------
    def load_entries(self) -> Iterator[tuple[str, ListEntry]]:
        rows = self._db.execute(
            "SELECT list, kind, value, expires, reason, created FROM list_entries"
        ).fetchall()
        for which, kind, value, expires, reason, created in rows:
            yield which, ListEntry(kind, value, expires, reason, created)

    def load_familiarity(self) -> Iterator[tuple[str, str, float]]:
        """Each remembered (login, marker) once, with its newest time (the log not yet merged
        included)."""
        db = self._db
        if db.execute("SELECT EXISTS (SELECT 1 FROM familiarity_log)").fetchone()[0] == 0:
            # The usual case at start, right after the merge: no sort of the whole table.
            yield from db.execute("SELECT login, marker, last FROM familiarity").fetchall()
            return
        yield from db.execute(
            "SELECT login, marker, MAX(last) FROM"
            " (SELECT * FROM familiarity UNION ALL SELECT * FROM familiarity_log)"
            " GROUP BY login, marker"
        ).fetchall()

    @staticmethod
    def _merge_familiarity(db: sqlite3.Connection) -> None:
        """Merge the familiarity log into the keyed table, in one transaction of its own."""
        db.execute("BEGIN")
        try:
            for sql in _MERGE_FAMILIARITY:
                db.execute(sql)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise

    def get_setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def load_settings(self) -> dict[str, str]:
        """Every setting (the Redis store re-seeds an emptied Redis from this node's copy)."""
        return dict(self._db.execute("SELECT key, value FROM settings").fetchall())

    # --- writes (queued) ---------------------------------------------------------------------
    def put_entry(self, which: str, entry: ListEntry) -> None:
        self._queue.put(
            (
                "INSERT OR REPLACE INTO list_entries VALUES (?, ?, ?, ?, ?, ?)",
                (which, entry.kind, entry.value, entry.expires, entry.reason, entry.created),
            )
        )

    def delete_entry(self, which: str, kind: str, value: str) -> None:
        self._queue.put(
            (
                "DELETE FROM list_entries WHERE list = ? AND kind = ? AND value = ?",
                (which, kind, value),
            )
        )

    def put_familiarity(self, login: str, marker: str, last: float, *, shared: bool = True) -> None:
        self._queue.put((_PUT_FAMILIARITY, (login, marker, last)))

    def put_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self._queue.put(("DELETE FROM settings WHERE key = ?", (key,)))
        else:
            self._queue.put(("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value)))

    def purge_expired(self, now: float) -> None:
        self._queue.put(("DELETE FROM list_entries WHERE expires > 0 AND expires < ?", (now,)))

    def flush(self, timeout: float = 10.0) -> bool:
        done = threading.Event()
        self._queue.put(done)
        self._urgent.set()
        return done.wait(timeout)

    def flush_future(self) -> Future[bool]:
        """A future that turns True once everything queued so far is committed (for
        `asyncio.wrap_future`: every waiter of one batch shares its commit)."""
        done: Future[bool] = Future()
        self._queue.put(done)
        self._urgent.set()
        return done

    def close(self) -> None:
        self._queue.put(None)
        self._urgent.set()
        self._writer.join(timeout=10)
        self._db.close()

    def _run(self) -> None:
        db = self._connect()
        stop = False
        while not stop:
            first = self._queue.get()
            batch = [first]
            if first is not None:
                self._urgent.wait(self._interval)  # let a batch gather, unless a caller waits
            self._urgent.clear()
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            waiters: list[threading.Event | Future[bool]] = []
            try:
                db.execute("BEGIN")
                # Consecutive writes of the same statement go in one run (`_write_run`).
                runs: list[tuple[str, list[tuple[Any, ...]]]] = []
                for op in batch:
                    if op is None:
                        stop = True
                    elif isinstance(op, threading.Event | Future):
                        waiters.append(op)
                    elif runs and op[0] == runs[-1][0]:
                        runs[-1][1].append(op[1])
                    else:
                        runs.append((op[0], [op[1]]))
                logged = 0
                for sql, params in runs:
                    _write_run(db, sql, params)
                    if sql == _PUT_FAMILIARITY:
                        logged += len(params)
                db.execute("COMMIT")
                for waiter in waiters:
                    if isinstance(waiter, Future):
                        waiter.set_result(True)
                    else:
                        waiter.set()
                self._log_rows += logged
            except sqlite3.Error:
                self.write_errors += 1
                log.exception("state store write failed; batch of %d kept for retry", len(batch))
                if db.in_transaction:
                    db.rollback()
                for op in batch:
                    if op is not None:
                        self._queue.put(op)  # waiters too: they are told only once durable
                threading.Event().wait(1.0)
                continue
            if self._log_rows >= _COMPACT_ROWS:
                try:
                    self._merge_familiarity(db)
                    self._log_rows = 0
                except sqlite3.Error:  # the log stays, and is read with the table
                    self.write_errors += 1
                    log.exception("could not merge the familiarity log; retried later")
                    self._log_rows //= 2
        db.close()


def _write_run(db: sqlite3.Connection, sql: str, params: list[tuple[Any, ...]]) -> None:
    """Consecutive writes of one statement, in their order (a later row replaces an earlier
    one with the same key, as it would row by row)."""
    multi = _MULTI_ROW.get(sql)
    if multi is None or len(params) < 2:
        db.executemany(sql, params)
        return
    head, row = multi
    for start in range(0, len(params), _ROWS_PER_STATEMENT):
        chunk = params[start : start + _ROWS_PER_STATEMENT]
        db.execute(head + ", ".join([row] * len(chunk)), [v for p in chunk for v in p])
