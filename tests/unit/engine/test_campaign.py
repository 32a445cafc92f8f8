"""Campaign detector: no false alarm on legit traffic (surges included), fast detection, hysteresis."""

from __future__ import annotations

import functools
import operator
import random

import pytest

from rempart.config import ConfigError, from_mapping
from rempart.engine.campaign import CampaignDetector, CampaignSettings
from rempart.engine.engine import Engine
from rempart.engine.events import PostureChanged
from rempart.model import Action, Attempt, Outcome, Protocol

T0 = 1_800_000_000.0 - (1_800_000_000.0 % 86400)  # midnight


def legit_second(
    det: CampaignDetector, rng: random.Random, now: float, rate: float, fail_ratio: float = 0.03
) -> list:
    changes = []
    for _ in range(_poisson(rng, rate)):
        failed = rng.random() < fail_ratio
        ip = f"10.{rng.randrange(50)}.{rng.randrange(256)}.{rng.randrange(256)}"
        changes += det.observe(
            "imap",
            now + rng.random(),
            failed,
            False,
            familiar=rng.random() < 0.97,
            leaked=False,
            ip=ip,
            subnet=ip.rsplit(".", 1)[0],
        )
    return changes


def _poisson(rng: random.Random, lam: float) -> int:
    # Normal approximation is fine for the rates used here.
    return max(0, round(rng.gauss(lam, lam**0.5)))


def run_day(
    det: CampaignDetector,
    rng: random.Random,
    seconds: int,
    start: float,
    rate_at=lambda t: 30.0,
    attack_at=None,
) -> list[tuple[float, tuple]]:
    seen = []
    for s in range(seconds):
        now = start + s
        for change in legit_second(det, rng, now, rate_at(s)):
            seen.append((now, change))
        if attack_at is not None:
            for change in attack_at(det, rng, now, s):
                seen.append((now, change))
    return seen


def test_no_false_alarm_on_a_legit_day_with_diurnal_swing_and_reconnect_surge() -> None:
    det = CampaignDetector(CampaignSettings())
    rng = random.Random(3)

    def rate(s: int) -> float:
        base = 10 + 40 * (0.5 - 0.5 * __import__("math").cos(2 * 3.14159 * s / 86400))
        # 09:00 network outage ends: every client reconnects at once for 5 minutes (x10).
        return base * (10 if 9 * 3600 <= s < 9 * 3600 + 300 else 1)

    changes = run_day(det, rng, 12 * 3600, T0, rate)
    assert changes == []
    assert det.state("imap").level == "normal"


def stuffing(det: CampaignDetector, rng: random.Random, now: float, s: int, start: int) -> list:
    if s < start:
        return []
    out = []
    for _ in range(3):  # 180 tries a minute from a botnet: every IP new, unfamiliar
        ip = f"203.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        out += det.observe(
            "imap",
            now + rng.random(),
            True,
            rng.random() < 0.5,
            familiar=False,
            leaked=rng.random() < 0.1,
            ip=ip,
            subnet=ip.rsplit(".", 1)[0],
        )
    return out


def test_attack_raises_posture_within_30_seconds_then_calms_down() -> None:
    det = CampaignDetector(CampaignSettings(calm_minutes=5))
    rng = random.Random(5)
    start = 3600
    stop = start + 1800
    seen = run_day(
        det,
        rng,
        2 * 3600 + 1800,
        T0,
        lambda s: 30.0,
        lambda d, r, now, s: stuffing(d, r, now, s, start) if s < stop else [],
    )
    rises = [(t - T0 - start, c) for t, c in seen if c[2] != "normal"]
    assert rises, "the attack was not detected"
    assert rises[0][0] <= 30, rises[0]
    assert any(c[2] == "strict" for _, c in rises)
    falls = [(t - T0 - stop, c) for t, c in seen if t - T0 >= stop]
    assert falls and falls[-1][1][2] == "normal"
    assert det.state("imap").level == "normal"
    assert det.state("pop3").level == "normal"  # other protocols untouched


