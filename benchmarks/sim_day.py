"""Benchmark: one simulated day of 100,000 users in-process, on one core.

Owns the figure recorded in docs/benchmarks.md ("Simulator"): wall time and events per second
for building the world and running it against a policy (default: Rempart's engine on the
`campaign` scenario). Target: ≤ 5 minutes. Run: `python benchmarks/sim_day.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

from rempart.sim import experiment, policies, runner, world
from rempart.sim import scenario as scenarios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="campaign")
    parser.add_argument("--policy", default="rempart", choices=policies.NAMES)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    t0 = time.perf_counter()
    c0 = time.process_time()
    inputs = experiment.Inputs.load()
    t1 = time.perf_counter()
    sc = scenarios.load(args.scenario).scaled(args.users)
    w = world.build(sc, args.seed, inputs.pw, inputs.agents)
    t2 = time.perf_counter()
    result = runner.run(w, policies.make(args.policy, w))
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    events = result["runner"]["events"]
    total = t3 - t0
    print(
        json.dumps(
            {
                "scenario": sc.name,
                "policy": args.policy,
                "users": args.users,
                "passwords": inputs.pw.source,  # the sample lists give another world
                "events": events,
                "load_inputs_s": round(t1 - t0, 1),
                "build_world_s": round(t2 - t1, 1),
                "run_s": round(t3 - t2, 1),
                "total_s": round(total, 1),
                "cpu_s": round(cpu, 1),
                "events_per_s": round(events / (t3 - t2)),
                "us_per_event": round((t3 - t2) / events * 1e6, 1),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "within_5_min": total <= 300,
                "cpu_within_5_min": cpu <= 300,
                "python": platform.python_version(),
                "takeovers": result["takeovers"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
