"""A flood of the login route itself, with good standing: real HAProxy with the generated
configuration, a real `rempart serve` (its control loop and its standing and block-list feeds)
and the bounded upstream of `experiment.py`.

Before the flood, `standing_users` users sign in: their successes are reported to Rempart's
wforce API as a login backend does, and the run waits until HAProxy's ``standing.map`` holds
their addresses. Phase 1 measures logins of users in good standing and of new users (addresses
Rempart never saw succeed) unloaded; phase 2 adds a flood of ``/login`` at `flood_rps` from
`flood_sources` addresses. Run as ``python -m benchmarks.shed.standing [flood seconds]``.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from benchmarks.shed.experiment import (
    HERE,
    Load,
    _port_open,
    haproxy_binary,
    loadgen,
    running,
    shed_table,
    wait_for,
)
from benchmarks.shed.loadgen import loopback_sources
from rempart.process import ServeProcess, free_port
from rempart.shed.config import parse_shed
from rempart.shed.haproxy_config import SERVER, render
from rempart.shed.maps import ensure_maps
from rempart.shed.runtime import HAProxyRuntime
from rempart.shed.standing_feed import map_entries
from rempart.shed.standing_map import STANDING_MAP

STANDING_FIRST, NEW_FIRST, FLOOD_FIRST = "127.0.3.1", "127.0.8.1", "127.1.0.1"


@dataclass
class StandingLoad:
    """Traffic shape: `load`'s upstream and flood, the flood aimed at /login."""

    load: Load = field(default_factory=Load)
    standing_users: int = 200
    new_users: int = 200
    user_rps: float = 20.0  # logins per second of each group (users in standing, new users)


def _report_success(port: int, password: str, login: str, source: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        token = base64.b64encode(f"wforce:{password}".encode()).decode()
        body = {"login": login, "remote": source, "success": True, "pwhash": "0f0f"}
        headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        conn.request("POST", "/?command=report", body=json.dumps(body), headers=headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"report of {login} from {source}: HTTP {answer.status}")
    finally:
        conn.close()


def _streams(run: StandingLoad, flood: bool) -> list[dict[str, Any]]:
    load = run.load
    streams = [
        {"name": "standing", "path": "/login", "rate": run.user_rps,
         "first_source": STANDING_FIRST, "sources": run.standing_users, "timeout": load.timeout},
        {"name": "new", "path": "/login", "rate": run.user_rps,
         "first_source": NEW_FIRST, "sources": run.new_users, "timeout": load.timeout},
    ]  # fmt: skip
    if flood:
        streams.append(
            {"name": "flood", "path": "/login", "rate": load.flood_rps,
             "first_source": FLOOD_FIRST, "sources": load.flood_sources,
             "max_connections": load.flood_connections, "timeout": load.timeout}
        )  # fmt: skip
    return streams


def _standing_held(runtime: HAProxyRuntime, map_file: str) -> int:
    return len(map_entries(asyncio.run(runtime.command(f"show map {map_file}"))))


def _served(runtime: HAProxyRuntime) -> int:
    rows = asyncio.run(runtime.show_stat())
    return sum(int(r["hrsp_2xx"] or 0) for r in rows if r["svname"] == SERVER)


def run(workdir: Path, spec: StandingLoad) -> dict[str, Any]:
    """Both phases; the loadgen summaries per group, plus the upstream's served rate."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed")
    if spec.standing_users > 1000 or spec.new_users > 1000:
        raise ValueError("at most 1,000 users per group (their address ranges would overlap)")
    load = spec.load
    workdir.mkdir(parents=True, exist_ok=True)
    up_port, front_port = free_port(), free_port()
    table = shed_table(workdir, up_port, front_port, load)
    settings = parse_shed(table)  # [shed] alone: [shed.standing] is its own section
    table["standing"] = {"sweep_interval": 0.2}
    map_dir = Path(settings.haproxy.map_dir)
    ensure_maps(map_dir, [s.name for s in settings.services])
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(render(settings))
    upstream_cmd = [
        sys.executable, str(HERE / "upstream.py"), "--port", str(up_port),
        "--capacity", str(load.capacity), "--work", str(load.work), "--queue-timeout", "5",
    ]  # fmt: skip
    password = secrets.token_urlsafe(24)
    server = ServeProcess(workdir / "data", tomli_w.dumps({"shed": table}), password)
    runtime = HAProxyRuntime(settings.haproxy.runtime_socket)
    map_file = str(map_dir / STANDING_MAP)
    with (
        running(upstream_cmd, workdir / "upstream.log"),
        running([binary, "-db", "-f", str(cfg)], workdir / "haproxy.log"),
    ):
        wait_for(lambda: _port_open(up_port), "upstream")
        wait_for(lambda: _port_open(front_port), "haproxy")
        server.start()
        try:
            started = time.monotonic()
            for n, source in enumerate(loopback_sources(STANDING_FIRST, spec.standing_users)):
                _report_success(server.port, password, f"user{n}@example.org", source)
            wait_for(
                lambda: _standing_held(runtime, map_file) == spec.standing_users,
                "standing in HAProxy's map",
            )
            earned_s = time.monotonic() - started
            baseline = loadgen(front_port, load.baseline_seconds, _streams(spec, False))
            served, since = _served(runtime), time.monotonic()
            flood = loadgen(front_port, load.flood_seconds, _streams(spec, True))
            upstream_rps = (_served(runtime) - served) / (time.monotonic() - since)
        finally:
            server.stop()
    for phase in (baseline, flood):
        for summary in phase.values():
            summary.pop("latencies_ms", None)
    return {
        "standing_users": spec.standing_users,
        "new_users": spec.new_users,
        "capacity_rps": load.capacity_rps,
        "standing_earned_s": round(earned_s, 2),
        "baseline": baseline,
        "flood": flood,
        "upstream_rps": round(upstream_rps, 1),
    }


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    spec = StandingLoad(load=Load(baseline_seconds=5, flood_seconds=seconds))
    with tempfile.TemporaryDirectory(prefix="rempart-standing-") as workdir:
        print(json.dumps(run(Path(workdir), spec), indent=2))


if __name__ == "__main__":
    main()
