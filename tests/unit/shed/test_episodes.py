"""Shedding episodes: the tracker's events, their log lines, journal records and the report."""

from __future__ import annotations

import time
from pathlib import Path

from rempart.ops.journal import Journal
from rempart.ops.report import build, render
from rempart.shed.classes import Criticality as C
from rempart.shed.episodes import (
    EpisodeEnded,
    EpisodeSettings,
    EpisodeStarted,
    EpisodeSummary,
    EpisodeTracker,
    LimitMoved,
    ShedRecordKind,
    describe,
    episodes_of,
    journal_entry,
)
from rempart.shed.state import ServiceState

T0 = 1_800_000_000.0


def state(
    shares: dict[C, int] | None = None, shed: dict[C, int] | None = None, limit: float = 20.0
) -> ServiceState:
    svc = ServiceState("web", limit=limit, rtt=0.004, rtt_noload=0.002, capacity=4250.0)
    for cls, pct in (shares or {}).items():
        svc.classes[cls].admitted_pct = pct
    for cls, total in (shed or {}).items():
        svc.classes[cls].shed_total = total
    svc.classes[C.SHEDDABLE].demand_rps = 9000.0
    return svc


def tracker(**kw: float) -> EpisodeTracker:
    return EpisodeTracker("web", EpisodeSettings(**kw), limit=20.0)


def test_an_episode_starts_says_what_is_shed_and_ends_with_the_count() -> None:
    t = tracker(end_after=2.0)
    assert t.observe(state(shed={C.SHEDDABLE: 500}), T0) == []  # all admitted: nothing to say
    [started] = t.observe(state({C.SHEDDABLE: 40}, {C.SHEDDABLE: 500}), T0 + 1)
    assert isinstance(started, EpisodeStarted)
    assert started.shares == {"sheddable": 40} and started.limit == 20.0
    assert started.capacity_rps == 4250.0 and started.demand_rps["sheddable"] == 9000.0
    assert "shedding started on web: admitting sheddable 40 %" in describe(started)
    assert (
        t.observe(state({C.SHEDDABLE: 0, C.SHEDDABLE_PLUS: 70}, {C.SHEDDABLE: 900}), T0 + 2) == []
    )
    # The stick-table entry expired and started again (counter below its last value): 30 more.
    assert t.observe(state({C.SHEDDABLE: 10}, {C.SHEDDABLE: 30}), T0 + 3) == []
    assert t.observe(state(shed={C.SHEDDABLE: 35}), T0 + 4) == []  # fully admitted, not yet quiet
    [ended] = t.observe(state(shed={C.SHEDDABLE: 35}), T0 + 6)
    assert isinstance(ended, EpisodeEnded)
    assert ended.duration == 5.0 and ended.started == T0 + 1
    assert ended.turned_away == {"critical_plus": 0, "critical": 0, "sheddable_plus": 0,
                                 "sheddable": 435}  # fmt: skip
    assert ended.lowest_shares == {"sheddable": 0, "sheddable_plus": 70}
    line = describe(ended)
    assert "ended on web after 5.0 s: 435 requests turned away (sheddable 435)" in line
    assert t.episode is None


def test_a_flickering_share_is_one_episode() -> None:
    t = tracker(end_after=5.0)
    events = []
    for i in range(10):  # 90 % / 100 % alternately, every second: never quiet for 5 s
        events += t.observe(state({C.SHEDDABLE: 90 if i % 2 == 0 else 100}), T0 + i)
    assert [type(e) for e in events] == [EpisodeStarted]