def test_closed_only_when_allowed() -> None:
    for allowed, expected in ((False, "strict"), (True, "closed")):
        det = CampaignDetector(CampaignSettings(allow_auto_close=allowed, closed_score=20))
        rng = random.Random(9)

        def flood(d, r, now, s):  # a massive attack: 30 tries a second
            if s < 1800:
                return []
            return functools.reduce(
                operator.iadd, (stuffing(d, r, now, s, 0) for _ in range(10)), []
            )

        run_day(det, rng, 1900, T0, lambda s: 30.0, flood)
        assert det.state("imap").level == expected


def test_engine_applies_posture_and_operator_override_holds() -> None:
    engine = Engine.in_memory()
    events = []
    engine.listeners.append(events.append)
    home = Attempt(login="ann@example.org", ip="192.0.2.10", protocol=Protocol.IMAP)
    engine.report(home, Outcome(success=True), T0)
    engine.set_posture(Protocol.IMAP, "strict", "cli:ops", "incident 42", now=T0 + 1, ttl=3600)
    assert engine.decide(home, T0 + 2).action is Action.ALLOW  # familiar client keeps working
    stranger = Attempt(login="ann@example.org", ip="198.51.100.1", protocol=Protocol.IMAP)
    verdict = engine.decide(stranger, T0 + 2)
    assert verdict.action is Action.DENY and verdict.codes == ["posture_strict"]
    assert "website" in verdict.message and "http" not in verdict.message
    pop = Attempt(login="ann@example.org", ip="198.51.100.1", protocol=Protocol.POP3)
    assert engine.decide(pop, T0 + 2).action is Action.ALLOW  # other protocols untouched
    web = Attempt(login="ann@example.org", ip="198.51.100.1", protocol=Protocol.WEB)
    engine.set_posture(Protocol.WEB, "strict", "cli:ops", "incident 42", now=T0 + 3)
    assert engine.decide(web, T0 + 4).action is Action.STEP_UP
    posture = [e for e in events if isinstance(e, PostureChanged)]
    first = posture[0].record
    assert first.by == "cli:ops" and first.reason == "incident 42"
    assert posture[0].before == "normal" and first.level == "strict"
    assert first.held and first.until == T0 + 1 + 3600
    # Quiet traffic: the detector does not override the operator before the TTL...
    engine.tick(T0 + 1800)
    assert engine.posture_of(Protocol.IMAP) == "strict"
    # ...and takes over after it, stepping down after the calm period.
    engine.tick(T0 + 3600 + 60)
    engine.tick(T0 + 3600 + 16 * 60)
    engine.tick(T0 + 3600 + 32 * 60)
    assert engine.posture_of(Protocol.IMAP) == "normal"


def test_allowlisted_senders_pass_in_every_posture() -> None:
    from rempart.engine.lists import ListEntry

    engine = Engine.in_memory()
    engine.add_entry("allow", ListEntry("netmask", "192.0.2.0/24", 0, "doctors' EHR", T0))
    engine.set_posture(Protocol.SMTP, "closed", "ops", "test", now=T0)
    sender = Attempt(login="dr.who@example.org", ip="192.0.2.77", protocol=Protocol.SMTP)
    assert engine.decide(sender, T0 + 1).action is Action.ALLOW
    other = Attempt(login="x@example.org", ip="198.51.100.7", protocol=Protocol.SMTP)
    assert engine.decide(other, T0 + 1).codes == ["posture_closed"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"guarded_score": 20, "strict_score": 10}, "must rise"),
        ({"tick_seconds": -1}, "positive"),
        ({"allow_auto_close": "yes"}, "true or false"),
        ({"bogus": 1}, "unknown key"),
    ],
)
def test_bad_campaign_config(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Engine(from_mapping({"campaign": table}))


def test_bad_posture_values_change_nothing() -> None:
    engine = Engine.in_memory()
    with pytest.raises(ValueError):
        engine.set_posture(Protocol.IMAP, "panic", "ops", "x")
    with pytest.raises(ValueError):
        engine.set_posture(Protocol.IMAP, "strict", "ops", "x", ttl=-5)
    assert engine.posture_of(Protocol.IMAP) == "normal"
