"""The generated HAProxy configuration is usable as it is: documented defaults match the code,
"${VAR}" placeholders, extra global lines, a maxconn that fits the host's descriptor limit, and
admission maps that start fully open. Real HAProxy starts on what is generated."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from benchmarks.shed.experiment import _port_open, free_port
from rempart.config import ConfigError
from rempart.shed.classes import Criticality as C
from rempart.shed.config import example_table, parse_shed
from rempart.shed.controller import Controller
from rempart.shed.fdlimit import FDLimitError, fit_maxconn, needed_fds
from rempart.shed.haproxy_config import render
from rempart.shed.maps import ensure_maps, read_admission, read_hostile, write_admission
from rempart.shed.runtime import HAProxyRuntime

from .conftest import UPSTREAM, require_haproxy, shed_table
from .test_haproxy import check, get

pytestmark = pytest.mark.timeout(60)


# --- documented defaults -------------------------------------------------------------------
def test_the_reference_documents_the_defaults_of_the_code() -> None:
    documented = {k: v for k, v in example_table().items() if k not in ("services", "routes")}
    assert {"limiter", "episodes", "client_rate", "haproxy"} <= set(documented)
    assert parse_shed(documented) == parse_shed({})
    assert parse_shed({}).haproxy.maxconn == documented["haproxy"]["maxconn"] == 0


def test_config_show_reference_shed_shows_maxconn_as_in_the_code() -> None:
    from rempart.cli import main

    result = CliRunner().invoke(main, ["config", "show", "--reference-shed"])
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.output.splitlines() if "maxconn =" in x]
    assert "maxconn = 0" in line and "4096" in line


# --- placeholders ----------------------------------------------------------------------------
def table(bind: str = "127.0.0.1:8080", upstream: str = "127.0.0.1:8081", **hp: Any) -> dict:
    return {
        "haproxy": {"bind": bind, **hp},
        "services": [{"name": "web", "upstream": upstream}],
    }


@pytest.mark.parametrize(
    "address", ["${FRONT}", "${HOST}:8080", "127.0.0.1:${PORT}", "${H}:${P}", "[::1]:${PORT}"]
)
def test_placeholders_are_accepted_and_quoted_for_haproxy(address: str) -> None:
    settings = parse_shed(table(address, address))
    text = render(settings, host_limits=(20000, 2))
    assert f'    bind "{address}"' in text.splitlines()
    assert f'    server upstream "{address}" maxconn 20' in text.splitlines()


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("${1X}", "placeholders are written"),
        ("$FRONT:80", "placeholders are written"),
        ("${A B}", "placeholders are written"),
        ('"${A}"', "placeholders are written"),
        ("${A}x:80", "whole host or port"),
        ("${A}:99999", "not a port"),
        ("${A}:", "host:port or ${VAR}"),
        ("bad host:${P}", "placeholders are written"),
    ],
)
def test_malformed_placeholders_name_the_key(address: str, why: str) -> None:
    with pytest.raises(ConfigError, match=r"shed\.haproxy\.bind") as bind:
        parse_shed(table(bind=address))
    assert why in str(bind.value)
    with pytest.raises(ConfigError, match=r"shed\.services\[0\]\.upstream"):
        parse_shed(table(upstream=address))


def test_the_controller_probes_the_expanded_upstream() -> None:
    service = parse_shed(table(upstream="${UP_HOST}:${UP_PORT}")).services[0]
    assert service.endpoint({"UP_HOST": "127.0.0.2", "UP_PORT": "9000"}) == ("127.0.0.2", 9000)
    assert service.endpoint({"UP_HOST": "127.0.0.2"}) is None  # unset: no probe, rtime only
    assert service.endpoint({"UP_HOST": "127.0.0.2", "UP_PORT": "x"}) is None


# --- global lines ----------------------------------------------------------------------------
def test_global_lines_go_into_the_global_section() -> None:
    settings = parse_shed(table(global_lines=["no strict-limits", "tune.bufsize   32768"]))
    lines = render(settings, host_limits=(20000, 2)).splitlines()
    end = lines.index("defaults")
    assert lines.index("global") < lines.index("    no strict-limits") < end
    assert "    tune.bufsize 32768" in lines[:end]


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (["nbthread 2\nstats socket /tmp/x"], "one non-empty line"),
        ([""], "one non-empty line"),
        (["maxconn 100"], "set shed.haproxy.maxconn"),
        (["stats socket /tmp/s level admin"], "set shed.haproxy.runtime_socket"),
        ("no strict-limits", "list of strings"),
    ],
)
def test_bad_global_lines_are_refused(lines: Any, why: str) -> None:
    with pytest.raises(ConfigError, match=r"shed\.haproxy\.global_lines") as err:
        parse_shed(table(global_lines=lines))
    assert why in str(err.value)


# --- maxconn and the descriptor limit --------------------------------------------------------
def test_maxconn_is_derived_from_the_hard_limit() -> None:
    assert fit_maxconn(0, 20000, 2).maxconn == 4096  # plenty: the documented ceiling
    small = fit_maxconn(0, 1024, 2)
    assert small.maxconn == (1024 - 64 - 8) // 2 and needed_fds(small.maxconn, 2) <= 1024
    assert "hard descriptor limit 1024" in small.why
    assert fit_maxconn(0, None, 64).maxconn == 4096  # unlimited
    with pytest.raises(FDLimitError, match="raise it to at least"):
        fit_maxconn(0, 50, 2)


def test_an_explicit_maxconn_that_cannot_start_names_the_limit_to_raise() -> None:
    with pytest.raises(FDLimitError) as err:
        fit_maxconn(20000, 20000, 2)
    message = str(err.value)
    assert "shed.haproxy.maxconn = 20000 needs about 40072 file descriptors" in message
    assert "hard limit here (RLIMIT_NOFILE) is 20000" in message
    assert "LimitNOFILE=40072" in message and "maxconn to 9964 or less" in message
    relaxed = fit_maxconn(20000, 20000, 2, strict=False)  # `no strict-limits`: HAProxy warns
    assert relaxed.maxconn == 20000 and relaxed.why.startswith("WARNING")


def _limit_nofile(limit: int) -> Callable[[], None]:
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _cli(args: list[str], limit: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rempart", "shed", "haproxy-config", *args],
        capture_output=True, text=True, cwd=cwd, preexec_fn=_limit_nofile(limit),
    )  # fmt: skip


@pytest.fixture
def started() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*cmd: str, limit: int | None = None, **kw: Any) -> subprocess.Popen[bytes]:
        preexec = _limit_nofile(limit) if limit else None
        proc = subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=preexec, **kw
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_listening(proc: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        if _port_open(port):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.haproxy
def test_default_config_starts_real_haproxy_under_a_low_descriptor_limit(
    tmp_path: Path, started: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Issue 15: the default maxconn must start where the hard limit is low (1,000 here)."""
    binary = require_haproxy()
    front, up = free_port(), free_port()
    shed_cfg = shed_table(tmp_path, up, front)
    config = tmp_path / "rempart.toml"
    config.write_text(tomli_w.dumps({"shed": shed_cfg}))
    out = tmp_path / "haproxy.cfg"
    result = _cli(["--config", str(config), "-o", str(out)], 1000, tmp_path)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "maxconn 4096" not in text and "hard descriptor limit 1000" in text
    started(sys.executable, str(UPSTREAM), "--port", str(up), "--capacity", "4", "--work", "0.001")
    proxy = started(binary, "-db", "-f", str(out), limit=1000)
    assert _wait_listening(proxy, front), proxy.communicate(timeout=5)[0].decode()
    assert get(front, "/payments/x")[0] == 200

    # The same host refuses the old fixed default: the test above is not vacuous.
    fixed = tmp_path / "fixed.cfg"
    fixed.write_text(text.replace("    maxconn 4", "    maxconn 4096\n#", 1))
    refused = subprocess.run(
        [binary, "-db", "-f", str(fixed)],
        capture_output=True, text=True, timeout=20, preexec_fn=_limit_nofile(1000),
    )  # fmt: skip
    assert refused.returncode != 0 and "Cannot raise FD limit" in refused.stdout + refused.stderr


