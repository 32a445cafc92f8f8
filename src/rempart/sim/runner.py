"""The in-process runner: every event of a world through a defender on a virtual clock.

Owns the loop decide → (password check) → report → score, with `now = t / time_scale` so the
same compressed timeline can be replayed over HTTP and compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rempart.model import Attempt
from rempart.sim.attacks import LEAK_REPLAYS
from rempart.sim.defender import Defender, posture_log
from rempart.sim.outcome import effect_of, is_takeover, outcome_of
from rempart.sim.scoring import Scorer
from rempart.sim.world import World, pwhash

Pacer = Callable[[float], bool]


def run(
    world: World,
    defender: Defender,
    time_scale: float = 1.0,
    pace: Pacer | None = None,
    kind: str = "inprocess",
) -> dict[str, Any]:
    """Play the world against the defender; returns the JSON-ready result.

    `pace(now)` (HTTP runner) is called before each event: it waits for the wall clock and
    returns False to stop early when a bound is reached; the result then says `truncated`.
    """
    scorer = Scorer(world.duration_s, world.attack_starts, world.cohorts())
    record = scorer.record
    decide, report = defender.decide, defender.report
    started = time.perf_counter()
    events = 0
    truncated = False
    for event in world.stream():
        now = event.t / time_scale
        if pace is not None and not pace(now):
            truncated = True
            break
        attempt = Attempt(
            event.login,
            event.ip,
            event.protocol,
            pwhash(event.password),
            event.device_id,
            event.user_agent,
            True,
            app_password=event.app_password,
        )
        verdict = decide(attempt, now)
        effect = effect_of(event, verdict.action)
        report(attempt, outcome_of(event, effect), now)
        record(event, verdict, effect, is_takeover(event, effect))
        events += 1
    elapsed = time.perf_counter() - started
    result = scorer.result(
        posture_log(defender), defender.name, world.scenario.name, world.seed, time_scale
    )
    result["runner"] = {
        "kind": kind,
        "events": events,
        "seconds": round(elapsed, 2),
        "time_scale": time_scale,
        "truncated": truncated,
    }
    result["attack_kinds"] = {a.name: a.kind for a in world.scenario.attacks}
    replays = any(a.kind in LEAK_REPLAYS for a in world.scenario.attacks)
    result["valid_leaked_pairs"] = len(world.leak.valid_at(world.pop, 0.0)) if replays else None
    return result
