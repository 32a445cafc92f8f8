"""A/B of `rempart serve` variants under the same wrk load, interleaved: which change helps.

    python benchmarks/ab_service.py NAME=SRC[:CONFIG] NAME=SRC[:CONFIG] ... \
        [--load varying|fixed|flood] [--rounds 6] [--seconds 5]

Each variant is a source tree (its `src` directory, e.g. a `git worktree` of the commit to
compare, built in place with `python setup.py build_ext --inplace`) and optionally a TOML
config; all of them start fresh (own data dir, defaults otherwise), are warmed for 3 s, then
measured in turn for --rounds rounds (the order reversed every other round) with wrk -t1 -c32
and the scripts of `decision_service.py` (`--load flood`: credential stuffing from 256 sources,
mostly answered with denials). Per variant: requests per server CPU-second (best and
median of the rounds: on a shared machine interference only ever slows a round down, so the
best is the steadiest figure) and the median p99. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from decision_service import (  # the sibling benchmark (run as a script: its directory is on the path)
    LUA_FIXED,
    LUA_FLOOD,
    LUA_VARYING,
    PASSWORD,
    measure,
    start,
    wrk,
)


def variant(spec: str) -> tuple[str, Path, Path | None]:
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise SystemExit(f"{spec!r}: expected NAME=SRC[:CONFIG]")
    src, _, config = rest.partition(":")
    if not (Path(src) / "rempart").is_dir():
        raise SystemExit(f"{spec!r}: {src} holds no rempart package")
    return name, Path(src), Path(config) if config else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=SRC[:CONFIG]")
    parser.add_argument("--load", choices=("varying", "fixed", "flood"), default="varying")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rempart-ab-"))
    script = tmp / "load.lua"
    script.write_text({"varying": LUA_VARYING, "fixed": LUA_FIXED, "flood": LUA_FLOOD}[args.load])
    servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
    try:
        for name, src, config in map(variant, args.variants):
            env = {**os.environ, "REMPART_API_PASSWORD": PASSWORD, "PYTHONPATH": str(src)}
            cmd = [sys.executable, "-m", "rempart", "serve", "--port", "0"]
            cmd += ["--data-dir", str(tmp / name), *(["--config", str(config)] if config else [])]
            servers[name] = start(cmd, env)
        for _, port in servers.values():
            wrk(port, script, 3, 32)
        rates: dict[str, list[float]] = {name: [] for name in servers}
        p99s: dict[str, list[float]] = {name: [] for name in servers}
        for round_no in range(args.rounds):
            names = list(servers) if round_no % 2 == 0 else list(reversed(servers))
            for name in names:
                proc, port = servers[name]
                result = measure(proc.pid, port, script, args.seconds)
                rates[name].append(result["per_cpu_s"])
                p99s[name].append(result["p99_ms"])
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {args.load}, "
        f"{args.rounds} rounds of {args.seconds} s, load average {os.getloadavg()[0]:.2f} after"
    )
    for name in servers:
        print(
            f"{name:16} per server CPU-second: best {max(rates[name]):7,.0f}  median "
            f"{statistics.median(rates[name]):7,.0f}   p99 median "
            f"{statistics.median(p99s[name]):6.2f} ms   rounds {[round(r) for r in rates[name]]}"
        )


if __name__ == "__main__":
    main()
