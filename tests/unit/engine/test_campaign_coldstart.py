"""Campaign detector with nothing learned: it acts on its priors within a minute under attack,
stays normal on a quiet start (even with empty familiarity), and hands over to what it learns."""

from __future__ import annotations

import random

from rempart.engine.campaign import PRIORS, CampaignDetector, CampaignSettings
from tests.unit.engine.test_campaign import T0, run_day, stuffing


def fresh_deployment_second(
    det: CampaignDetector, rng: random.Random, now: float, rate: float, fail_ratio: float
) -> list:
    """Legit traffic as a fresh deployment sees it: no network is familiar to any account."""
    changes = []
    for _ in range(max(0, round(rng.gauss(rate, rate**0.5)))):
        ip = f"10.{rng.randrange(50)}.{rng.randrange(256)}.{rng.randrange(256)}"
        changes += det.observe(
            "imap",
            now + rng.random(),
            rng.random() < fail_ratio,
            False,
            familiar=False,
            leaked=False,
            ip=ip,
            subnet=ip.rsplit(".", 1)[0],
        )
    return changes


def test_quiet_cold_start_with_empty_familiarity_stays_normal() -> None:
    for rate, fail_ratio in ((2.0, 0.05), (30.0, 0.05), (300.0, 0.06)):
        det = CampaignDetector(CampaignSettings())
        rng = random.Random(11)
        changes = []
        for s in range(3600):
            changes += fresh_deployment_second(det, rng, T0 + 8 * 3600 + s, rate, fail_ratio)
        assert changes == [], (rate, changes)
        assert det.state("imap").level == "normal"


def test_one_client_hammering_a_fresh_deployment_is_not_a_campaign() -> None:
    det = CampaignDetector(CampaignSettings())
    changes = []
    for s in range(600):  # a stale client retrying twice a second from one address
        for k in range(2):
            changes += det.observe(
                "imap", T0 + s + k / 2, True, False, False, False, "192.0.2.7", "192.0.2"
            )
    assert changes == []


def test_attack_already_running_at_start_raises_within_a_minute() -> None:
    det = CampaignDetector(CampaignSettings())
    rng = random.Random(5)
    seen = run_day(
        det, rng, 600, T0 + 8 * 3600, lambda s: 30.0, lambda d, r, now, s: stuffing(d, r, now, s, 0)
    )
    assert seen, "an attack running from the first second was not detected"
    first_t, (_protocol, before, after) = seen[0]
    assert first_t - (T0 + 8 * 3600) <= 60 and (before, after) == ("normal", "guarded")
    # 180 failing bots a minute in 1,800 attempts (12 % of failing IPs): guarded, not strict
    # (14 %), and it holds while the attack runs.
    assert det.state("imap").level == "guarded"
    # Nothing of the attack was learned: the baselines still hold the priors alone.
    st = det.state("imap")
    assert st.learned_ticks == 0
    assert st.baselines["failures"].mean == PRIORS["failures"][0]


def test_learned_baselines_take_over_from_the_priors() -> None:
    det = CampaignDetector(CampaignSettings())
    rng = random.Random(3)
    run_day(det, rng, 2 * 3600, T0, lambda s: 30.0)
    failures = det.state("imap").baselines["failures"]
    # The service fails 3 % of logins (the test's legit traffic); the prior's spread is gone.
    assert abs(failures.mean - 0.03) < 0.01
    assert failures.var**0.5 < PRIORS["failures"][1] / 2


def test_posture_raised_on_priors_holds_while_the_attack_runs_quietly() -> None:
    """Loud start, then only a slow part of the wave: still above the priors' means, so the
    posture raised on priors alone does not step down (calm_minutes is short here)."""
    det = CampaignDetector(CampaignSettings(calm_minutes=5))
    rng = random.Random(8)

    def attack(d, r, now, s):
        if s < 300:
            return stuffing(d, r, now, s, 0)
        if s % 4:  # then 15 failing bots a minute: 8 % of attempts
            return []
        ip = f"203.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
        return d.observe("imap", now, True, False, False, False, ip, ip.rsplit(".", 1)[0])

    seen = run_day(det, rng, 3600, T0 + 8 * 3600, lambda s: 3.0, attack)
    assert det.state("imap").level != "normal", seen
