"""`rempart serve` behind real HAProxy: a shedding episode reaches the log, the journal and
`rempart report incident`, with the requests turned away that the clients saw."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomli_w

from benchmarks.shed.experiment import HERE, _port_open, haproxy_binary, wait_for
from rempart.ops.journal import Journal
from rempart.process import ServeProcess, free_port
from tests.conftest import need
from tests.unit.shed.test_haproxy import get

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(120)]


def test_serve_journals_and_reports_a_shedding_episode(tmp_path: Path) -> None:
    binary = haproxy_binary()
    need("haproxy", binary is not None, "install Debian's haproxy (apt-get install haproxy)")
    assert binary is not None
    up, front = free_port(), free_port()
    data_dir = tmp_path / "data"
    config = tmp_path / "rempart.toml"
    shed = {
        # A tiny capacity (5 % of 2 slots): a burst of page views is an overload.
        "limiter": {"initial": 2, "min": 1, "max": 2, "utilization": 0.05,
                    "minrtt_interval": 0.0},
        "episodes": {"end_after": 0.5, "summary_interval": 1.0},
        "haproxy": {"bind": f"127.0.0.1:{front}", "runtime_socket": str(tmp_path / "h.sock")},
        "services": [{"name": "web", "upstream": f"127.0.0.1:{up}"}],
    }  # fmt: skip
    config.write_text(tomli_w.dumps({"shed": shed}))
    cfg = tmp_path / "haproxy.cfg"
    generated = subprocess.run(
        [sys.executable, "-m", "rempart", "shed", "haproxy-config", "--config", str(config),
         "--data-dir", str(data_dir), "-o", str(cfg)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    upstream = subprocess.Popen(
        [sys.executable, str(HERE / "upstream.py"), "--port", str(up), "--capacity", "4",
         "--work", "0.001"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proxy = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL)
    serve = ServeProcess(
        data_dir, config.read_text(), password="k3Jq9-shed-Episodes-7Zp", config_path=config
    )
    since = time.time()
    try:
        wait_for(lambda: _port_open(up) and _port_open(front), "upstream and haproxy")
        serve.start()
        refused = 0
        deadline = time.monotonic() + 20
        with ThreadPoolExecutor(16) as pool:
            while time.monotonic() < deadline and refused < 50:
                statuses = list(pool.map(lambda _: get(front, "/page")[0], range(200)))
                refused += statuses.count(503)
        assert refused >= 50, "the control loop never shed the burst"

        def every_episode_ended() -> bool:
            lines = list(serve.output)
            started = sum("shedding started on web" in x for x in lines)
            return started > 0 and started == sum("shedding ended on web" in x for x in lines)

        wait_for(every_episode_ended, "the end of every episode", 20)
    finally:
        serve.stop()
        proxy.terminate()
        upstream.terminate()
        proxy.wait(5)
        upstream.wait(5)
    log = "".join(serve.output)
    assert "shed: shedding started on web: admitting " in log
    assert (
        f"requests turned away (sheddable_plus {refused})" in log
        or len([x for x in serve.output if "shedding ended" in x]) > 1
    )  # one episode: its end line gives the count the clients saw
    records = list(Journal(data_dir / "journal").records(since=since))
    kinds = [r["kind"] for r in records if r["kind"].startswith("shed_")]
    assert kinds[0] == "shed_start" and "shed_end" in kinds, kinds
    ended = [r for r in records if r["kind"] == "shed_end"]
    assert sum(r["turned_away"]["sheddable_plus"] for r in ended) == refused

    out = tmp_path / "incident.html"
    report = subprocess.run(
        [sys.executable, "-m", "rempart", "report", "incident", "--since", str(int(since) - 1),
         "--data-dir", str(data_dir), "--out", str(out), "--config", str(config)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    html = out.read_text()
    assert '<section id="shedding">' in html and "<td>web</td>" in html
    assert f'data-figure="Requests shed">{refused:,}<' in html
