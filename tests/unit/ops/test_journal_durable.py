"""Durable journal records: `sync()` returns only once the record is on disk, concurrent callers
share fsyncs (group commit), and the state store never holds a change the journal lacks."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from rempart.config import Settings
from rempart.engine.events import CountersReset, PostureChanged
from rempart.engine.lists import ListEntry
from rempart.engine.posture import detector_record
from rempart.model import Posture, Protocol
from rempart.ops.journal import Journal
from rempart.server import Service


def _on_disk(journal_dir: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for seg in sorted(journal_dir.glob("segment-*.jsonl"))
        for line in seg.read_text().splitlines()
    ]


def test_sync_returns_once_the_record_is_on_disk_without_the_batch_pause(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", flush_interval=5.0)  # a batch pause far above the budget
    journal.start()
    try:

        async def change() -> float:
            started = time.perf_counter()
            journal.append_durable("list_add", time.time(), {"list": "block", "entry": _entry(1)})
            await journal.sync()
            return time.perf_counter() - started

        took = asyncio.run(change())
        assert took < 1.0, f"sync waited for the batch pause ({took:.2f} s)"
        assert [r["kind"] for r in _on_disk(tmp_path / "j")] == ["list_add"]
    finally:
        journal.close()


def test_decisions_stay_batched_but_a_durable_record_carries_them_out(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", flush_interval=5.0)
    journal.start()
    try:
        journal.listener(CountersReset(time.time(), "a", "", 0))
        time.sleep(0.3)
        assert _on_disk(tmp_path / "j") == []  # batched: not yet written
        now = time.time()
        strict = detector_record(Protocol.IMAP, Posture.STRICT, now, rising=True)
        journal.listener(PostureChanged(now, Posture.NORMAL, strict))
        assert journal.wait_durable(2.0)
        assert [r["kind"] for r in _on_disk(tmp_path / "j")] == ["reset", "posture"]
    finally:
        journal.close()


def test_concurrent_changes_share_fsyncs(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.start()
    try:

        async def one(i: int) -> None:
            journal.append_durable("list_add", time.time(), {"list": "block", "entry": _entry(i)})
            await journal.sync()

        async def many() -> None:
            await asyncio.gather(*(one(i) for i in range(200)))

        asyncio.run(many())
        assert len(_on_disk(tmp_path / "j")) == 200
        assert journal.syncs < 100, f"{journal.syncs} fsyncs for 200 concurrent changes"
        assert journal.verify() == (200, None)
    finally:
        journal.close()


def test_state_store_gets_a_list_change_only_after_the_journal(tmp_path: Path) -> None:
    service = Service(Settings.default(), tmp_path / "data", "x" * 20, leaks=None)
    assert service.journal is not None
    order: list[str] = []
    real_put = service.store.put_entry

    def put_entry(which: str, entry: ListEntry) -> None:
        order.append("store:" + ("journaled" if service.journal.durable_seq else "not-journaled"))  # type: ignore[union-attr]
        real_put(which, entry)

    service.store.put_entry = put_entry  # type: ignore[method-assign]
    try:

        async def add() -> None:
            service.engine.add_entry("block", _entry(7), by="api")
            await service.commit()

        asyncio.run(add())
        assert order == ["store:journaled"]
        rows = list(service.store.load_entries())
        assert [(which, e.value) for which, e in rows] == [("block", "192.0.2.7")]
    finally:
        service.close()


def _entry(i: int) -> ListEntry:
    return ListEntry("ip", f"192.0.2.{i % 256}", 0.0, "test", time.time())
