"""Password strength with feedback (zxcvbn), for the password-check endpoint and command."""

from __future__ import annotations

from typing import Any

from zxcvbn import zxcvbn

MAX_CHARS = 72
"""zxcvbn refuses longer passwords (4.5 raises ValueError beyond 72 characters, and its cost grows
fast with length): a longer one is scored on its first 72 characters. A password is at least as
hard to guess as its prefix, so the score errs on the safe side; `scored_chars` says so."""


def strength(password: str, user_inputs: list[str]) -> dict[str, Any]:
    """Score 0-4, log10 of the guesses needed, and the warning/suggestions to show the user."""
    scored = password[:MAX_CHARS]
    # User inputs longer than the limit would make zxcvbn's matching as slow; they are names.
    inputs = [x[:MAX_CHARS] for x in user_inputs]
    result = zxcvbn(scored, user_inputs=inputs, max_length=MAX_CHARS)
    feedback = result.get("feedback", {})
    return {
        "scored_chars": len(scored),
        "truncated": len(password) > MAX_CHARS,
        "score": int(result["score"]),
        "guesses_log10": round(float(result["guesses_log10"]), 2),
        "crack_time": str(result["crack_times_display"]["offline_slow_hashing_1e4_per_second"]),
        "warning": feedback.get("warning", ""),
        "suggestions": list(feedback.get("suggestions", [])),
    }
