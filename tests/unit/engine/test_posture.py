"""Posture records: hold or hand back, TTL expiry, one path for operator, detector and peers."""

from __future__ import annotations

import math

import pytest

from rempart.engine.engine import Engine
from rempart.engine.events import PostureChanged
from rempart.engine.posture import PostureRecord, PostureSource
from rempart.engine.records import event_record, posture_of_record
from rempart.model import Posture, Protocol

T0 = 1_800_000_000.0


def test_raised_level_without_ttl_holds_until_changed() -> None:
    engine = Engine.in_memory()
    record = engine.set_posture(Protocol.IMAP, "strict", "ops", "incident", now=T0)
    assert record.held and record.until is None and record.source is PostureSource.OPERATOR
    assert engine.campaign is not None
    assert engine.campaign.state("imap").manual_until == math.inf


def test_normal_without_ttl_hands_back_to_the_detector() -> None:
    engine = Engine.in_memory()
    engine.set_posture(Protocol.IMAP, "strict", "ops", "incident", now=T0)
    record = engine.set_posture(Protocol.IMAP, "normal", "ops", "over", now=T0 + 60)
    assert not record.held
    assert engine.campaign is not None
    assert engine.campaign.state("imap").manual_until == 0.0  # the detector runs again
    assert engine.posture_of(Protocol.IMAP) is Posture.NORMAL


def test_explicit_hand_back_keeps_the_level_for_the_detector_to_move() -> None:
    engine = Engine.in_memory()
    record = engine.set_posture(Protocol.WEB, "guarded", "ops", "watch", now=T0, hold=False)
    assert not record.held and engine.posture_of(Protocol.WEB) is Posture.GUARDED
    assert engine.campaign is not None
    st = engine.campaign.state("web")
    assert st.level == "guarded" and st.manual_until == 0.0


def test_ttl_needs_a_hold() -> None:
    engine = Engine.in_memory()
    with pytest.raises(ValueError, match="hold"):
        engine.set_posture(Protocol.IMAP, "strict", "ops", "x", now=T0, ttl=60, hold=False)
    assert engine.posture_of(Protocol.IMAP) is Posture.NORMAL


@pytest.mark.parametrize("ttl", [-1.0, 30 * 86400.0 + 1, math.inf, math.nan])
def test_ttl_must_be_between_zero_and_thirty_days(ttl: float) -> None:
    engine = Engine.in_memory()
    with pytest.raises(ValueError, match="ttl must be between 0 and 30 days"):
        engine.set_posture(Protocol.IMAP, "strict", "ops", "x", now=T0, ttl=ttl)
    assert engine.posture_of(Protocol.IMAP) is Posture.NORMAL


def test_the_change_record_rebuilds_the_very_same_posture_record() -> None:
    """What a peer or a journal replay rebuilds equals what this node holds, `since` included
    (kept to the microsecond, as the record's `ts` is)."""
    engine = Engine.in_memory()
    events: list[object] = []
    engine.listeners.append(events.append)
    now = T0 + 0.123456789
    engine.set_posture(Protocol.IMAP, "strict", "ops", "x", now=now, ttl=600)
    engine.set_posture(Protocol.POP3, "guarded", "ops", "y", now=now + 1.000000777, hold=False)
    engine.tick(now + 601.5555555)
    changes = [e for e in events if isinstance(e, PostureChanged)]
    assert len(changes) == 3
    for change in changes:
        assert posture_of_record(event_record(change)) == change.record


def test_a_held_ttl_ends_in_tick_and_is_announced() -> None:
    engine = Engine.in_memory()
    events: list[object] = []
    engine.listeners.append(events.append)
    engine.set_posture(Protocol.IMAP, "strict", "ops", "x", now=T0, ttl=600)
    engine.tick(T0 + 300)
    assert engine.posture_record(Protocol.IMAP).held
    engine.tick(T0 + 601)
    record = engine.posture_record(Protocol.IMAP)
    assert not record.held and record.level is Posture.STRICT and record.reason == "hold expired"
    changes = [e for e in events if isinstance(e, PostureChanged)]
    assert [c.record.held for c in changes] == [True, False]


def test_peer_and_restored_postures_are_not_emitted_but_apply() -> None:
    engine = Engine.in_memory()
    events: list[object] = []
    engine.listeners.append(events.append)
    held = PostureRecord(
        Protocol.POP3, Posture.CLOSED, PostureSource.OPERATOR, "api", "x", T0, T0 + 900, True
    )
    engine.apply_peer_posture(held, now=T0 + 1)
    assert engine.posture_of(Protocol.POP3) is Posture.CLOSED
    assert engine.campaign is not None
    assert engine.campaign.state("pop3").manual_until == T0 + 900
    detector = PostureRecord(
        Protocol.SMTP, Posture.GUARDED, PostureSource.DETECTOR, "detector", "", T0
    )
    engine.restore_posture(detector, now=T0 + 1)
    assert engine.campaign.state("smtp").level == "guarded"
    assert engine.campaign.state("smtp").manual_until == 0.0
    assert events == []


def test_snapshot_shows_who_set_the_posture_and_until_when() -> None:
    engine = Engine.in_memory()
    engine.set_posture(Protocol.IMAP, "strict", "console:ann", "wave", now=T0, ttl=3600)
    view = engine.snapshot().postures[Protocol.IMAP].as_json(T0 + 10)
    assert view["level"] == "strict" and view["set_by"] == "console:ann"
    assert view["held"] and view["until"] == T0 + 3600 and view["source"] == "operator"
    assert engine.snapshot().postures[Protocol.IMAP].as_json(T0 + 3601)["held"] is False
