"""A real HAProxy (Debian's) for the shed tests: generated config, maps, a bounded upstream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.shed.experiment import HERE, _port_open, free_port, haproxy_binary, wait_for
from rempart.shed.config import ShedSettings, parse_shed
from rempart.shed.haproxy_config import render
from rempart.shed.maps import ensure_maps
from tests.conftest import need

UPSTREAM = HERE / "upstream.py"


def require_haproxy() -> str:
    binary = haproxy_binary()
    need("haproxy", binary is not None, "install Debian's haproxy (apt-get install haproxy)")
    assert binary is not None
    return binary


def shed_table(workdir: Path, upstream_port: int, front_port: int) -> dict[str, Any]:
    return {
        "retry_after": 3,
        "client_rate": {"sheddable": 50},
        "haproxy": {
            "bind": f"127.0.0.1:{front_port}",
            "runtime_socket": str(workdir / "haproxy.sock"),
            "map_dir": str(workdir / "maps"),
        },
        "services": [
            {"name": "web", "upstream": f"127.0.0.1:{upstream_port}"},
            {"name": "api", "upstream": f"127.0.0.1:{upstream_port}", "probe_path": ""},
        ],
        "routes": [
            {"name": "payments", "class": "critical_plus", "path": "/payments/*"},
            {"name": "login", "class": "critical", "path": "/login", "methods": ["POST"]},
            {"name": "search", "class": "sheddable", "path": "/search*"},
            {"name": "api", "class": "critical", "path": "/v1/*", "host": "*.example.com",
             "service": "api"},
        ],
    }  # fmt: skip


@dataclass
class RealHAProxy:
    settings: ShedSettings
    config: Path
    front_port: int
    upstream_port: int


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[RealHAProxy]:
    """HAProxy with the generated config in front of ``benchmarks/shed/upstream.py``."""
    binary = require_haproxy()
    up_port, front_port = free_port(), free_port()
    settings = parse_shed(shed_table(tmp_path, up_port, front_port))
    ensure_maps(Path(settings.haproxy.map_dir), [s.name for s in settings.services])
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(settings))
    upstream = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", str(up_port),
         "--capacity", "4", "--work", "0.001"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = (tmp_path / "haproxy.log").open("wb")
    proxy = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=log)
    try:
        wait_for(lambda: _port_open(up_port), "upstream")
        wait_for(lambda: _port_open(front_port) or proxy.poll() is not None, "haproxy")
        assert proxy.poll() is None, (tmp_path / "haproxy.log").read_text()
        yield RealHAProxy(settings, cfg, front_port, up_port)
    finally:
        _stop(proxy)
        _stop(upstream)
        log.close()
