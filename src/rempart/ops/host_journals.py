"""The journals of one host read as one: the primary's (`<data_dir>/journal`) and each decision
worker's (`<data_dir>/workers/<i>/journal`, see `rempart.workers`).

Each is its own hash chain with its own writer, so each is verified on its own; their records
are merged by time, oldest first, and a worker's record says which chain holds it (`"chain":
"workers/0"`), so an investigator can find it there and check it. A host without decision
workers has one chain and reads exactly as its journal does.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from rempart.datadir import WORKERS_DIR
from rempart.ops.journal import Broken, Journal


def _stamped(records: Iterator[dict[str, Any]], chain: str) -> Iterator[dict[str, Any]]:
    for rec in records:
        rec["chain"] = chain
        yield rec


class HostJournals:
    """The journals under one data directory, looked up at each read (a worker's journal
    appears when it first starts)."""

    def __init__(self, data_dir: Path, primary: Journal | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.primary = primary or Journal(self.data_dir / "journal")

    def chains(self) -> list[tuple[str, Journal]]:
        """(chain name, journal) pairs: "" for the primary's, "workers/<i>" for a worker's."""
        chains: list[tuple[str, Journal]] = [("", self.primary)]
        workers = self.data_dir / WORKERS_DIR
        if workers.is_dir():
            found = [p for p in workers.iterdir() if p.name.isdigit() and (p / "journal").is_dir()]
            for path in sorted(found, key=lambda p: int(p.name)):
                chains.append((f"{WORKERS_DIR}/{path.name}", Journal(path / "journal")))
        return chains

    def records(
        self,
        login: str = "",
        ip: str = "",
        since: float = 0.0,
        until: float = 0.0,
        kinds: frozenset[str] = frozenset(),
    ) -> Iterator[dict[str, Any]]:
        """Records matching every given filter, from every chain, oldest first."""
        streams = []
        for name, journal in self.chains():
            found = journal.records(login=login, ip=ip, since=since, until=until, kinds=kinds)
            streams.append(_stamped(found, name) if name else found)
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=lambda rec: rec.get("ts", 0.0))

    def verify(self) -> tuple[int, Broken | None]:
        """Walk every chain; (records checked, first broken record or None). A broken
        worker's chain is named in the segment (`workers/0/segment-….jsonl`)."""
        total = 0
        for name, journal in self.chains():
            count, broken = journal.verify()
            total += count
            if broken is not None:
                where = f"{name}/{broken.segment}" if name else broken.segment
                return total, replace(broken, segment=where)
        return total, None
