"""A/B of `rempart serve` variants from a fresh start: tail latency while their tables grow.

    python benchmarks/fresh_start.py NAME=SRC[:CONFIG] NAME=SRC[:CONFIG] ... \
        [--rounds 2] [--seconds 70]

What a black-box replay against a freshly started server sees: every round starts each variant
anew (its own empty data directory), then runs wrk -t1 -c32 --latency with the varying script
of `decision_service.py` for --seconds, while a probe client on its own connection sends one
`allow` every 5 ms and times each answer (a stalled event loop shows there as one slow answer,
not hidden among wrk's queued ones). Variants take turns within a round, the order reversed
every other round. Per variant and round: wrk's p99 and maximum, requests per second, the
probe's p99, maximum and answers slower than 50 ms. Variants are source trees as for
`ab_service.py` (a `git worktree` built in place), with an optional TOML config (e.g.
`[state] checkpoint_seconds = 20`, to meet more periodic checkpoints). Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ab_service import (
    variant,
)  # the sibling benchmarks (run as a script: its directory is on the path)
from decision_service import AUTH, LUA_VARYING, PASSWORD, parse_latency, start

PROBE_BODY = (
    b'{"login":"probe@example.org","remote":"198.51.100.7","pwhash":"0abc",'
    b'"protocol":"imap","tls":false}'
)


def probe(port: int, until: float, out: list[float]) -> None:
    """One `allow` every 5 ms on a keep-alive connection; each answer's time in ms."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": AUTH, "Content-Type": "application/json"}
    while time.monotonic() < until:
        begun = time.perf_counter()
        connection.request("POST", "/?command=allow", PROBE_BODY, headers)
        connection.getresponse().read()
        out.append((time.perf_counter() - begun) * 1000)
        time.sleep(0.005)
    connection.close()


def one_round(src: Path, config: Path | None, data: Path, script: Path, seconds: int) -> dict:
    env = {**os.environ, "REMPART_API_PASSWORD": PASSWORD, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "rempart", "serve", "--port", "0", "--data-dir", str(data)]
    proc, port = start([*cmd, *(["--config", str(config)] if config else [])], env)
    answers: list[float] = []
    try:
        prober = threading.Thread(target=probe, args=(port, time.monotonic() + seconds, answers))
        prober.start()
        url = f"http://127.0.0.1:{port}/"
        out = subprocess.run(
            [*("wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", str(script)), url],
            capture_output=True,
            text=True,
            env={**os.environ, "WRK_SEED": "7"},
            check=True,
        ).stdout
        prober.join()
    finally:
        proc.terminate()
        proc.wait(30)
    ordered = sorted(answers)
    requests = float(out.split("Requests/sec:")[1].split()[0])
    return {
        "wrk_p99": parse_latency(out, "99"),
        "wrk_max": _wrk_max(out),
        "rps": requests,
        "probe_p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "probe_max": ordered[-1],
        "probe_slow": sum(1 for ms in ordered if ms > 50),
    }


def _wrk_max(out: str) -> float:
    """The maximum of wrk's latency line ("Latency avg stdev max +/-")."""
    fields = next(line for line in out.splitlines() if line.strip().startswith("Latency")).split()
    value = fields[3]
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=SRC[:CONFIG]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=70)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    variants = [variant(spec) for spec in args.variants]
    tmp = Path(tempfile.mkdtemp(prefix="rempart-fresh-"))
    script = tmp / "varying.lua"
    script.write_text(LUA_VARYING)
    rows: list[tuple[int, str, dict]] = []
    try:
        for round_no in range(args.rounds):
            order = variants if round_no % 2 == 0 else list(reversed(variants))
            for name, src, config in order:
                data = tmp / f"{name}-{round_no}"
                result = one_round(src, config, data, script, args.seconds)
                rows.append((round_no + 1, name, result))
                shutil.rmtree(data, ignore_errors=True)
                print(f"round {round_no + 1} {name}: {result}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.rounds} rounds of "
        f"{args.seconds} s from a fresh start, load average {os.getloadavg()[0]:.2f} after"
    )
    print(
        "| round | variant | wrk p99 | wrk max | requests/s | probe p99 | probe max | probe > 50 ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for round_no, name, r in rows:
        print(
            f"| {round_no} | {name} | {r['wrk_p99']:.2f} ms | {r['wrk_max']:.1f} ms "
            f"| {r['rps']:,.0f} | {r['probe_p99']:.2f} ms | {r['probe_max']:.1f} ms "
            f"| {r['probe_slow']} |"
        )
    for name, _, _ in variants:
        mine = [r for _, n, r in rows if n == name]
        print(
            f"{name}: median wrk p99 {statistics.median(r['wrk_p99'] for r in mine):.2f} ms, "
            f"median probe answers > 50 ms {statistics.median(r['probe_slow'] for r in mine)}"
        )


if __name__ == "__main__":
    main()
