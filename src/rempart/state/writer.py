"""The durable side of engine events: lists, familiarity, posture records and learned
fetchers into the Store, and their restore at start.

`StateWriter.listener` is an engine listener (queueing writes only: the Store's own thread does
the I/O). Posture records are stored as JSON settings `posture.<protocol>`; a bare level there
(written before postures had records) restores as the detector's posture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from rempart.engine.events import (
    Decided,
    EngineEvent,
    Familiar,
    FetchersLearned,
    ListAdded,
    ListRemoved,
    PostureChanged,
    Reported,
)
from rempart.engine.posture import PostureRecord, PostureSource
from rempart.model import ListName, Posture, Protocol

if TYPE_CHECKING:
    from rempart.engine.engine import Engine
    from rempart.state.store import Store

log = logging.getLogger(__name__)


FETCHERS_KEY = "exposure.fetchers"


def posture_key(protocol: Protocol) -> str:
    return f"posture.{protocol.value}"


def encode_posture(record: PostureRecord) -> str | None:
    """The stored form of a posture record (None: nothing to keep, the detector's normal)."""
    if record.level is Posture.NORMAL and record.source is PostureSource.DETECTOR:
        return None
    return orjson.dumps(record.as_json()).decode()


def decode_posture(protocol: Protocol, value: str) -> PostureRecord:
    """A stored posture; ValueError when it is neither a record nor a level."""
    if not value.startswith("{"):
        level = Posture.parse(value)
        return PostureRecord(protocol, level, PostureSource.DETECTOR, "detector", "restored", 0.0)
    try:
        record = PostureRecord.from_json(orjson.loads(value))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable posture record: {exc}") from None
    if record.protocol is not protocol:
        raise ValueError(f"record of {record.protocol.value} under {protocol.value}")
    return record


def _now(write: Callable[[], None]) -> None:
    write()


class StateWriter:
    """Writes what the engine learns or is told into the Store, and reads it back at start."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Runs a list or posture write once the journal holds its record (the server sets it
        # to the journal's `after_durable`; without a journal, at once).
        self.after_durable: Callable[[Callable[[], None]], None] = _now

    def listener(self, event: EngineEvent) -> None:
        kind = type(event)
        if kind is Decided or kind is Reported:
            return  # one of these per request, and nothing to keep: no class patterns tried
        store = self.store
        match event:
            case ListAdded(list=which, entry=entry):
                self.after_durable(lambda: store.put_entry(which.value, entry))
            case ListRemoved(list=which, entry=entry):
                self.after_durable(lambda: store.delete_entry(which.value, entry.kind, entry.value))
            case Familiar(at=at, login=login, marker=marker, from_peer=from_peer):
                store.put_familiarity(login, marker, at, shared=not from_peer)
            case PostureChanged(record=record):
                key, value = posture_key(record.protocol), encode_posture(record)
                self.after_durable(lambda: store.put_setting(key, value))
            case FetchersLearned(snapshot=snapshot):
                self.store.put_setting(FETCHERS_KEY, snapshot)
            case _:
                pass

    def restore(self, engine: Engine, now: float) -> None:
        """Load lists, familiarity and postures into `engine` (before it serves)."""
        store = self.store
        purge = getattr(store, "purge_expired", None)
        if purge is not None:
            purge(now)
        for which, entry in store.load_entries():
            engine.restore_entry(ListName(which), entry, now)
        for login, marker, last in store.load_familiarity():
            engine.restore_familiarity(login, marker, last)
        fetchers = store.get_setting(FETCHERS_KEY)
        if fetchers:
            engine.fetchers.restore(fetchers)
        for protocol in Protocol:
            value = store.get_setting(posture_key(protocol))
            if not value:
                continue
            try:
                record = decode_posture(protocol, value)
            except ValueError as exc:
                log.warning("posture of %s not restored (%s): %s", protocol.value, exc, value)
                continue
            engine.restore_posture(record, now)
