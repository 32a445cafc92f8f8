"""A decision worker's copy of the app passwords (`AppPasswordCopy`): it sees what the writer
creates, revokes and flags once it refreshes, reloads only on such changes (not when the writer
records uses), never writes, and hands over the uses it saw."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from rempart.apppass.settings import AppPasswordSettings
from rempart.apppass.store import AppPasswordCopy, AppPasswordStore
from rempart.config import from_mapping
from rempart.model import Attempt, Protocol

FAST = {"argon2_memory_kib": 1024, "argon2_time_cost": 1}
LOGIN = "alice@example.org"


def settings() -> AppPasswordSettings:
    return from_mapping({"app_passwords": FAST}).section(AppPasswordSettings)


def attempt(app_id: str) -> Attempt:
    return Attempt(
        login=LOGIN,
        ip="192.0.2.1",
        protocol=Protocol.IMAP,
        attrs={"credential": "app", "app_password": app_id},
    )


def test_the_copy_follows_the_writer(tmp_path: Path) -> None:
    writer = AppPasswordStore(tmp_path, settings())
    copy = AppPasswordCopy(tmp_path, settings())
    loop = asyncio.new_event_loop()
    now = time.time()
    try:
        item, _ = loop.run_until_complete(writer.create(LOGIN, "Phone", ("imap",), 0.0, now))
        assert copy.mark(attempt(item.id), now) == ""  # not seen before a refresh
        assert copy.refresh() is True
        assert copy.mark(attempt(item.id), now) == item.id
        assert copy.refresh() is False  # nothing changed: no reload

        # Uses the writer records do not make the copies reload the table.
        writer.record_use(item.id, "192.0.2.1", now)
        pending = writer.flush_uses()
        assert pending is not None
        pending.result(10)
        assert copy.refresh() is False

        # A use the copy saw: kept for its own decisions, handed over once.
        copy.record_use(item.id, "198.51.100.4", now + 1)
        assert copy.take_uses() == [(item.id, now + 1, "198.51.100.4")]
        assert copy.take_uses() == []
        assert copy.used_recently(LOGIN, "198.51.100.4", "imap", now + 2, 60)

        loop.run_until_complete(writer.set_mail_apps_only(LOGIN, True))
        assert copy.refresh() is True and copy.mail_apps_only(LOGIN)
        loop.run_until_complete(writer.revoke(LOGIN, [item.id]))
        assert copy.refresh() is True
        assert copy.mark(attempt(item.id), now) == ""
        assert copy.counts(now)["active"] == 0
    finally:
        loop.close()
        copy.close()
        writer.close()


def test_the_copy_never_writes(tmp_path: Path) -> None:
    AppPasswordStore(tmp_path, settings()).close()
    copy = AppPasswordCopy(tmp_path, settings())
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            copy._db.execute("UPDATE generation SET n = n + 1")
    finally:
        copy.close()
