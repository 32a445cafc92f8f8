"""Counter checkpoints: what an engine counted comes back in another engine, exactly; a damaged,
stale or foreign checkpoint is refused with the reason and leaves the engine as it was."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from rempart.config import Settings, from_mapping
from rempart.engine.countercopy import CounterCopy
from rempart.engine.counterstate import CounterState, pack
from rempart.engine.distinct import Sketch
from rempart.engine.engine import Engine
from rempart.model import Action, Attempt, Outcome, Protocol
from rempart.state.checkpoint import (
    COPY_STEP,
    FILE_NAME,
    MAGIC,
    Checkpointer,
    CheckpointError,
    decode,
    encode,
    longest_window,
    sections_of,
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


def failures(engine: Engine, accounts: int, now: float) -> None:
    """One failure for each of `accounts` logins from the sprayer's address."""
    for i in range(accounts):
        engine.report(attempt(f"user{i}@example.org", SPRAYER), Outcome(success=False), now + i)


def copied(
    engine: Engine, now: float, between: Callable[[int], None] | None = None, runs: bool = True
) -> bytes:
    """A checkpoint file taken by `CounterCopy`, 7 keys a step, `between(step)` after each."""
    copy = CounterCopy(engine, now, runs)
    step = 0
    while not copy.step(7):
        if between is not None:
            between(step)
        step += 1
    return b"".join(encode(copy.result()))


@pytest.mark.parametrize("runs", [True, False], ids=["zero-runs", "whole"])
def test_a_copy_taken_a_few_keys_at_a_time_restores_like_the_whole_state(runs: bool) -> None:
    engine = Engine.in_memory()
    spray(engine, 11, T0)
    for n in range(40):
        engine.report(
            attempt(f"u{n % 9}@example.org", f"198.51.100.{n}"), Outcome(n % 3 == 0), T0 + n
        )
    whole = round_trip(engine, T0 + 60)
    restored = Engine.in_memory()
    assert restored.restore_counters(decode(copied(engine, T0 + 60, runs=runs))) == len(
        engine.states
    )
    assert restored.states.tracked() == engine.states.tracked()  # least recently used first
    looks = [{"login": f"u{n}@example.org"} for n in range(9)]
    looks += [{"ip": f"198.51.100.{n}"} for n in range(40)]
    # The ip+login key of a failure (a success does not track one).
    looks += [
        {"login": f"u{n % 9}@example.org", "ip": f"198.51.100.{n}"} for n in range(40) if n % 3
    ]
    looks += [{"ip": SPRAYER}, {"login": "user3@example.org", "ip": SPRAYER}]
    for look in looks:
        counts = engine.key_counts(now=T0 + 61, **look)
        assert counts  # tracked
        assert (
            restored.key_counts(now=T0 + 61, **look)
            == counts
            == whole.key_counts(now=T0 + 61, **look)
        )
    verdict = restored.decide(attempt("user12@example.org", SPRAYER), T0 + 62)
    assert verdict.action is Action.ALLOW  # 11 accounts: one short, as in the original
    restored.report(attempt("user11@example.org", SPRAYER), Outcome(success=False), T0 + 62)
    assert restored.decide(attempt("user12@example.org", SPRAYER), T0 + 63).action is Action.DENY


def test_a_copy_keeps_each_key_as_the_walk_found_it_while_decisions_go_on() -> None:
    engine = Engine.in_memory()
    failures(engine, 30, T0)
    before = set(engine.states.tracked())
    seen: dict[str, dict[str, int]] = {}

    def busy(step: int) -> None:
        # New keys, and old ones failing again (they move to the newest end of the table).
        fail(engine, f"late{step}@example.org", f"192.0.2.{step + 1}", T0 + 100 + step)
        fail(engine, f"user{step}@example.org", SPRAYER, T0 + 100 + step)
        seen[f"user{step}@example.org"] = engine.key_counts(
            login=f"user{step}@example.org", now=T0 + 100 + step
        )

    raw = copied(engine, T0 + 100, busy)
    restored = Engine.in_memory()
    restored.restore_counters(decode(raw))
    tracked = set(restored.states.tracked())
    assert before <= tracked  # every key tracked when the copy began
    assert not any("late" in key for key in tracked)  # keys added during it are not
    # A login that failed again during the copy holds one or two failures, never more or less.
    for n in range(30):
        count = restored.key_counts(login=f"user{n}@example.org", now=T0 + 200)["failures"]
        assert count in (1, 2)
        assert count <= seen.get(f"user{n}@example.org", {"failures": 1})["failures"]


def test_a_key_that_comes_twice_is_refused() -> None:
    """A walk visits a key once (`KeyIndex.walk`): a file that holds one twice is not ours."""
    engine = Engine.in_memory()
    fail(engine, "twice@example.org", "192.0.2.1", T0)
    state = engine.counter_state(T0 + 1)
    doubled = replace(state, keys=[state.keys[0], state.keys[0], *state.keys[2:]])
    with pytest.raises(ValueError, match="appears twice"):
        Engine.in_memory().restore_counters(decode(b"".join(encode(doubled))))


