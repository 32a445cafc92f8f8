"""Runs attempt streams through the engine of this process and prints what it decided and counted.

    python -m tests.unit.engine.core_stream     (REMPART_PURE_PYTHON=1 for the reference core)

A worker for the compiled/pure equivalence test: it first prints one JSON line naming its core
(`rempart.compiled_core()`), then for each JSON line on stdin (a stream: a list of steps) a fresh
engine runs the steps and one JSON line comes back with each step's result and the engine's
counters at the end. A step is `[op, now, ...]`:

- `["allow", now, body]` / `["report", now, body]`: a wforce request body (latin-1 text of the
  raw bytes), parsed as `WforceApi` parses it, then `Engine.decide` / `Engine.report` at `now`;
  a body the API refuses gives `["error", status, reason]` (any other exception, a defect,
  `["exception", type, message]`);
- `["peer", now, login, ip, protocol, success, unknown_login]`: a peer's report as replication
  applies it;
- `["reset", now, login, ip]`: a counter reset (the number of keys cleared);
- `["tick", now]`: the engine's once-a-second timer.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson

import rempart
from rempart.adapters.context import WforceContext, WforceCounters
from rempart.adapters.fields import flag
from rempart.adapters.wforce import attempt_from, json_body
from rempart.config import from_mapping
from rempart.engine.engine import Engine
from rempart.engine.keys import canonical_login
from rempart.httpserver import HTTPError, Request
from rempart.model import Attempt, ListName, Outcome, Protocol, Verdict

# Few tracked keys and short windows, so that streams of a few dozen steps reach evictions,
# window roll-over and distinct-count sketches.
SETTINGS = {"engine": {"max_tracked_keys": 40}}


async def _commit() -> None:
    return None


def _verdict(verdict: Verdict) -> list[Any]:
    return [int(verdict.action), verdict.delay_s, [[r.code, r.message] for r in verdict.reasons]]


def run_stream(steps: list[list[Any]]) -> dict[str, Any]:
    settings = from_mapping(SETTINGS)
    engine = Engine(settings)
    rules = settings.logins
    context = WforceContext(
        engine,
        rules,
        lambda raw: canonical_login(raw, rules),
        -1,
        _commit,
        dict,
        (8, 32),
        WforceCounters(0.0),
        False,
    )
    results: list[Any] = []
    logins: set[str] = set()
    ips: set[str] = set()
    for step in steps:
        op, now = step[0], float(step[1])
        try:
            if op in ("allow", "report"):
                request = Request("POST", "/", f"command={op}", {}, step[2].encode("latin-1"), "")
                data = json_body(request)
                attempt = attempt_from(data, context)
                logins.add(attempt.login)
                ips.add(attempt.ip)
                if op == "allow":
                    results.append(_verdict(engine.decide(attempt, now)))
                else:
                    outcome = Outcome(
                        success=flag(data, "success", required=True),
                        policy_reject=flag(data, "policy_reject"),
                        unknown_login=flag(data, "unknown_login"),
                    )
                    engine.report(attempt, outcome, now)
                    results.append("ok")
            elif op == "peer":
                _, _, login, ip, protocol, success, unknown = step
                peer = Attempt(login, ip, Protocol(protocol))
                engine.apply_peer_report(peer, Outcome(success, False, unknown), now)
                results.append("ok")
            elif op == "reset":
                results.append(engine.reset(login=step[2], ip=step[3], now=now))
            elif op == "tick":
                engine.tick(now)
                results.append("ok")
            else:
                raise ValueError(f"unknown step {op!r}")
        except HTTPError as exc:
            results.append(["error", exc.status, exc.reason])
        except Exception as exc:  # a defect in either core: shown in the comparison
            results.append(["exception", type(exc).__name__, str(exc)])
    last = float(steps[-1][1]) if steps else 0.0
    counts = {
        f"{login}|{ip}": [
            engine.key_counts(login=login, now=last),
            engine.key_counts(ip=ip, now=last),
            engine.key_counts(login=login, ip=ip, now=last),
        ]
        for login in sorted(logins)
        for ip in sorted(ips)
    }
    snapshot = engine.snapshot()
    return {
        "results": results,
        "decisions": engine.decisions,
        "reports": engine.reports,
        "reasons": snapshot.reasons,
        "tracked_keys": snapshot.tracked_keys,
        "evictions": snapshot.evictions,
        "state_keys": engine.states.tracked(),
        "key_counts": counts,
        "blocklist": sorted(
            [e.kind, e.value, e.expires, e.reason]
            for e in engine.list_entries(ListName.BLOCK, last)
        ),
        "familiarity": engine.familiarity.accounts,
        "postures": {p.value: level.value for p, level in engine.postures.items()},
    }


def main() -> None:
    out = sys.stdout.buffer
    out.write(orjson.dumps({"core": rempart.compiled_core(), "started": time.time()}) + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        out.write(orjson.dumps(run_stream(orjson.loads(line))) + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
