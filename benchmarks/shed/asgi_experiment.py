"""The flood experiment for :class:`~rempart.shed.AdmissionMiddleware` on a real ASGI server.

Same shape as the HAProxy experiment: a bounded application (``asgi_app``) served by uvicorn on
127.0.0.1, an unloaded phase with the critical clients only, then the same clients during a
sheddable flood from many loopback sources; ``enforce=False`` serves the same application
without the middleware (the baseline). The server process is always stopped.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from .asgi_app import STATUS_PATH
from .experiment import (
    HERE,
    Load,
    _port_open,
    _streams,
    free_port,
    loadgen,
    running,
    wait_for,
)

# The application shares its process (and CPU) with the middleware and uvicorn, which parse and
# answer every flood request in Python: a 100 req/s application (10 x 100 ms) flooded at 10x.
ASGI_LOAD = Load(work=0.1, critical_plus_rps=10.0, critical_rps=20.0, flood_rps=1000.0)


def uvicorn_available() -> bool:
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


def server_status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATUS_PATH}", timeout=5) as answer:
        return json.loads(answer.read())


def run(workdir: Path, load: Load, *, enforce: bool) -> dict[str, Any]:
    """Both phases against one server process; returns loadgen summaries and the final state."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        sys.executable, str(HERE / "asgi_app.py"), "--port", str(port),
        "--capacity", str(load.capacity), "--work", str(load.work),
    ]  # fmt: skip
    if not enforce:
        cmd.append("--no-shed")
    with running(cmd, workdir / "server.log") as proc:
        wait_for(lambda: _port_open(port) or proc.poll() is not None, "uvicorn")
        if proc.poll() is not None:
            raise RuntimeError((workdir / "server.log").read_text()[-2000:])
        baseline = loadgen(port, load.baseline_seconds, _streams(load, False))
        flooded = loadgen(port, load.flood_seconds, _streams(load, True))
        status = server_status(port)
    result: dict[str, Any] = {"enforce": enforce, "baseline": baseline, "flood": flooded}
    if enforce:
        svc = status["services"]["app"]
        result["final_limit"] = svc["limit"]
        result["rtt_noload_ms"] = svc["rtt_noload_ms"]
        result["minrtt_measurements"] = status["minrtt_measurements"]
        result["final_shares"] = {k: v["admitted_pct"] for k, v in svc["classes"].items()}
        result["shed_total"] = {k: v["shed_total"] for k, v in svc["classes"].items()}
    return result
