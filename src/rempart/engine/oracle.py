"""The engine's view of the leak corpus: a small interface the breach package implements.

The engine never imports `rempart.breach`; the server hands it an object with this shape.
"""

from __future__ import annotations

from typing import Protocol

from rempart.model import Attempt


class LeakOracle(Protocol):
    """Answers, from memory and without blocking I/O, what the leak corpus knows of an attempt."""

    def leaked_pair(self, attempt: Attempt) -> bool:
        """True when this exact login + password is in an ingested leak.

        Uses `attempt.pair_fingerprint` (native API, plaintext seen) or `attempt.pwhash`
        (Dovecot's truncated hash, when the nonce and truncation are configured).
        """
        ...

    def login_exposed(self, login: str) -> bool:
        """True when the canonical login appears in any ingested leak."""
        ...

    def account_restricted(self, login: str) -> bool:
        """True when the account's current password is known exposed and not yet changed."""
        ...

    def exposure_seen(self, login: str, now: float) -> float:
        """When this exposed account's grace period started: `now` on the first call (recorded,
        kept across restarts; the write is queued, never done on the caller's thread), the
        recorded time after. -inf once the password was changed and the account is no longer
        restricted: its old leaked password gets no grace."""
        ...


class NoLeaks:
    """The oracle used when no leak corpus is loaded."""

    def leaked_pair(self, attempt: Attempt) -> bool:
        return False

    def login_exposed(self, login: str) -> bool:
        return False

    def account_restricted(self, login: str) -> bool:
        return False

    def exposure_seen(self, login: str, now: float) -> float:
        return now
