"""Times typed by operators: ISO 8601, UNIX seconds, or a duration ago ('90m', '2h', '3d').

The forms and their range (1970 to the end of year 9999) are `rempart.bounds.timestamp`'s,
shared with the HTTP boundary.
"""

from __future__ import annotations

from rempart.bounds import timestamp


def parse(text: str, name: str, now: float | None = None) -> float:
    """UNIX seconds (0.0 for empty text), or ValueError naming the field and the accepted forms."""
    return timestamp(text, name, now)
