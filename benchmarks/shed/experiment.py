"""One flood experiment with real HAProxy: bounded upstream, generated config, control loop.

Phase 1 measures the critical routes unloaded; phase 2 adds a flood on a sheddable route from
many loopback sources. ``enforce=False`` runs the same HAProxy without admission control (the
baseline). Processes are started here and always stopped; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.process import free_port
from rempart.shed.classes import Criticality
from rempart.shed.config import parse_shed
from rempart.shed.controller import Controller
from rempart.shed.episodes import EpisodeEnded, EpisodeStarted, LimitMoved, ShedEvent
from rempart.shed.haproxy_config import SERVER, render
from rempart.shed.maps import ensure_maps
from rempart.shed.runtime import HAProxyRuntime

HERE = Path(__file__).resolve().parent  # the helper processes are scripts beside this one


@dataclass
class Load:
    """Traffic shape of one run."""

    capacity: int = 10  # upstream concurrent requests
    work: float = 0.04  # seconds per request → capacity / work requests per second
    critical_plus_rps: float = 20.0
    critical_rps: float = 40.0
    flood_rps: float = 2500.0
    flood_sources: int = 2000
    flood_connections: int = 500
    baseline_seconds: float = 3.0
    flood_seconds: float = 10.0
    timeout: float = 2.0
    initial: float = 10.0  # [shed.limiter] initial: the starting concurrency limit

    @property
    def capacity_rps(self) -> float:
        return self.capacity / self.work


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )


def wait_for(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def shed_table(
    workdir: Path, upstream_port: int, front_port: int, load: Load | None = None
) -> dict[str, Any]:
    """The [shed] config of the experiment: routes as in the issue's example."""
    load = load or Load()
    return {
        "retry_after": 2,
        "interval": 0.2,
        "limiter": {
            "initial": load.initial,
            "min": 2,
            "max": 200,
        },
        "haproxy": {
            "bind": f"127.0.0.1:{front_port}",
            "runtime_socket": str(workdir / "haproxy.sock"),
            "map_dir": str(workdir / "maps"),
            "queue_timeout": 1.0,
            "maxconn": 6000,
        },
        "services": [
            {"name": "web", "upstream": f"127.0.0.1:{upstream_port}", "probe_path": "/healthz"}
        ],
        "routes": [
            {"name": "2fa", "class": "critical_plus", "path": "/2fa/*"},
            {"name": "payments", "class": "critical_plus", "path": "/payments/*"},
            {"name": "login", "class": "critical", "path": "/login"},
            {"name": "search", "class": "sheddable", "path": "/search*"},
            {"name": "pages", "class": "sheddable_plus", "path": "/pages/*"},
        ],
    }


