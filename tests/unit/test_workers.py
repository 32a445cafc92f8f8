"""A decision worker's link to its primary (`rempart.workers.Control`): messages arrive whole
and in order, a primary that stops reading never blocks the sender, a vanished primary is
noticed on both pipes, and the top sources are wanted only while the primary asks."""

from __future__ import annotations

import json
import os
import time

from rempart import workers
from rempart.workers import Control


def pipes() -> tuple[int, int, int, int]:
    """(control read end, control write end, requests read end, requests write end)."""
    return (*os.pipe(), *os.pipe())


def test_messages_arrive_whole_and_in_order() -> None:
    read, write, requests, asks = pipes()
    control = Control(write, os.getppid(), requests)
    big = {"uses": [[f"id{i}", 1.5, "192.0.2.1"] for i in range(1000)]}  # beyond PIPE_BUF
    assert control.send({"ready": 1}) and control.send(big) and control.send({"figures": {}})
    control.close()
    with os.fdopen(read, "rb") as reader:
        lines = reader.read().splitlines()
    assert [json.loads(line) for line in lines] == [{"ready": 1}, big, {"figures": {}}]
    os.close(requests)
    os.close(asks)


def test_a_primary_that_stops_reading_never_blocks_the_sender(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(workers, "MAX_QUEUED", 50)
    read, write, requests, asks = pipes()
    control = Control(write, os.getppid(), requests)
    started = time.monotonic()
    for _ in range(500):  # ~40 MB: far beyond the pipe's 64 KiB, nobody reading
        control.send({"uses": [["x" * 64, 1.0, "192.0.2.1"]] * 1000})
    assert time.monotonic() - started < 5.0
    assert control.dropped > 0 and not control.broken
    os.close(read)  # the primary goes away: the writer thread sees a broken pipe
    deadline = time.monotonic() + 5
    while not control.broken and time.monotonic() < deadline:
        time.sleep(0.01)
    assert control.broken and control.send({"figures": {}}) is False
    os.close(requests)
    os.close(asks)


def test_top_sources_are_wanted_only_while_asked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(workers, "TOPS_WANTED_S", 0.3)
    read, write, requests, asks = pipes()
    control = Control(write, os.getppid(), requests)
    assert control.tops_wanted() is False
    os.write(asks, b"t")
    assert control.tops_wanted() is True
    assert control.tops_wanted() is True  # nothing new to read: still within the window
    time.sleep(0.35)
    assert control.tops_wanted() is False
    assert not control.broken
    os.close(asks)  # the primary's end closed: it is gone
    control.tops_wanted()
    assert control.broken
    control.close()
    os.close(read)
    os.close(requests)


def test_the_automatic_count_leaves_a_core_to_the_primary() -> None:
    assert workers.worker_count(3, cores=8) == 3  # as configured, whatever the cores
    assert workers.worker_count(0, cores=8) == 0
    assert workers.worker_count(-1, cores=8) == 7
    assert workers.worker_count(-1, cores=2) == 1
    assert workers.worker_count(-1, cores=1) == 1  # at least one
    expected = max(1, len(os.sched_getaffinity(0)) - 1)
    assert workers.worker_count(-1) == expected
