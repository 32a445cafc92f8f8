"""Campaign detector: a low-and-slow botnet is seen within 30 s; few-event scoring raises no
false alarm (quiet protocols, one client retrying, a day of small counts); hysteresis."""

from __future__ import annotations

import math
import random

import pytest

from rempart.engine.campaign import CampaignDetector, CampaignSettings, _poisson_z
from tests.unit.engine.test_campaign import T0, legit_second, run_day


def botnet_try(det: CampaignDetector, rng: random.Random, now: float) -> list:
    """One try of a residential botnet replaying a leak: a new address every time, a network
    the account has never used, the login unknown here half of the time."""
    ip = f"100.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return det.observe(
        "imap",
        now,
        True,
        rng.random() < 0.5,
        familiar=False,
        leaked=False,
        ip=ip,
        subnet=ip.rsplit(".", 1)[0],
    )


def quiet_imap_second(det: CampaignDetector, rng: random.Random, now: float, rate: float) -> list:
    """Mail clients polling from home: a few stale clients fail, always from a familiar
    network (the simulator's IMAP at night: hundreds of attempts a minute, no unfamiliar
    failure for hours)."""
    changes = []
    for _ in range(max(0, round(rng.gauss(rate, math.sqrt(rate))))):
        ip = f"10.{rng.randrange(50)}.{rng.randrange(256)}.{rng.randrange(256)}"
        changes += det.observe(
            "imap",
            now + rng.random(),
            rng.random() < 0.005,
            False,
            familiar=True,
            leaked=False,
            ip=ip,
            subnet=ip.rsplit(".", 1)[0],
        )
    return changes


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("background", ["quiet", "noisy"])
def test_botnet_at_20_tries_a_minute_is_detected_within_30_seconds(
    seed: int, background: str
) -> None:
    """The `botnet` scenario's rate at 20,000 users: about 20 tries a minute, one per address,
    against 8 legitimate attempts a second. Either against a protocol where unfamiliar
    failures never happen, or one where 3 % of attempts fail and 3 % come from unfamiliar
    networks (the other tests' legitimate model)."""
    det = CampaignDetector(CampaignSettings())
    rng = random.Random(seed)
    start = 3600  # on a tick boundary, after an hour of learning
    seen = []
    for s in range(start + 120):
        now = T0 + s
        if background == "quiet":
            seen += [(s, c) for c in quiet_imap_second(det, rng, now, 8.0)]
        else:
            seen += [(s, c) for c in legit_second(det, rng, now, 8.0)]
        if s >= start and (s - start) % 3 == 0:
            seen += [(s, c) for c in botnet_try(det, rng, now + 0.5)]
    assert not [c for s, c in seen if s < start], "false alarm before the attack"
    rises = [(s - start, c) for s, c in seen if s >= start and c[2] != "normal"]
    assert rises, "the botnet was not detected"
    assert rises[0][0] <= 30, rises[0]


def test_a_quiet_protocol_day_raises_no_false_alarm() -> None:
    """Few events: 12 hours of a quiet protocol where stale clients fail, a handful of users
    fail from unfamiliar networks now and then, and some retry several times in a row from
    the same unfamiliar address (one source: it must not look like a botnet)."""
    det = CampaignDetector(CampaignSettings())
    rng = random.Random(11)
    changes = []
    for s in range(12 * 3600):
        now = T0 + s
        rate = 4 + 6 * (0.5 - 0.5 * math.cos(2 * math.pi * s / 86400))
        changes += quiet_imap_second(det, rng, now, rate)
        if rng.random() < 1 / 600:  # a traveller mistyping, sometimes again and again
            ip = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            for k in range(rng.choice((1, 1, 2, 6))):
                changes += det.observe(
                    "imap", now + k, True, False, False, False, ip, ip.rsplit(".", 1)[0]
                )
    assert changes == []
    assert det.state("imap").level == "normal"


def test_the_posture_rises_one_level_per_tick() -> None:
    det = CampaignDetector(CampaignSettings())
    rng = random.Random(2)

    def flood(d: CampaignDetector, r: random.Random, now: float, s: int) -> list:
        if s < 1800:
            return []
        return [c for _ in range(20) for c in botnet_try(d, r, now)]

    seen = run_day(det, rng, 1860, T0, lambda s: 30.0, flood)
    levels = [(t - T0, c[1], c[2]) for t, c in seen]
    assert levels[:2] == [(1810, "normal", "guarded"), (1820, "guarded", "strict")], levels


def test_weak_evidence_must_hold_when_prompt_score_is_above_the_threshold() -> None:
    """With prompt_score raised above guarded_score, a score between the two needs
    `consecutive_ticks` ticks; the default (prompt = guarded) moves on one tick."""
    for prompt, ticks_needed in ((6.0, 1), (1000.0, 2)):
        det = CampaignDetector(CampaignSettings(prompt_score=prompt))
        st = det.state("imap")
        changes = []
        for k in range(3):
            st.score = 7.0
            change = det._move("imap", st, T0 + 10 * k)
            changes.append(change)
            if change:
                break
        assert len(changes) == ticks_needed and changes[-1] == ("imap", "normal", "guarded")


def test_poisson_tail() -> None:
    # P(X >= 4 | 0.0064) = 6.9e-11 -> z 6.42; a count at its mean does not score.
    assert _poisson_z(4, 0.0064) == pytest.approx(6.42, abs=0.01)
    assert _poisson_z(5, 5.0) == 0.0
    # Large counts take the deviance; the two agree where they meet.
    assert _poisson_z(101, 50.0) == pytest.approx(_poisson_z(100, 50.0), abs=0.15)
    # Far beyond a float's range the tail's asymptote keeps growing.
    assert 38 < _poisson_z(90, 0.01) < _poisson_z(100, 0.01)
