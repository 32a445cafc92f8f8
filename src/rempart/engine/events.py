"""Engine events: the typed contract between the engine and its effects.

The engine decides and learns on in-memory state; everything that leaves it (the journal, the
durable store, webhooks, live dashboard figures, replication to other nodes) is a consumer of
these events, registered in `Engine.listeners` and dispatching with `match`. Listeners run on
the decision path: they queue, count or drop, and never block.

Events of a peer's report or change applied through `Engine.apply_peer_*` are not emitted (the
peer that made them already journaled, persisted and published them); a posture change that
this node's own detector takes on the combined traffic is emitted like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rempart.engine.lists import ListEntry
from rempart.engine.posture import PostureRecord
from rempart.model import Attempt, ListName, Outcome, Posture, Verdict


# One of these two per request: written `__init__`s, which mypyc compiles (a frozen dataclass's
# generated one stays interpreted and stores each field through `object.__setattr__`). Nothing
# changes an event once made; only the type checker's read-only guard is given up.
@dataclass(slots=True, init=False)
class Decided:
    at: float
    attempt: Attempt
    verdict: Verdict

    def __init__(self, at: float, attempt: Attempt, verdict: Verdict) -> None:
        self.at = at
        self.attempt = attempt
        self.verdict = verdict


@dataclass(slots=True, init=False)
class Reported:
    at: float
    attempt: Attempt
    outcome: Outcome

    def __init__(self, at: float, attempt: Attempt, outcome: Outcome) -> None:
        self.at = at
        self.attempt = attempt
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class ListAdded:
    at: float
    list: ListName
    entry: ListEntry
    by: str


@dataclass(frozen=True, slots=True)
class AutoBlocked(ListAdded):
    """A block-list entry a policy rule with `block` made (`by` is "policy:<rule name>")."""

    rule: str = ""


@dataclass(frozen=True, slots=True)
class ListRemoved:
    at: float
    list: ListName
    entry: ListEntry
    by: str


@dataclass(
    slots=True, init=False
)  # compiled `__init__`, as Decided's: a success from a new network
class Familiar:
    """An account's success from a network or device worth remembering (new or refreshed)."""

    at: float
    login: str
    marker: str
    # Learned from another node's report: that node already wrote it to the shared store, so
    # this node keeps it in its local mirror only.
    from_peer: bool = False

    def __init__(self, at: float, login: str, marker: str, from_peer: bool = False) -> None:
        self.at = at
        self.login = login
        self.marker = marker
        self.from_peer = from_peer


@dataclass(frozen=True, slots=True)
class PostureChanged:
    at: float
    before: Posture
    record: PostureRecord
    figures: dict[str, Any] = field(default_factory=dict)  # the detector's figures then
    ttl: float = 0.0  # as the operator gave it (0: none), for the journal


@dataclass(frozen=True, slots=True)
class CountersReset:
    at: float
    login: str
    ip: str
    cleared: int


@dataclass(frozen=True, slots=True)
class FetchersLearned:
    """The learned mail fetchers (engine/exposure.py), in their stored form."""

    at: float
    snapshot: str


EngineEvent = (
    Decided
    | Reported
    | ListAdded
    | ListRemoved
    | Familiar
    | PostureChanged
    | CountersReset
    | FetchersLearned
)
Listener = Callable[[EngineEvent], None]
