"""Times typed by operators: ISO 8601, UNIX seconds, or a duration ago ('90m', '2h', '3d')."""

from __future__ import annotations

import datetime as dt
import time

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse(text: str, name: str, now: float | None = None) -> float:
    """UNIX seconds (0.0 for empty text), or ValueError naming the field and the accepted forms."""
    text = text.strip()
    if not text:
        return 0.0
    now = time.time() if now is None else now
    if text[-1] in UNITS and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * UNITS[text[-1]]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value >= 0:
            return value
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name}: {text[:40]!r} is not a time (use 2h, 2026-11-23T14:00 or UNIX seconds)"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()
