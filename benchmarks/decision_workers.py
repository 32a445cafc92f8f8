"""Decision workers: does a host's decision throughput grow with `[server] decision_workers`?

    python benchmarks/decision_workers.py [--workers 1,2] [--rounds 4] [--seconds 8] \
        [--load varying|fixed|flood] [--connections 32]

In one run, on loopback, with a private redis-server: one `rempart serve` with `[state]
backend = "redis"` answering on its own port (the baseline: the scale-out node as it was), and
one server per worker count answering on its decision port. Each has its own key prefix in
Redis, so the servers do not hear each other. All are started, warmed for 3 s, then measured
in turn, the order reversed every other round, with wrk -t1 and the load scripts of
`decision_service.py`. Per variant: requests per second (median and best of the rounds), the
server CPU-seconds per second (primary and workers together), requests per server CPU-second
and the median p99; Redis's CPU apart. The machine's core count is printed: on a host where
wrk shares two cores with the servers, throughput cannot grow much; the CPU figures show what
the replication between workers costs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from decision_service import (  # the sibling benchmark (run as a script: its directory is on the path)
    LUA_FIXED,
    LUA_FLOOD,
    LUA_VARYING,
    PASSWORD,
    cpu_seconds,
    stats,
    wrk,
)

from rempart.process import RedisProcess

_MAIN = re.compile(r"rempart listening on http://[^:]+:(\d+)/")
_DECISIONS = re.compile(r"decision workers \(\d+\) listening on http://[^:]+:(\d+)/")


class Server:
    """One `rempart serve` (and its workers): where to send the load, which pids to count."""

    def __init__(self, name: str, root: Path, redis_url: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        config = root / f"{name}.toml"
        text = f'[state]\nbackend = "redis"\nredis_url = "{redis_url}"\nkey_prefix = "{name}:"\n'
        if workers:
            text = f"[server]\ndecision_workers = {workers}\ndecision_port = 0\n" + text
        config.write_text(text)
        env = {**os.environ, "REMPART_API_PASSWORD": PASSWORD}
        cmd = [sys.executable, "-m", "rempart", "serve", "--port", "0"]
        cmd += ["--data-dir", str(root / name), "--config", str(config)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.proc.stdout is not None
        self.main_port = self.port = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not self.main_port:
            line = self.proc.stdout.readline()
            if not line:
                break
            if found := _DECISIONS.search(line):
                self.port = int(found.group(1))
            if found := _MAIN.search(line):
                self.main_port = int(found.group(1))
        if not self.main_port:
            self.proc.kill()
            raise SystemExit(f"{name} did not start")
        self.port = self.port or self.main_port
        self.pids = [self.proc.pid]
        if workers:
            status: Any = stats(self.main_port)["decision_workers"]
            self.pids += [w["pid"] for w in status]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to compare with a node")
    parser.add_argument("--load", choices=("varying", "fixed", "flood"), default="varying")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="rempart-workers-"))
    script = tmp / "load.lua"
    script.write_text({"varying": LUA_VARYING, "fixed": LUA_FIXED, "flood": LUA_FLOOD}[args.load])
    redis = RedisProcess(tmp / "redis").start()
    servers: list[Server] = []
    rows: dict[str, dict[str, list[float]]] = {}
    try:
        counts = [0, *(int(n) for n in args.workers.split(","))]
        for n in counts:
            name = "node" if n == 0 else f"workers{n}"
            servers.append(Server(name, tmp, redis.url, n))
            rows[name] = {"rps": [], "cpu_per_s": [], "per_cpu_s": [], "p99": [], "redis": []}
        for server in servers:
            wrk(server.port, script, 3, args.connections)
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else list(reversed(servers))
            for server in order:
                cpu0, redis0 = server.cpu(), cpu_seconds(redis.proc.pid)  # type: ignore[union-attr]
                result = wrk(server.port, script, args.seconds, args.connections)
                cpu = server.cpu() - cpu0
                redis_cpu = cpu_seconds(redis.proc.pid) - redis0  # type: ignore[union-attr]
                row = rows[server.name]
                row["rps"].append(result["rps"])
                row["cpu_per_s"].append(cpu / args.seconds)
                row["per_cpu_s"].append(result["requests"] / cpu if cpu else 0.0)
                row["p99"].append(result["p99_ms"])
                row["redis"].append(redis_cpu / args.seconds)
    finally:
        for server in servers:
            server.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load "
        f"{args.load}, wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds} s, "
        f"load average {os.getloadavg()[0]:.2f} after"
    )
    base = statistics.median(rows["node"]["rps"])
    for name, row in rows.items():
        rps = statistics.median(row["rps"])
        print(
            f"{name:10} req/s median {rps:8,.0f} (best {max(row['rps']):8,.0f}, "
            f"{rps / base:4.2f}x node)  server CPU {statistics.median(row['cpu_per_s']):4.2f} "
            f"cores  per CPU-s {statistics.median(row['per_cpu_s']):7,.0f}  p99 "
            f"{statistics.median(row['p99']):6.2f} ms  redis CPU "
            f"{statistics.median(row['redis']):4.2f} cores"
        )


if __name__ == "__main__":
    main()
