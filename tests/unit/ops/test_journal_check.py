"""`journal verify`'s cross-check of postures: a stored posture record agrees with the journal's
last record of it (level, source, author, reason, hold, end, since), and any difference is named."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from rempart.config import Settings
from rempart.engine.posture import PostureRecord
from rempart.model import Protocol
from rempart.ops.journal import Journal
from rempart.ops.journal_check import missing_records
from rempart.server import Service


def _set_postures(data: Path) -> None:
    service = Service(Settings.default(), data, "x" * 20, leaks=None)
    try:

        async def change() -> None:
            engine = service.engine
            engine.set_posture(Protocol.IMAP, "strict", "ann", "wave", ttl=3600)
            engine.set_posture(Protocol.POP3, "closed", "bob", "botnet", hold=True)
            engine.set_posture(Protocol.SMTP, "guarded", "cid", "watch", hold=False)
            await service.commit()

        asyncio.run(change())
    finally:
        service.close()


def _missing(data: Path) -> list[str]:
    journal = Journal(data / "journal")
    try:
        return [str(m) for m in missing_records(journal, data, {})]
    finally:
        journal.close()


def test_stored_postures_agree_with_the_journal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _set_postures(data)
    assert _missing(data) == []


def test_a_stored_posture_the_journal_does_not_say_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _set_postures(data)
    db = sqlite3.connect(data / "state.sqlite3")
    (value,) = db.execute("SELECT value FROM settings WHERE key = 'posture.pop3'").fetchone()
    record = PostureRecord.from_json(json.loads(value))
    forged = {**record.as_json(), "held": False, "by": "mallory"}
    db.execute(
        "UPDATE settings SET value = ? WHERE key = 'posture.pop3'",
        (json.dumps(forged),),
    )
    db.execute("UPDATE settings SET value = '{\"protocol\": 1' WHERE key = 'posture.smtp'")
    db.commit()
    db.close()
    missing = _missing(data)
    assert missing == [
        "posture pop3: its by, held differ from the journal's last record of it",
        missing[1],
    ]
    assert missing[1].startswith("posture smtp: unreadable in the state")