def test_the_periodic_checkpoint_is_copied_between_decisions_and_written_by_a_thread(
    tmp_path: Path,
) -> None:
    engine = Engine.in_memory()
    for n in range(3 * COPY_STEP):
        engine.report(attempt(f"u{n}@example.org", SPRAYER), Outcome(success=False), T0 + n / 100)
    checkpoints = Checkpointer(engine, tmp_path, 60)
    tracked = len(engine.states)  # u*, their ip+login keys, the sprayer's address and network
    turns = 0

    async def run() -> None:
        nonlocal turns
        checkpoints.start_save()
        checkpoints.start_save()  # under way: skipped
        task = checkpoints._task
        assert task is not None
        await asyncio.sleep(0)  # the copy begins
        while not task.done():
            turns += 1  # the loop keeps turning: decisions would be answered here
            engine.report(attempt("busy@example.org", "192.0.2.9"), Outcome(False), T0 + 200)
            await asyncio.sleep(0)
        await task

    asyncio.run(run())
    assert turns >= 3  # one turn per step of COPY_STEP keys at least
    assert checkpoints.failures == 0
    assert checkpoints.last_copy["keys"] == tracked  # not the keys added during the copy
    assert checkpoints.saved_at > 0
    restored = Engine.in_memory()
    # (restore checks the file's age against the clock: the checkpoint was taken now.)
    assert Checkpointer(restored, tmp_path, 60).restore(time.time()) == tracked
    assert restored.key_counts(ip=SPRAYER, now=T0 + 300)["failures"] == 3 * COPY_STEP


def test_the_checkpoint_at_stop_drops_a_copy_under_way_and_writes_the_whole_state(
    tmp_path: Path,
) -> None:
    engine = Engine.in_memory()
    failures(engine, 3 * COPY_STEP // 2, T0)
    checkpoints = Checkpointer(engine, tmp_path, 60)

    async def stop_during_the_copy() -> None:
        checkpoints.start_save()
        await asyncio.sleep(0)  # one step copied, then the node stops
        fail(engine, "last@example.org", "192.0.2.77", T0 + 500)
        checkpoints.save_now()

    asyncio.run(stop_during_the_copy())
    restored = Engine.in_memory()
    assert Checkpointer(restored, tmp_path, 60).restore(time.time()) == len(engine.states)
    assert restored.key_counts(login="last@example.org", now=T0 + 600)["failures"] == 1


def test_keys_with_a_lone_surrogate_or_any_character_come_back() -> None:
    engine = Engine.in_memory()
    odd = ["caf\udce9@example.org", "a|b@example.org", "ünï\u00a0cödé@example.org", "x\ny@e.org"]
    for n, login in enumerate(odd):
        engine.report(attempt(login, f"192.0.2.{n + 1}"), Outcome(success=False), T0 + n)
    restored = round_trip(engine, T0 + 10)
    assert restored.states.tracked() == engine.states.tracked()
    assert any("\udce9" in key for key in restored.states.tracked())


def version_one(state: CounterState) -> bytes:
    """The file a Rempart of format version 1 wrote: every section stored whole."""
    sections = [
        (name, b"".join(body.pieces)) for name, body in sections_of(pack(state, runs=False))
    ]
    header = orjson.dumps(
        {
            "version": 1,
            "byteorder": sys.byteorder,
            "taken_at": state.taken_at,
            "shape": list(state.shape),
            "sections": [[name, len(body)] for name, body in sections],
        }
    )
    raw = MAGIC + len(header).to_bytes(4, "little") + header + b"".join(b for _, b in sections)
    return raw + hashlib.blake2b(raw, digest_size=32).digest()


def test_a_file_of_format_version_one_is_still_restored() -> None:
    engine = Engine.in_memory()
    spray(engine, 11, T0)
    restored = Engine.in_memory()
    assert restored.restore_counters(decode(version_one(engine.counter_state(T0 + 11)))) == len(
        engine.states
    )
    assert restored.states.tracked() == engine.states.tracked()
    assert restored.rings.cells == engine.rings.cells
    fail(restored, "user11@example.org", SPRAYER, T0 + 12)  # the twelfth account
    assert fail(restored, "user12@example.org", SPRAYER, T0 + 13) is Action.DENY


def test_counters_are_stored_as_zero_runs_a_fraction_of_their_size() -> None:
    engine = Engine.in_memory()
    for i in range(2000):
        engine.report(
            attempt(f"u{i}@example.org", f"198.51.{i // 250}.{i % 250}"),
            Outcome(success=i % 2 == 0),
            T0 + i,
        )
    state = engine.counter_state(T0 + 2000)
    whole = sum(body.size for _, body in sections_of(pack(state, runs=False)))
    raw = b"".join(encode(pack(state, runs=True)))
    assert len(raw) * 4 < whole
    # The pure-Python fallback stores sections whole; either file is read by either core.
    kept_whole = b"".join(encode(pack(state, runs=False)))
    assert len(kept_whole) > whole
    for stored in (raw, kept_whole):
        restored = Engine.in_memory()
        restored.restore_counters(decode(stored))
        assert restored.rings.cells == engine.rings.cells
        assert restored.states.tracked() == engine.states.tracked()


def test_a_stored_section_that_does_not_expand_is_refused_by_name() -> None:
    engine = Engine.in_memory()
    spray(engine, 5, T0)
    raw = b"".join(encode(pack(engine.counter_state(T0), runs=True)))
    at = len(MAGIC) + 4
    length = int.from_bytes(raw[len(MAGIC) : at], "little")
    header = orjson.loads(raw[at : at + length])
    header["sections"][0][1] += 4  # key_lengths said to hold one more key than it stores
    again = orjson.dumps(header)
    body = MAGIC + len(again).to_bytes(4, "little") + again + raw[at + length : -32]
    with pytest.raises(CheckpointError, match=r"section 'key_lengths': \d+ bytes where"):
        decode(body + hashlib.blake2b(body, digest_size=32).digest())
    header["sections"][0][1] -= 4
    header["sections"][0][2] += 10**6  # stored beyond the file's end
    again = orjson.dumps(header)
    body = MAGIC + len(again).to_bytes(4, "little") + again + raw[at + length : -32]
    with pytest.raises(CheckpointError, match="do not add up"):
        decode(body + hashlib.blake2b(body, digest_size=32).digest())
