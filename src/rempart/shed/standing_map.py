"""``standing.map``: ``<address> <until>`` for every source in good standing (`until` in epoch
seconds), the file a (re)started HAProxy loads and a restarted Rempart reads its marks back
from; `shed/standing_feed.py` keeps it and HAProxy's live map current."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

STANDING_MAP = "standing.map"


def write_standing(map_dir: Path, marks: Mapping[str, int]) -> Path:
    """Replace the file atomically: HAProxy never reads half of it."""
    path = map_dir / STANDING_MAP
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{key} {marks[key]}\n" for key in sorted(marks)), encoding="ascii")
    os.replace(tmp, path)
    return path


def read_standing(map_dir: Path) -> dict[str, int]:
    """The marks stored in ``standing.map`` (empty when absent); unreadable lines are skipped."""
    path = map_dir / STANDING_MAP
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return {}
    marks: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            marks[parts[0]] = int(parts[1])
    return marks
