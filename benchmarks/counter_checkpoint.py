"""Counter checkpoint cost: what writing and restoring `<data_dir>/counters.bin` costs a node.

    python benchmarks/counter_checkpoint.py [--pairs 200000] [--rounds 3]

Fills an engine with the varying load of `decision_service.py` (allow+report pairs, 100k logins x
random IPs, half failing), then measures, best of --rounds:

- `copy`: a periodic checkpoint (`Checkpointer.start_save` on an event loop): its longest step
  of `COPY_STEP` keys (what it may stall decisions for), all its steps together, and the
  thread's writing of the file; besides, what a bare `fork()` of this process stalls the
  caller for (what periodic checkpoints cost before, copy-on-write faults not counted);
- `counter_state`: taking the state in-process at once (a stop takes it so);
- `write`: serialising the sketches, hashing and writing the file;
- `restore`: reading, checking and restoring it into a fresh engine (at start);
- the file's size per tracked key.

The baseline, measured in the same run, is one decide+report pair on the same engine: the
stall is given in decisions' worth. Runs in a temporary directory; prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import rempart
from rempart.config import Settings
from rempart.engine.countercopy import CounterCopy
from rempart.engine.engine import Engine
from rempart.model import Attempt, Outcome, Protocol
from rempart.state.checkpoint import COPY_STEP, Checkpointer, write

START = 1_764_000_000.0


def attempts(pairs: int, seed: int = 7) -> list[tuple[Attempt, Outcome]]:
    rng = random.Random(seed)
    out = []
    for _ in range(pairs):
        login = f"user{rng.randint(1, 100_000)}@example.org"
        ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        attempt = Attempt(login=login, ip=ip, protocol=Protocol.IMAP, pwhash="0ed6")
        out.append((attempt, Outcome(success=rng.random() < 0.5)))
    return out


def best(rounds: int, work) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.default()
    engine = Engine.in_memory(settings)
    load = attempts(args.pairs)
    now = START
    for i, (attempt, outcome) in enumerate(load):
        now += 0.0005
        engine.decide(attempt, now)
        engine.report(attempt, outcome, now)
        if i % 10_000 == 0:
            gc.freeze()
    probe = attempts(20_000, seed=11)
    start = time.perf_counter()
    for attempt, outcome in probe:
        now += 0.0005
        engine.decide(attempt, now)
        engine.report(attempt, outcome, now)
    pair_s = (time.perf_counter() - start) / len(probe)
    keys = len(engine.states)

    state_s = best(args.rounds, lambda: engine.counter_state(now))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "counters.bin"
        checkpoints = Checkpointer(engine, Path(tmp), 60)
        steps: list[float] = []
        copy_s, saved_s = [], []
        original_step = CounterCopy.step

        def timed_step(copy: CounterCopy, count: int) -> bool:
            begun = time.perf_counter()
            done = original_step(copy, count)
            steps.append(time.perf_counter() - begun)
            return done

        async def periodic() -> None:
            begun = time.perf_counter()
            checkpoints.start_save()
            task = checkpoints._task
            assert task is not None
            await task
            copy_s.append(checkpoints.last_copy["seconds"])
            saved_s.append(time.perf_counter() - begun)

        for _ in range(args.rounds):
            copies = [CounterCopy(engine, now)]  # the same steps, timed one by one
            while not timed_step(copies[0], COPY_STEP):
                pass
            asyncio.run(periodic())
        fork_s = []
        for _ in range(args.rounds):
            begun = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            fork_s.append(time.perf_counter() - begun)
            os.waitpid(pid, 0)
        state = engine.counter_state(now)
        write_s = best(args.rounds, lambda: write(path, state))
        size = path.stat().st_size

        def restore() -> None:
            fresh = Engine.in_memory(settings)
            assert Checkpointer(fresh, Path(tmp), 60).restore(now) == keys

        restore_s = best(args.rounds, restore)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, core {rempart.compiled_core()}, "
        f"{args.pairs:,} pairs, {keys:,} tracked keys, load average {os.getloadavg()[0]:.2f}"
    )
    print("| step | time | per 100k keys | in decide+report pairs |")
    print("|---|---:|---:|---:|")
    print(f"| baseline: one decide+report pair | {pair_s * 1e6:.1f} µs | | 1 |")
    for name, seconds in (
        (f"copy: longest step of {COPY_STEP} keys (event loop stall)", max(steps)),
        (f"copy: median step of {COPY_STEP} keys", statistics.median(steps)),
        ("copy: all steps (between decisions)", min(copy_s)),
        ("periodic checkpoint, start to file written", min(saved_s)),
        ("a bare fork() of this process (the former stall)", min(fork_s)),
        ("counter_state in-process (at stop)", state_s),
        ("write (worker thread)", write_s),
        ("restore (at start)", restore_s),
    ):
        print(
            f"| {name} | {seconds * 1e3:.1f} ms | {seconds * 1e3 * 100_000 / keys:.1f} ms "
            f"| {seconds / pair_s:,.0f} |"
        )
    print(f"| file size | {size / 1e6:.1f} MB | {size / keys:.0f} bytes per key | |")


if __name__ == "__main__":
    main()
