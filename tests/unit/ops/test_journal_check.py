"""`journal verify`'s cross-check: state the journal lacks is named, postures read as records."""

from __future__ import annotations

from pathlib import Path

from rempart.engine.engine import Engine
from rempart.model import Protocol
from rempart.ops.journal import Journal
from rempart.ops.journal_check import missing_records
from rempart.state.sqlite import SqliteStore
from rempart.state.writer import StateWriter

T0 = 1_800_000_000.0


def _node(data_dir: Path, journaled: bool) -> tuple[Engine, SqliteStore, Journal]:
    engine = Engine.in_memory()
    store = SqliteStore(data_dir)
    journal = Journal(data_dir / "journal", flush_interval=0.01)
    journal.start()
    writer = StateWriter(store)
    if journaled:
        engine.listeners.append(journal.listener)
        writer.after_durable = journal.after_durable
    engine.listeners.append(writer.listener)
    return engine, store, journal


def test_a_journaled_posture_record_is_not_reported_missing(tmp_path: Path) -> None:
    engine, store, journal = _node(tmp_path, journaled=True)
    try:
        engine.set_posture(Protocol.IMAP, "guarded", "api", "drill", now=T0, ttl=0)
        assert journal.flush() and store.flush()
        assert missing_records(journal, tmp_path, {}, now=T0) == []
    finally:
        journal.close()
        store.close()


def test_a_posture_the_journal_lacks_is_named(tmp_path: Path) -> None:
    engine, store, journal = _node(tmp_path, journaled=False)
    try:
        engine.set_posture(Protocol.POP3, "strict", "api", "drill", now=T0)
        assert store.flush()
        (missing,) = missing_records(journal, tmp_path, {}, now=T0)
        assert missing.what == "posture" and missing.key == "pop3"
        assert "is 'strict'" in missing.why and "no posture change" in missing.why
    finally:
        journal.close()
        store.close()
