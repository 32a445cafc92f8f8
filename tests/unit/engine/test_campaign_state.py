"""The campaign detector's learned state: dump → JSON → load gives the same detector, and a
corrupt state is refused whole (ValueError) without touching the detector."""

from __future__ import annotations

import json
import random

import pytest

from rempart.engine.campaign import CampaignDetector, CampaignSettings
from tests.unit.engine.test_campaign import T0, run_day, stuffing


def learned() -> CampaignDetector:
    det = CampaignDetector(CampaignSettings())
    run_day(det, random.Random(4), 3600, T0, lambda s: 30.0)
    return det


def test_round_trip_keeps_baselines_pending_and_window() -> None:
    det = learned()
    text = json.dumps(det.dump(), separators=(",", ":"))
    assert len(text) < 20_000  # compact: a few KB per protocol
    copy = CampaignDetector(CampaignSettings())
    copy.load(json.loads(text))
    a, b = det.state("imap"), copy.state("imap")
    for name, baseline in a.baselines.items():
        other = b.baselines[name]
        assert (baseline.mean, baseline.var, baseline.samples) == (
            other.mean,
            other.var,
            other.samples,
        )
        assert baseline.hourly == other.hourly
    assert (a.learned_ticks, a.evidence, a.tick_index) == (
        b.learned_ticks,
        b.evidence,
        b.tick_index,
    )
    assert list(a.pending) == list(b.pending) and len(a.pending) > 0
    assert [t.attempts for t in a.ticks] == [t.attempts for t in b.ticks]
    assert a.ips.bitmaps == b.ips.bitmaps and a.ips.epoch == b.ips.epoch
    # Both go on the same way: the same traffic gives the same scores.
    for d in (det, copy):
        run_day(d, random.Random(6), 120, T0 + 3600, lambda s: 30.0)
    assert det.state("imap").score == copy.state("imap").score
    assert det.state("imap").figures == copy.state("imap").figures


def test_a_restored_detector_still_sees_an_attack_in_progress() -> None:
    det = learned()
    copy = CampaignDetector(CampaignSettings())
    copy.load(json.loads(json.dumps(det.dump())))
    seen = run_day(
        copy,
        random.Random(7),
        120,
        T0 + 3600,
        lambda s: 30.0,
        lambda d, r, now, s: stuffing(d, r, now, s, 0),
    )
    assert seen and seen[0][0] - (T0 + 3600) <= 30


@pytest.mark.parametrize(
    "corrupt",
    [
        None,
        [],
        {"version": 99, "tick_seconds": 10, "window_ticks": 6, "protocols": {}},
        {"version": 1},
        "garbage",
    ],
)
def test_corrupt_state_is_refused_whole(corrupt: object) -> None:
    det = learned()
    before = json.dumps(det.dump())
    with pytest.raises(ValueError):
        det.load(corrupt)
    assert json.dumps(det.dump()) == before


def test_truncated_or_wrong_values_are_refused() -> None:
    good = learned().dump()
    broken = json.loads(json.dumps(good))
    broken["protocols"]["imap"]["baselines"]["failures"][0] = "nan"
    with pytest.raises(ValueError):
        CampaignDetector(CampaignSettings()).load(broken)
    short = json.loads(json.dumps(good))
    short["protocols"]["imap"]["sketches"]["ips"][1] = "AAAA"
    with pytest.raises(ValueError):
        CampaignDetector(CampaignSettings()).load(short)


def test_changed_tick_settings_keep_the_baselines_only() -> None:
    det = learned()
    other = CampaignDetector(CampaignSettings(tick_seconds=5.0))
    other.load(det.dump())
    st = other.state("imap")
    assert st.baselines["failures"].mean == det.state("imap").baselines["failures"].mean
    assert st.tick_index == -1 and not st.ticks