def test_summary_every_interval_while_it_lasts() -> None:
    t = tracker(summary_interval=60.0)
    kinds = []
    for second in range(0, 181, 10):
        shed = {C.SHEDDABLE: 100 * second}
        kinds += [type(e) for e in t.observe(state({C.SHEDDABLE: 20}, shed), T0 + second)]
    assert kinds == [EpisodeStarted, EpisodeSummary, EpisodeSummary, EpisodeSummary]
    [summary] = t.observe(state({C.SHEDDABLE: 20}, {C.SHEDDABLE: 24_000}), T0 + 240)
    assert isinstance(summary, EpisodeSummary)
    assert summary.turned_away["sheddable"] == 24_000 and summary.shares["sheddable"] == 20
    assert "still shedding on web after 240 s" in describe(summary)


def test_limit_moves_beyond_the_threshold_only() -> None:
    t = tracker(limit_change=0.25)
    assert t.observe(state(limit=24.0), T0) == []  # +20 %: below the threshold
    [moved] = t.observe(state(limit=26.0), T0 + 1)
    assert isinstance(moved, LimitMoved) and (moved.before, moved.after) == (20.0, 26.0)
    assert t.observe(state(limit=30.0), T0 + 2) == []  # +15 % over the last reported 26
    events = t.observe(state({C.SHEDDABLE: 50}, limit=12.0), T0 + 3)
    assert [type(e) for e in events] == [EpisodeStarted, LimitMoved]
    assert isinstance(events[1], LimitMoved) and events[1].shedding is True
    assert describe(events[1]).endswith("moved 26 → 12 (shedding)")


def test_journal_records_read_back_into_the_incident_report(tmp_path: Path) -> None:
    t = tracker(end_after=1.0, summary_interval=2.0)
    journal = Journal(tmp_path / "journal")
    journal.start()
    now = time.time() - 100
    try:
        seen = [
            *t.observe(state(shed={C.SHEDDABLE: 0}), now),
            *t.observe(state({C.SHEDDABLE: 30}, {C.SHEDDABLE: 0}, limit=31.0), now + 1),
            *t.observe(state({C.SHEDDABLE: 0}, {C.SHEDDABLE: 1200}, limit=31.0), now + 3),
            *t.observe(state(shed={C.SHEDDABLE: 1234}, limit=31.0), now + 4),
            *t.observe(state(shed={C.SHEDDABLE: 1234}, limit=31.0), now + 6),
        ]
        for event in seen:
            journal.append(*journal_entry(event))
        assert journal.flush()
    finally:
        journal.close()
    records = list(Journal(tmp_path / "journal").records())
    assert [r["kind"] for r in records] == [
        ShedRecordKind.START, ShedRecordKind.LIMIT, ShedRecordKind.SUMMARY, ShedRecordKind.END,
    ]  # fmt: skip
    assert records[0]["shares"] == {"sheddable": 30} and records[0]["service"] == "web"
    assert records[-1]["duration_s"] == 5.0 and records[-1]["turned_away"]["sheddable"] == 1234
    [episode] = episodes_of(records)
    assert episode.ended == records[-1]["ts"] and episode.total_turned_away == 1234
    assert episode.lowest_shares == {"sheddable": 0}

    report = build(records, now - 10, now + 60)
    assert len(report.shedding) == 1
    html = render(report)
    assert '<section id="shedding">' in html
    assert "sheddable 0 %" in html and "1,234 (sheddable 1,234)" in html and "5 s" in html
    assert 'data-figure="Requests shed">1,234<' in html


def test_report_without_shedding_says_so() -> None:
    html = render(build([], T0, T0 + 3600))
    assert "Admission control turned nobody away in this window." in html


def test_an_episode_begun_before_the_window_is_still_listed() -> None:
    end = journal_entry(
        EpisodeEnded(T0 + 600, "web", T0, {"sheddable": 10}, {"sheddable": 77}, 18.0)
    )
    kind, ts, fields = end
    [episode] = episodes_of([{"ts": ts, "kind": kind, **fields}])
    assert (episode.started, episode.ended, episode.total_turned_away) == (T0, T0 + 600, 77)
    assert episodes_of([{"kind": "shed_end", "service": "web"}]) == []  # no episode: skipped
