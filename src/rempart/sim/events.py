"""The simulator's unit of traffic: one login attempt at a virtual time, with the truth about it.

Owns `Event` (what the defender sees, plus what only the simulator knows: who sent it and
whether the password was right) and the `Source` interface every traffic generator implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from rempart.model import Protocol

LEGIT_CLASSES = ("user", "mail_client", "aggregator", "institution")


@dataclass(slots=True)
class Event:
    """One attempt. `legit` and `correct` are ground truth the defender never sees."""

    t: float
    login: str
    ip: str
    protocol: Protocol
    password: str
    source: str  # traffic class: one of LEGIT_CLASSES or an attack's name
    legit: bool
    correct: bool  # the login exists and the password is its current one
    exists: bool = True
    device_id: str = ""
    user_agent: str = ""
    app_password: bool = False  # authenticated with one of the account's app passwords


class Source(TypingProtocol):
    """A traffic generator, asked for its events window by window in increasing time."""

    def window(self, t0: float, t1: float) -> list[Event]:
        """Events with t0 <= t < t1 (any order)."""
        ...


class ListSource:
    """A source whose events were all generated up front; served by time window."""

    def __init__(self, events: list[Event]) -> None:
        self._events = sorted(events, key=lambda e: e.t)
        self._i = 0

    def window(self, t0: float, t1: float) -> list[Event]:
        events = self._events
        i = self._i
        while i < len(events) and events[i].t < t0:
            i += 1
        j = i
        while j < len(events) and events[j].t < t1:
            j += 1
        self._i = j
        return events[i:j]

    def __len__(self) -> int:
        return len(self._events)
