"""Times typed by operators: ISO 8601, UNIX seconds, or a duration ago ('90m', '2h ago', '3d').

The one parser of such times for every command (`journal`, `report`, `status`)."""

from __future__ import annotations

import datetime as dt
import time

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse(text: str, name: str, now: float | None = None) -> float:
    """UNIX seconds (0.0 for empty text), or ValueError naming the field and the accepted forms."""
    text = text.strip()
    if not text:
        return 0.0
    if text.lower().endswith(" ago"):
        text = text[:-4].rstrip()  # "6h ago", as the help texts write it
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
            f"{name}: {text[:40]!r} is not a time "
            "(use 6h, 6h ago, 2026-11-23T14:00 or UNIX seconds)"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()