def test_cli_names_the_limit_when_the_configured_maxconn_cannot_start(tmp_path: Path) -> None:
    config = tmp_path / "rempart.toml"
    shed_cfg = shed_table(tmp_path, 18081, 18080)
    shed_cfg["haproxy"]["maxconn"] = 20000
    config.write_text(tomli_w.dumps({"shed": shed_cfg}))
    out = tmp_path / "haproxy.cfg"
    result = _cli(["--config", str(config), "-o", str(out)], 20000, tmp_path)
    assert result.returncode == 1 and not out.exists()
    assert "shed.haproxy.maxconn = 20000 needs about" in result.stderr
    assert "RLIMIT_NOFILE" in result.stderr and "LimitNOFILE=" in result.stderr


@pytest.mark.haproxy
def test_placeholders_and_global_lines_start_real_haproxy(
    tmp_path: Path, started: Callable[..., subprocess.Popen[bytes]]
) -> None:
    binary = require_haproxy()
    front, up = free_port(), free_port()
    shed_cfg = shed_table(tmp_path, up, front)
    shed_cfg["haproxy"]["bind"] = "${FRONT_ADDR}:${FRONT_PORT}"
    shed_cfg["haproxy"]["global_lines"] = ["no strict-limits", "tune.bufsize 32768"]
    for service in shed_cfg["services"]:
        service["upstream"] = "${UPSTREAM}"
    settings = parse_shed(shed_cfg)
    ensure_maps(Path(settings.haproxy.map_dir), [s.name for s in settings.services])
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(settings))
    env = {**os.environ, "FRONT_ADDR": "127.0.0.1", "FRONT_PORT": str(front),
           "UPSTREAM": f"127.0.0.1:{up}"}  # fmt: skip
    checked = subprocess.run(
        [binary, "-c", "-f", str(cfg)], capture_output=True, text=True, env=env
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    unset = check(binary, cfg)  # without the variables HAProxy cannot parse the addresses
    assert unset.returncode != 0
    started(sys.executable, str(UPSTREAM), "--port", str(up), "--capacity", "4", "--work", "0.001")
    proxy = started(binary, "-db", "-f", str(cfg), env=env)
    assert _wait_listening(proxy, front), proxy.communicate(timeout=5)[0].decode()
    assert get(front, "/payments/x")[0] == 200


# --- admission maps start open ---------------------------------------------------------------
def test_ensure_maps_resets_admission_and_keeps_hostile_sources(tmp_path: Path) -> None:
    write_admission(tmp_path, {"web": {C.SHEDDABLE: 0, C.CRITICAL: 40}, "gone": {C.CRITICAL: 5}})
    (tmp_path / "hostile.map").write_text("10.0.0.1 1\n")
    ensure_maps(tmp_path, ["web", "api"])
    assert read_admission(tmp_path) == {
        "web": dict.fromkeys(C, 100),
        "api": dict.fromkeys(C, 100),
    }
    assert read_hostile(tmp_path) == ["10.0.0.1"]


def test_a_starting_controller_resets_the_previous_runs_shares(tmp_path: Path) -> None:
    settings = parse_shed(
        {
            "haproxy": {"runtime_socket": str(tmp_path / "none.sock"), "map_dir": str(tmp_path)},
            "services": [{"name": "web", "upstream": "127.0.0.1:9", "probe_path": ""}],
        }
    )
    write_admission(tmp_path, {"web": {C.SHEDDABLE: 0, C.SHEDDABLE_PLUS: 30}})
    controller = Controller(settings, HAProxyRuntime(settings.haproxy.runtime_socket, 0.2))
    stop = asyncio.Event()
    stop.set()
    asyncio.run(controller.run(stop))
    assert read_admission(tmp_path) == {"web": dict.fromkeys(C, 100)}