@contextlib.contextmanager
def running(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def loadgen(port: int, seconds: float, streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Each stream in its own generator process, all at once: the flood's client cannot slow
    the critical clients down (they are different machines in real life), and each process is
    bounded by ``seconds`` and its stream's ``max_connections``."""
    procs = []
    for stream in streams:
        spec = {"host": "127.0.0.1", "port": port, "duration": seconds, "streams": [stream]}
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "loadgen.py"), json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    merged: dict[str, Any] = {}
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"load generator failed: {err.decode()[-2000:]}")
            merged.update(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return merged


def _streams(load: Load, flood: bool) -> list[dict[str, Any]]:
    steady = [
        {"name": "critical_plus", "path": "/payments/pay", "rate": load.critical_plus_rps,
         "first_source": "127.0.1.1", "sources": 20, "timeout": load.timeout},
        {"name": "critical", "path": "/login", "rate": load.critical_rps,
         "first_source": "127.0.2.1", "sources": 20, "timeout": load.timeout},
    ]  # fmt: skip
    if flood:
        steady.append(
            {"name": "sheddable", "path": "/search?q=x", "rate": load.flood_rps,
             "first_source": "127.1.0.1", "sources": load.flood_sources,
             "max_connections": load.flood_connections, "timeout": load.timeout}
        )  # fmt: skip
    return steady


Sample = tuple[float, int, float, int]  # (monotonic time, sheddable %, limit, queued)


async def _sample(controller: Controller, samples: list[Sample], stop: asyncio.Event) -> None:
    """The controller's sheddable share, limit and HAProxy queue after every tick."""
    seen = -1
    while not stop.is_set():
        svc = controller.state.services["web"]
        if controller.state.ticks != seen:
            seen = controller.state.ticks
            pct = svc.classes[Criticality.SHEDDABLE].admitted_pct
            samples.append((time.monotonic(), pct, svc.limit, svc.queued))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def _with_controller(
    controller: Controller | None, work: Any, samples: list[Sample] | None = None
) -> Any:
    if controller is None:
        return await asyncio.to_thread(work)
    stop = asyncio.Event()
    loop_task = asyncio.ensure_future(controller.run(stop))
    sampler = asyncio.ensure_future(
        _sample(controller, samples if samples is not None else [], stop)
    )
    try:
        return await asyncio.to_thread(work)
    finally:
        stop.set()
        await loop_task
        await sampler


def windows(samples: list[Sample], start: float, end: float, width: float = 5.0) -> list[Sample]:
    """Per ``width``-second window of [start, end): (window start, mean sheddable %, min %,
    max %, mean limit) of the ticks in it."""
    out = []
    t = start
    while t + width <= end + 1e-9:
        inside = [s for s in samples if t <= s[0] < t + width]
        if inside:
            pcts = [s[1] for s in inside]
            out.append(
                (
                    round(t - start, 1),
                    round(sum(pcts) / len(pcts), 2),
                    min(pcts),
                    max(pcts),
                    round(sum(s[2] for s in inside) / len(inside), 2),
                )
            )
        t += width
    return out  # type: ignore[return-value]


async def _served(runtime: HAProxyRuntime) -> int:
    """Successful (2xx) responses the upstream server has sent so far: the upstream's own
    fast 503s when it is overloaded are not work done."""
    rows = await runtime.show_stat()
    return sum(int(r["hrsp_2xx"] or 0) for r in rows if r["svname"] == SERVER)


def run(workdir: Path, load: Load, *, enforce: bool) -> dict[str, Any]:
    """Run both phases; returns loadgen summaries plus controller figures."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    up_port, front_port = free_port(), free_port()
    settings = parse_shed(shed_table(workdir, up_port, front_port, load))
    ensure_maps(Path(settings.haproxy.map_dir), [s.name for s in settings.services])
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(render(settings, enforce=enforce))
    upstream_cmd = [
        sys.executable, str(HERE / "upstream.py"), "--port", str(up_port),
        "--capacity", str(load.capacity), "--work", str(load.work), "--queue-timeout", "5",
    ]  # fmt: skip
    with (
        running(upstream_cmd, workdir / "upstream.log"),
        running([binary, "-db", "-f", str(cfg)], workdir / "haproxy.log"),
    ):
        wait_for(lambda: _port_open(up_port), "upstream")
        wait_for(lambda: _port_open(front_port), "haproxy")
        controller = Controller(settings) if enforce else None
        runtime = HAProxyRuntime(settings.haproxy.runtime_socket)
        events: list[ShedEvent] = []
        samples: list[Sample] = []
        flood_window: list[float] = []
        if controller is not None:
            controller.listeners.append(events.append)

        async def both() -> tuple[dict[str, Any], dict[str, Any]]:
            base = await _with_controller(
                controller,
                lambda: loadgen(front_port, load.baseline_seconds, _streams(load, False)),
            )
            served, since = await _served(runtime), time.monotonic()
            flood_window.append(since)
            flood = await _with_controller(
                controller,
                lambda: loadgen(front_port, load.flood_seconds, _streams(load, True)),
                samples,
            )
            # Over the generators' whole life (the flood, then their last responses).
            elapsed = time.monotonic() - since
            flood["upstream_rps"] = round((await _served(runtime) - served) / elapsed, 1)
            return base, flood

        baseline, flooded = asyncio.run(both())
    upstream_rps = flooded.pop("upstream_rps")
    result: dict[str, Any] = {
        "enforce": enforce,
        "baseline": baseline,
        "flood": flooded,
        "upstream_rps": upstream_rps,  # responses the upstream served per second of flood
    }
    if controller is not None:
        svc = controller.state.services["web"]
        result["final_limit"] = round(svc.limit, 1)
        result["final_shares"] = {c.label: s.admitted_pct for c, s in svc.classes.items()}
        result["rtt_noload_ms"] = round((svc.rtt_noload or 0.0) * 1000, 2)
        result["limit_moves"] = controller.limiters["web"].moves
        start = flood_window[0]
        # From 2 s into the flood (the controller's first reaction) to its end.
        result["share_windows"] = windows(samples, start + 2.0, start + load.flood_seconds)
        flood_limits = [s[2] for s in samples if s[0] >= start + 2.0]
        result["limit_range"] = (min(flood_limits), max(flood_limits)) if flood_limits else None
        result["load_average"] = os.getloadavg()
        ongoing = controller.episodes["web"].episode
        turned = [e.turned_away for e in events if isinstance(e, EpisodeEnded)]
        turned += [ongoing.turned_away] if ongoing is not None else []
        result["episodes"] = {
            "started": sum(isinstance(e, EpisodeStarted) for e in events),
            "ended": sum(isinstance(e, EpisodeEnded) for e in events),
            "limit_moves": sum(isinstance(e, LimitMoved) for e in events),
            "turned_away": sum(sum(t.values()) for t in turned),
        }
    return result
