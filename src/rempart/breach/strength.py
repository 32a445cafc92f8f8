"""Password strength with feedback (zxcvbn), for the password-check endpoint and command."""

from __future__ import annotations

from typing import Any

from zxcvbn import zxcvbn

MAX_CHARS = 100
"""zxcvbn is quadratic-ish in length; longer passwords are scored on their first 100 chars."""


def strength(password: str, user_inputs: list[str]) -> dict[str, Any]:
    """Score 0-4, log10 of the guesses needed, and the warning/suggestions to show the user."""
    result = zxcvbn(password[:MAX_CHARS], user_inputs=user_inputs)
    feedback = result.get("feedback", {})
    return {
        "score": int(result["score"]),
        "guesses_log10": round(float(result["guesses_log10"]), 2),
        "crack_time": str(result["crack_times_display"]["offline_slow_hashing_1e4_per_second"]),
        "warning": feedback.get("warning", ""),
        "suggestions": list(feedback.get("suggestions", [])),
    }
