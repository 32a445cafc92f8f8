"""In-process microbenchmark of the decision hot path, without HTTP: what the compiled core speeds up.

    python benchmarks/engine_core.py [--pairs 100000] [--rounds 3]

Per step, CPU microseconds (`time.process_time`, best of --rounds):

- `parse`: a wforce `allow` body (bytes) to an `Attempt` (`json_body` + `attempt_from`);
- `decide` / `report`: `Engine.decide` and `Engine.report` on those attempts, varying keys
  (100k logins x random IPs, as `decision_service.py`) and one fixed key;
- `peer_report`: a peer's report as the Redis replicator applies it (`reports_of_entry` on the
  decoded rows of a stream entry, then `Engine.apply_peer_report`), varying keys, on a fresh
  engine.

The garbage collector runs as `rempart serve` runs it (threshold 50,000, `gc.freeze()` about
once a second). Prints which core ran (`rempart.compiled_core()`) so that a pure-Python run
(`REMPART_PURE_PYTHON=1`) and a compiled one can be compared in the same conditions.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
from collections.abc import Callable

import orjson

import rempart
from rempart.adapters.context import WforceContext, WforceCounters
from rempart.adapters.wforce import attempt_from, json_body
from rempart.config import Settings
from rempart.engine.engine import Engine
from rempart.engine.events import Reported
from rempart.engine.keys import canonical_login
from rempart.httpserver import Request
from rempart.model import Attempt, Outcome, Protocol
from rempart.state.wire import ROWS_VERSION_FIELD, report_row, reports_of_entry

START = 1_764_000_000.0
FREEZE_EVERY = 10_000  # attempts between gc.freeze() calls: about one second of a busy node


def bodies(pairs: int, fixed: bool, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """(allow, report) wforce bodies, as decision_service.py's wrk scripts send them."""
    rng = random.Random(seed)
    out: list[tuple[bytes, bytes]] = []
    for _ in range(pairs):
        if fixed:
            login, ip = "alice@example.org", "192.0.2.10"
        else:
            login = f"user{rng.randint(1, 100_000)}@example.org"
            ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        base = {"login": login, "remote": ip, "pwhash": "0ed6", "protocol": "imap", "tls": False}
        success = fixed or rng.random() < 0.5
        out.append((orjson.dumps(base), orjson.dumps({**base, "success": success})))
    return out


def context(engine: Engine, settings: Settings) -> WforceContext:
    async def commit() -> None:
        return None

    return WforceContext(
        engine,
        settings.logins,
        lambda raw: canonical_login(raw, settings.logins),
        -1,
        commit,
        dict,
        (8, 32),
        WforceCounters(time.time()),
        False,
    )


def timed(work: Callable[[], None]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def run(pairs: int, fixed: bool) -> dict[str, float]:
    settings = Settings.default()
    engine = Engine.in_memory(settings)
    ctx = context(engine, settings)
    data = bodies(pairs, fixed)
    requests = [
        (Request("POST", "/", "command=allow", {}, a, "127.0.0.1"), orjson.loads(r))
        for a, r in data
    ]
    attempts: list[Attempt] = []
    outcomes = [Outcome(bool(r["success"])) for _, r in requests]

    def parse() -> None:
        for request, _ in requests:
            attempts.append(attempt_from(json_body(request), ctx))

    parse_s = timed(parse)
    clock = [START]

    def decide_report() -> None:
        decide, report = engine.decide, engine.report
        now = START
        for i, (attempt, outcome) in enumerate(zip(attempts, outcomes, strict=True)):
            now += 0.0005
            decide(attempt, now)
            report(attempt, outcome, now)
            if i % FREEZE_EVERY == 0:
                gc.freeze()
        clock[0] = now

    def decide_only() -> None:
        decide = engine.decide
        now = clock[0]
        for i, attempt in enumerate(attempts):
            now += 0.0005
            decide(attempt, now)
            if i % FREEZE_EVERY == 0:
                gc.freeze()

    both_s = timed(decide_report)
    decide_s = timed(decide_only)
    return {
        "parse": parse_s / pairs * 1e6,
        "decide": decide_s / pairs * 1e6,
        "report": max(0.0, both_s - decide_s) / pairs * 1e6,
        "decide+report": both_s / pairs * 1e6,
    }


def peer_reports(pairs: int) -> float:
    """µs per peer report applied as the Redis replicator does (record decoded, then applied)."""
    engine = Engine.in_memory()
    rng = random.Random(11)
    rows = []
    for i in range(pairs):
        login = f"user{rng.randint(1, 100_000)}@example.org"
        ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        attempt = Attempt(login, ip, Protocol.IMAP, "0ed6")
        rows.append(report_row(Reported(START + i * 0.001, attempt, Outcome(rng.random() < 0.5))))
    # Stream entries of 500 rows, as RedisStore sends them, decoded as the reader thread does.
    entries = [orjson.loads(orjson.dumps(rows[i : i + 500])) for i in range(0, pairs, 500)]

    def apply() -> None:
        peer = engine.apply_peer_report
        applied = 0
        for entry in entries:
            for attempt, outcome, at in reports_of_entry(ROWS_VERSION_FIELD, entry):
                peer(attempt, outcome, at)
                applied += 1
                if applied % FREEZE_EVERY == 0:
                    gc.freeze()

    return timed(apply) / pairs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--gc", choices=("server", "off"), default="server", help="off: interpreter work alone"
    )
    args = parser.parse_args()
    # The garbage collector as `rempart serve` runs it (server.py): a higher first threshold and
    # long-lived state frozen about once a second.
    gc.set_threshold(50_000, 20, 100)
    if args.gc == "off":
        gc.disable()
    print(f"core: {rempart.compiled_core()}  gc: {args.gc}  load average: {os.getloadavg()[0]:.2f}")
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fixed in (("varying", False), ("fixed", True)):
            for step, value in run(args.pairs, fixed).items():
                key = f"{name} {step}"
                best[key] = min(best.get(key, value), value)
        value = peer_reports(args.pairs)
        best["varying peer_report"] = min(best.get("varying peer_report", value), value)
    for key, value in best.items():
        print(f"{key:28s} {value:8.2f} µs")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
