"""``blocklist.map``: ``<address or CIDR> 1`` for every source of the block list, the file a
(re)started HAProxy loads; `shed/hostile_feed.py` keeps it and HAProxy's live map current."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

BLOCKLIST_MAP = "blocklist.map"


def write_blocklist(map_dir: Path, sources: Iterable[str]) -> Path:
    """Replace the file atomically: HAProxy never reads half of it."""
    path = map_dir / BLOCKLIST_MAP
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{source} 1\n" for source in sorted(sources)), encoding="ascii")
    os.replace(tmp, path)
    return path
