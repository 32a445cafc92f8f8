"""Counter checkpoints: what an engine counted comes back in another engine, exactly; a damaged,
stale or foreign checkpoint is refused with the reason and leaves the engine as it was."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from rempart.config import Settings, from_mapping
from rempart.engine.distinct import Sketch
from rempart.engine.engine import Engine
from rempart.model import Action, Attempt, Outcome, Protocol
from rempart.state.checkpoint import (
    FILE_NAME,
    Checkpointer,
    CheckpointError,
    decode,
    encode,
    longest_window,
    write,
)

T0 = 1_800_000_000.0
SPRAYER = "203.0.113.66"


def attempt(login: str, ip: str) -> Attempt:
    return Attempt(login=login, ip=ip, protocol=Protocol.IMAP, pwhash="0abc")


def fail(engine: Engine, login: str, ip: str, now: float) -> Action:
    action = engine.decide(attempt(login, ip), now).action
    engine.report(attempt(login, ip), Outcome(success=False), now)
    return action


def spray(engine: Engine, accounts: int, now: float) -> None:
    for i in range(accounts):
        assert fail(engine, f"user{i}@example.org", SPRAYER, now + i) is Action.ALLOW


def round_trip(engine: Engine, now: float, settings: Settings | None = None) -> Engine:
    raw = b"".join(encode(engine.counter_state(now)))
    restored = Engine.in_memory(settings)
    assert restored.restore_counters(decode(raw)) == len(engine.states)
    return restored


def test_a_spray_goes_on_counting_in_the_restored_engine() -> None:
    engine = Engine.in_memory()
    spray(engine, 11, T0)  # one account short of the spray rule
    fail(engine, "victim@example.org", "198.51.100.9", T0 + 20)
    fail(engine, "victim@example.org", "198.51.100.9", T0 + 21)
    restored = round_trip(engine, T0 + 30)

    assert restored.decide(attempt("user11@example.org", SPRAYER), T0 + 40).action is Action.ALLOW
    restored.report(attempt("user11@example.org", SPRAYER), Outcome(success=False), T0 + 40)
    verdict = restored.decide(attempt("user12@example.org", SPRAYER), T0 + 41)
    assert verdict.action is Action.DENY and "spray_pattern" in verdict.codes
    # The third failure of one account from one address: the ip+login counters came back too.
    fail(restored, "victim@example.org", "198.51.100.9", T0 + 42)
    assert restored.decide(attempt("victim@example.org", "198.51.100.9"), T0 + 43).action is (
        Action.DELAY
    )

    fresh = Engine.in_memory()  # the control: without the checkpoint nothing is refused
    fresh.report(attempt("user11@example.org", SPRAYER), Outcome(success=False), T0 + 40)
    assert fresh.decide(attempt("user12@example.org", SPRAYER), T0 + 41).action is Action.ALLOW
    fail(fresh, "victim@example.org", "198.51.100.9", T0 + 42)
    assert fresh.decide(attempt("victim@example.org", "198.51.100.9"), T0 + 43).action is (
        Action.ALLOW
    )


def test_restored_counters_equal_the_originals_and_keep_their_order() -> None:
    engine = Engine.in_memory()
    for i in range(300):
        ok = i % 3 == 0
        a = attempt(f"u{i % 40}@example.org", f"192.0.2.{i % 90}")
        engine.report(a, Outcome(success=ok), T0 + i * 7)
    restored = round_trip(engine, T0 + 2200)
    assert restored.states.tracked() == engine.states.tracked()
    assert restored.states.slots() == engine.states.slots()
    assert restored.rings.cells == engine.rings.cells
    assert restored.pair_rings.epochs == engine.pair_rings.epochs
    for mine, theirs in zip(
        (engine.peer_sketches, engine.user_sketches, engine.established_sketches),
        (restored.peer_sketches, restored.user_sketches, restored.established_sketches),
        strict=True,
    ):
        assert [(s.epoch, bytes(s.bitmaps)) if s else None for s in mine] == [
            (s.epoch, bytes(s.bitmaps)) if s else None for s in theirs
        ]
    # New keys take the free slots, as in the original.
    a = attempt("new@example.org", "192.0.2.200")
    engine.report(a, Outcome(success=False), T0 + 2300)
    restored.report(a, Outcome(success=False), T0 + 2300)
    assert restored.states.tracked() == engine.states.tracked()
    assert restored.states.slots() == engine.states.slots()


def test_a_smaller_key_budget_keeps_the_most_recent_keys() -> None:
    engine = Engine.in_memory()
    spray(engine, 11, T0)
    small = from_mapping({"engine": {"max_tracked_keys": 5}})
    restored = Engine.in_memory(small)
    assert restored.restore_counters(decode(b"".join(encode(engine.counter_state(T0))))) == 5
    assert restored.states.tracked() == engine.states.tracked()[-5:]


def test_other_window_settings_are_refused_and_nothing_changes() -> None:
    engine = Engine.in_memory()
    spray(engine, 3, T0)
    other = Engine.in_memory(from_mapping({"engine": {"distinct_buckets": 8}}))
    fail(other, "someone@example.org", "192.0.2.1", T0)
    before = (other.states.tracked(), other.states.slots())
    with pytest.raises(ValueError, match="other window settings"):
        other.restore_counters(decode(b"".join(encode(engine.counter_state(T0)))))
    assert (other.states.tracked(), other.states.slots()) == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "digest"),
        (lambda raw: raw[:-40] + bytes([raw[-40] ^ 1]) + raw[-39:], "digest"),
        (lambda raw: b"something else" + raw, "not a Rempart counter checkpoint"),
        (lambda raw: raw[:20], "truncated"),
    ],
)
def test_damaged_files_are_refused_with_the_reason(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    engine = Engine.in_memory()
    spray(engine, 5, T0)
    raw = b"".join(encode(engine.counter_state(T0)))
    with pytest.raises(CheckpointError, match=message):
        decode(damage(raw))


def test_checkpointer_restores_a_recent_file_and_ignores_stale_or_damaged_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine.in_memory()
    spray(engine, 11, T0)
    path = tmp_path / FILE_NAME
    assert write(path, engine.counter_state(T0 + 11)) == path.stat().st_size
    assert not list(tmp_path.glob("*.tmp"))

    assert Checkpointer(Engine.in_memory(), tmp_path, 60).restore(T0 + 100) == len(engine.states)

    stale = T0 + 11 + longest_window(engine) + 1
    with caplog.at_level(logging.INFO, logger="rempart.state.checkpoint"):
        assert Checkpointer(Engine.in_memory(), tmp_path, 60).restore(stale) == 0
    assert "every window in it has expired" in caplog.text

    path.write_bytes(path.read_bytes()[:-1])
    caplog.clear()
    fresh = Engine.in_memory()
    with caplog.at_level(logging.WARNING, logger="rempart.state.checkpoint"):
        assert Checkpointer(fresh, tmp_path, 60).restore(T0 + 100) == 0
    assert "counters start empty" in caplog.text and "digest" in caplog.text
    assert len(fresh.states) == 0

    path.unlink()
    assert Checkpointer(Engine.in_memory(), tmp_path, 60).restore(T0 + 100) == 0


def test_inconsistent_contents_with_a_valid_digest_are_refused() -> None:
    from dataclasses import replace

    engine = Engine.in_memory()
    spray(engine, 5, T0)
    state = engine.counter_state(T0)
    twice = replace(state, slots=state.slots[:8] * len(state.keys))  # every key in slot 0
    with pytest.raises(ValueError, match="share slot"):
        Engine.in_memory().restore_counters(decode(b"".join(encode(twice))))
    short = replace(state, rings=(state.rings[0][:-2], state.rings[1]))
    with pytest.raises(ValueError, match="cells for"):
        Engine.in_memory().restore_counters(decode(b"".join(encode(short))))
    slot = next(i for i, s in enumerate(state.sketches[0]) if s is not None)
    bad = Engine.in_memory().counter_state(T0).sketches[0]
    bad.extend([None] * (slot + 1))
    broken = Sketch(4)
    broken.bitmaps += b"\x01\x02"  # not a whole remembered item
    bad[slot] = broken
    with pytest.raises(CheckpointError, match="peers sketches"):
        decode(b"".join(encode(replace(state, sketches=(bad, *state.sketches[1:])))))


def test_a_failed_fork_is_reported_and_the_next_period_tries_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    engine = Engine.in_memory()
    spray(engine, 3, T0)
    checkpoints = Checkpointer(engine, tmp_path, 60)

    def no_fork() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fork", no_fork)
        with caplog.at_level(logging.WARNING, logger="rempart.state.checkpoint"):
            checkpoints.start_save()
    assert "cannot fork" in caplog.text
    assert not (tmp_path / FILE_NAME).exists()
    checkpoints.start_save()  # a real fork: the child writes the file
    assert checkpoints._reaped.wait(30)
    restored = Checkpointer(Engine.in_memory(), tmp_path, 60).restore(time.time())
    assert restored == len(engine.states)


def test_keys_with_a_lone_surrogate_or_any_character_come_back() -> None:
    engine = Engine.in_memory()
    odd = ["caf\udce9@example.org", "a|b@example.org", "ünï\u00a0cödé@example.org", "x\ny@e.org"]
    for n, login in enumerate(odd):
        engine.report(attempt(login, f"192.0.2.{n + 1}"), Outcome(success=False), T0 + n)
    restored = round_trip(engine, T0 + 10)
    assert restored.states.tracked() == engine.states.tracked()
    assert any("\udce9" in key for key in restored.states.tracked())
