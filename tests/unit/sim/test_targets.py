"""Issue 6's targets in docs/detection.md: met or missed, and by how much."""

from __future__ import annotations

from rempart.model import Protocol
from rempart.sim import detection
from rempart.sim.defender import PostureChange
from rempart.sim.scenario import Scenario
from rempart.sim.scoring import Scorer


def res(policy: str, takeovers: int, posture: float | None, denied: int = 0) -> dict:
    legit = {"attempts": 1000, "denied": denied, "users_denied": min(denied, 3)}
    return {
        "policy": policy,
        "takeovers": takeovers,
        "legit": legit,
        "time_to_posture_change_s": posture,
        "time_to_strict_s": None if posture is None else posture + 20,
    }


def test_targets_met_and_missed_by_how_much() -> None:
    rows = [
        (Scenario("botnet"), [res("none", 1000, None), res("rempart", 3, 30.0)]),
        (Scenario("cgnat"), [res("none", 270, None), res("rempart", 158, 40.2, denied=20)]),
        (Scenario("baseline"), [res("none", 0, None), res("rempart", 0, None)]),
    ]
    lines = detection.targets(rows)
    text = "\n".join(lines)
    assert "| botnet | 30.0 s | 50.0 s | 3 vs 1000 (99.7% fewer)" in text
    assert lines[2].endswith("| yes |") and lines[3].endswith("| no |")
    assert "baseline" not in text  # no attack: no target
    miss = lines[-1]
    assert miss.startswith("- Missed in `cgnat`")
    assert "posture change 10.2 s late" in miss
    assert "158 takeovers, 41.5% below none (the target allows 1)" in miss
    assert "2.00% of legitimate attempts denied" in miss
    late = detection.targets(
        [(Scenario("spray"), [res("none", 19, None), res("rempart", 0, 30.2)])]
    )
    assert "posture change 0.2 s late: the tick that closed at 30 s raised it" in late[-1]


def test_time_to_strict_is_scored() -> None:
    scorer = Scorer(3600.0, {"botnet": 100.0})
    postures = [
        PostureChange(130.0, Protocol.IMAP, "guarded"),
        PostureChange(150.0, Protocol.IMAP, "strict"),
    ]
    result = scorer.result(postures, "rempart", "botnet", 1)
    assert result["time_to_posture_change_s"] == 30.0
    assert result["time_to_strict_s"] == 50.0
