"""Rempart and wforce 3.0.1 side by side: the same wrk load against each, interleaved, in one run.

    python benchmarks/versus_wforce.py [--wforce-dir /tmp/wforce-bench] [--seconds 15] [--rounds 2]

wforce is built outside the project (`../shared/recipes/wforce-build.md`: its binary, regexes.yaml
and the recipe's `wforce.conf` in --wforce-dir) and started here with that config on
127.0.0.1:8084; `rempart serve` runs with its defaults in a fresh data dir. Each round measures
both servers (the order alternates between rounds) with wrk -t1 -c32: one fixed allow/report
pair, then varying keys (100k logins x random IPv4 sources, allow and report alternating; the
scripts of `decision_service.py`). Reported per server and run: requests per second, requests
per server CPU-second (utime + stime of the whole process, all its threads, from /proc), p50,
p99, non-2xx answers, RSS after the varying run, and the CPU the idle server spent meanwhile
(both stay up for the whole run: one's housekeeping slows the other). Loopback only. `--write` replaces the
"Side by side with wforce" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from decision_service import (  # the sibling benchmark (run as a script: its directory is on the path)
    AUTH,
    LUA_FIXED,
    LUA_VARYING,
    PASSWORD,
    cpu_seconds,
    measure,
    rss_bytes,
    start,
    write_section,
)

WFORCE_PORT = 8084
WFORCE_AUTH = "Basic " + base64.b64encode(b"bench:benchpw").decode()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_wforce(directory: Path) -> subprocess.Popen[bytes]:
    binary = directory / "wforce"
    if not binary.exists():
        raise SystemExit(f"no wforce binary in {directory}: build it (recipes/wforce-build.md)")
    for port in (WFORCE_PORT, 4004, 4001):
        if not port_free(port):
            raise SystemExit(f"port {port} is taken: wforce needs it (and does not say so)")
    log = (directory / "wforce.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "-C", "./wforce.conf", "-R", "./regexes.yaml", "-s"],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://127.0.0.1:{WFORCE_PORT}/?command=ping",  # GET: wforce has no POST ping
            headers={"Authorization": WFORCE_AUTH},
        )
        try:
            with urllib.request.urlopen(request, timeout=2):
                return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("wforce did not answer ping within 30 s (see its wforce.log)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wforce-dir", type=Path, default=Path("/tmp/wforce-bench"))
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="rempart-vs-wforce-"))
    scripts: dict[tuple[str, str], Path] = {}
    for server, auth in (("rempart", AUTH), ("wforce", WFORCE_AUTH)):
        for load, lua in (("fixed", LUA_FIXED), ("varying", LUA_VARYING)):
            path = scripts[server, load] = tmp / f"{server}-{load}.lua"
            path.write_text(lua.replace(AUTH, auth))
    env = {**os.environ, "REMPART_API_PASSWORD": PASSWORD}
    load_before = os.getloadavg()[0]
    wforce = start_wforce(args.wforce_dir)
    rempart, rempart_port = start(
        [sys.executable, "-m", "rempart", "serve", "--port", "0", "--data-dir", str(tmp / "data")],
        env,
    )
    servers = {"rempart": (rempart.pid, rempart_port), "wforce": (wforce.pid, WFORCE_PORT)}
    rows: list[dict[str, object]] = []
    try:
        for round_no in range(1, args.rounds + 1):
            order = ["rempart", "wforce"] if round_no % 2 else ["wforce", "rempart"]
            for server in order:
                pid, port = servers[server]
                other = servers["wforce" if server == "rempart" else "rempart"][0]
                for load in ("fixed", "varying"):
                    other_cpu = cpu_seconds(other)
                    result = measure(
                        pid, port, scripts[server, load], args.seconds, args.connections
                    )
                    row = {"round": round_no, "server": server, "load": load, **result}
                    # What the idle server spent meanwhile (its own housekeeping): it shares
                    # the cores and caches with the measured one.
                    row["other_cpu_s"] = round(cpu_seconds(other) - other_cpu, 2)
                    row["rss_mb"] = round(rss_bytes(pid) / 2**20, 1)
                    row["load_avg"] = round(os.getloadavg()[0], 2)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        for proc in (rempart, wforce):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=2))
    if args.write:
        write_markdown(rows, summary, args, load_before)


def summarise(rows: list[dict[str, object]]) -> dict[str, float]:
    """Mean over rounds of each server's figures, and Rempart's ratio to wforce."""
    out: dict[str, float] = {}
    for load in ("fixed", "varying"):
        for key in ("per_cpu_s", "rps", "p99_ms"):
            means = {}
            for server in ("rempart", "wforce"):
                values = [
                    float(r[key])  # type: ignore[arg-type]
                    for r in rows
                    if r["server"] == server and r["load"] == load
                ]
                means[server] = sum(values) / len(values)
                out[f"{server}_{load}_{key}"] = round(means[server], 2)
            out[f"ratio_{load}_{key}"] = round(means["rempart"] / means["wforce"], 3)
    return out


def write_markdown(
    rows: list[dict[str, object]],
    summary: dict[str, float],
    args: argparse.Namespace,
    load_before: float,
) -> None:
    table = "\n".join(
        f"| {r['round']} | {r['server']} | {r['load']} | {float(r['rps']):,.0f} | "  # type: ignore[arg-type]
        f"**{int(r['per_cpu_s']):,}** | {r['p50_ms']} | {r['p99_ms']} | {r['non_2xx']} | "  # type: ignore[call-overload]
        f"{r['rss_mb']} | {r['other_cpu_s']} | {r['load_avg']} |"
        for r in rows
    )
    s = summary
    section = "\n".join(
        [
            "## Side by side with wforce",
            "",
            f"Command: `python benchmarks/versus_wforce.py --seconds {args.seconds} --rounds "
            f"{args.rounds} --write` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
            f"average {load_before:.2f} before the run). wforce 3.0.1 built from source "
            "(`../shared/recipes/wforce-build.md`) with the recipe's config (its example policy); "
            "`rempart serve` with its defaults. wrk -t1 "
            f"-c{args.connections} -d{args.seconds}s per row; both servers share the 2 cores "
            "with wrk; wforce runs 4 worker threads, Rempart one event loop.",
            "",
            "| round | server | load | req/s | req per server CPU-s | p50 ms | p99 ms | non-2xx "
            "| RSS MB after | idle server's CPU s meanwhile | load avg |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            table,
            "",
            "Means over the rounds, Rempart / wforce:",
            "",
            "| load | req per CPU-s | req/s | p99 |",
            "|---|---:|---:|---:|",
            *(
                f"| {load} | {s[f'rempart_{load}_per_cpu_s']:,.0f} / "
                f"{s[f'wforce_{load}_per_cpu_s']:,.0f} = **{s[f'ratio_{load}_per_cpu_s']:.2f}** | "
                f"{s[f'rempart_{load}_rps']:,.0f} / {s[f'wforce_{load}_rps']:,.0f} = "
                f"{s[f'ratio_{load}_rps']:.2f} | {s[f'rempart_{load}_p99_ms']:.2f} / "
                f"{s[f'wforce_{load}_p99_ms']:.2f} ms = {s[f'ratio_{load}_p99_ms']:.2f} |"
                for load in ("fixed", "varying")
            ),
            "",
        ]
    )
    write_section("Side by side with wforce", section)


if __name__ == "__main__":
    main()
