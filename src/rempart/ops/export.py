"""Journal export for investigators: the records of a window as JSON lines, chain fields kept.

Each exported record keeps `seq`, `prev` and `hash`, so a recipient can re-check every hash
(sha256 of prev + the record's canonical JSON without `hash`) without access to the server.
The whole chain is verified first and a break is reported alongside the export.
"""

from __future__ import annotations

import json
from typing import IO

from rempart.ops.host_journals import HostJournals
from rempart.ops.journal import Broken, Journal


def export(
    journal: Journal | HostJournals,
    out: IO[str],
    since: float = 0.0,
    until: float = 0.0,
    login: str = "",
    ip: str = "",
) -> tuple[int, int, Broken | None]:
    """(records exported, records verified, first broken record or None)."""
    verified, broken = journal.verify()
    count = 0
    for rec in journal.records(login=login, ip=ip, since=since, until=until):
        out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count, verified, broken
