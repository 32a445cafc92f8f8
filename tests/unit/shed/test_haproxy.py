"""The HAProxy data plane for real: generated config (``haproxy -c``), runtime client, maps,
the control loop and status read back from a running HAProxy."""

from __future__ import annotations

import asyncio
import http.client
import subprocess
from pathlib import Path

import pytest

from rempart.shed.classes import Criticality as C
from rempart.shed.config import parse_shed
from rempart.shed.controller import Controller
from rempart.shed.haproxy_config import CLASS_TABLE, SERVER, render
from rempart.shed.maps import ADMISSION_MAP, ensure_maps, read_admission
from rempart.shed.runtime import HAProxyRuntime, RuntimeUnavailable
from rempart.shed.snapshot import snapshot
from rempart.shed.status import public_status, shed_status

from .conftest import RealHAProxy, require_haproxy, shed_table

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(60)]


def get(
    port: int, path: str, source: str = "127.0.0.1", method: str = "GET", host: str = "bank"
) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request(method, path, headers={"Host": host})
        answer = conn.getresponse()
        answer.read()
        return answer.status, answer.getheader("Retry-After")
    finally:
        conn.close()


def check(binary: str, cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)


@pytest.mark.parametrize("enforce", [True, False])
def test_generated_config_passes_haproxy_check(tmp_path: Path, enforce: bool) -> None:
    binary = require_haproxy()
    settings = parse_shed(shed_table(tmp_path, 18081, 18080))
    ensure_maps(Path(settings.haproxy.map_dir), ["web", "api"])
    cfg = tmp_path / "haproxy.cfg"
    text = render(settings, enforce=enforce, initial_limit=7)
    cfg.write_text(text)
    result = check(binary, cfg)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.strip() for line in text.splitlines()]
    maps = settings.haproxy.map_dir
    assert (
        f"http-request deny deny_status 403 if {{ src,map_ip_int({maps}/hostile.map,0) gt 0 }}"
        in lines
    )
    assert f"stats socket {settings.haproxy.runtime_socket} mode 600 level admin" in lines
    keys = [line for line in lines if line.startswith("http-request set-var(txn.shed_key)")]
    assert keys[0] == "http-request set-var(txn.shed_key) str(web/sheddable_plus)"  # default
    # Least specific first, so that the most specific matching route is set last and wins.
    assert keys.index(
        "http-request set-var(txn.shed_key) str(web/critical) if { path -m str /login } { method POST }"
    ) > keys.index(
        "http-request set-var(txn.shed_key) str(web/sheddable) if { path -m beg /search }"
    )
    assert (
        "http-request set-var(txn.shed_key) str(api/critical) if { path -m beg /v1/ } "
        "{ req.hdr(host),lower,field(1,:) -m end .example.com }"
    ) in lines
    assert "backend be_api" in lines and "use_backend be_%[var(txn.shed_key),field(1,/)]" in lines
    shed_503 = [line for line in lines if line.startswith("http-request return status 503")]
    if enforce:
        assert "server upstream 127.0.0.1:18081 maxconn 7" in lines
        assert (
            shed_503
            and "hdr Retry-After 3" in shed_503[0]
            and shed_503[0].endswith("if shed_now !standing")
        )  # a source in good standing is never cut at random
        assert "acl standing var(txn.standing_until),sub(txn.now) gt 0" in lines
        assert (
            f"http-request set-var(txn.standing_until) src,map_ip_int({maps}/standing.map,0)"
            in lines
        )
        # Within a class, good standing first; every class still ahead of the next one.
        priorities = [line for line in lines if "set-priority-class" in line]
        assert priorities[:4] == [
            "http-request set-priority-class int(1) if { var(txn.shed_key) -m end /critical_plus }",
            "http-request set-priority-class int(0) if { var(txn.shed_key) -m end /critical_plus }"
            " standing",
            "http-request set-priority-class int(3) if { var(txn.shed_key) -m end /critical }",
            "http-request set-priority-class int(2) if { var(txn.shed_key) -m end /critical }"
            " standing",
        ]
        assert any(
            line.startswith("http-request return status 429") and "gt 50" in line for line in lines
        )
    else:
        assert "server upstream 127.0.0.1:18081" in lines  # no maxconn, nothing shed
        assert not shed_503 and not any("set-priority-class" in line for line in lines)


def test_haproxy_check_is_a_real_validation(tmp_path: Path) -> None:
    binary = require_haproxy()
    settings = parse_shed(shed_table(tmp_path, 18081, 18080))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(settings))  # the map files were not created
    result = check(binary, cfg)
    assert result.returncode != 0 and "failed to open pattern file" in result.stdout + result.stderr


def test_render_needs_a_service() -> None:
    with pytest.raises(ValueError, match=r"shed\.services"):
        render(parse_shed({}))


def test_runtime_client_against_real_haproxy(haproxy: RealHAProxy) -> None:
    settings = haproxy.settings
    runtime = HAProxyRuntime(settings.haproxy.runtime_socket)
    admission = str(Path(settings.haproxy.map_dir) / ADMISSION_MAP)

    async def scenario() -> None:
        rows = await runtime.show_stat()
        server = next(r for r in rows if r["pxname"] == "be_web" and r["svname"] == SERVER)
        assert server["slim"] == str(round(settings.limiter.initial))
        await runtime.set_maxconn("be_web", SERVER, 13)
        rows = await runtime.show_stat()
        assert (
            next(r for r in rows if r["pxname"] == "be_web" and r["svname"] == SERVER)["slim"]
            == "13"
        )
        await runtime.set_map(admission, {"web/sheddable": "0", "extra/critical": "42"})
        shown = await runtime.command(f"show map {admission}")
        assert "web/sheddable 0" in shown and "extra/critical 42" in shown  # set, and added
        with pytest.raises(RuntimeUnavailable, match="refused"):
            await runtime.set_maxconn("be_nowhere", SERVER, 5)
        with pytest.raises(ValueError):
            await runtime.command("show info; shutdown sessions")

    asyncio.run(scenario())
    assert get(haproxy.front_port, "/search?q=1") == (503, "3")  # admission map enforced live
    assert get(haproxy.front_port, "/payments/p")[0] == 200
    assert get(haproxy.front_port, "/payments/p")[0] == 200
    table = asyncio.run(runtime.show_table(CLASS_TABLE))
    assert table["web/critical_plus"].count == 2 and table["web/sheddable"].count == 1
    assert table["web/critical_plus"].rate == 2


def test_unreachable_runtime_socket_raises(tmp_path: Path) -> None:
    runtime = HAProxyRuntime(str(tmp_path / "none.sock"), timeout=0.2)
    with pytest.raises(RuntimeUnavailable, match=r"none\.sock"):
        asyncio.run(runtime.show_stat())


def test_controller_snapshot_and_status_from_real_haproxy(haproxy: RealHAProxy) -> None:
    settings = haproxy.settings
    controller = Controller(settings)
    for _ in range(3):
        get(haproxy.front_port, "/payments/x")
        get(haproxy.front_port, "/login", method="POST")
        get(haproxy.front_port, "/v1/accounts", host="api.example.com")
        state = asyncio.run(controller.tick())
    assert state.runtime_ok and state.ticks == 3
    web = state.services["web"]
    assert web.rtt is not None and web.rtt_noload is not None and web.limit > 0
    stored = read_admission(Path(settings.haproxy.map_dir))
    assert stored["web"][C.CRITICAL_PLUS] == 100

    seen = asyncio.run(snapshot(settings, HAProxyRuntime(settings.haproxy.runtime_socket)))
    assert seen.services["web"].limit == controller.limiters["web"].limit  # the maxconn set
    assert seen.services["web"].classes[C.CRITICAL_PLUS].requests_total == 3
    assert seen.services["api"].classes[C.CRITICAL].requests_total == 3
    doc = shed_status(seen)
    assert doc["runtime_ok"] is True
    assert doc["services"]["web"]["classes"]["critical"]["requests_total"] == 3
    assert public_status(seen, settings)["services"] == {"web": "up", "api": "up"}


def test_fails_static_when_the_runtime_socket_goes_away(haproxy: RealHAProxy) -> None:
    """A pushed admission state stays enforced by HAProxy while the controller is blind."""
    settings = haproxy.settings
    runtime = HAProxyRuntime(settings.haproxy.runtime_socket)
    admission = str(Path(settings.haproxy.map_dir) / ADMISSION_MAP)
    asyncio.run(runtime.set_map(admission, {"web/sheddable": "0"}))
    map_file = Path(admission)
    before = map_file.read_text()
    blind = Controller(settings, HAProxyRuntime(str(Path(admission).parent / "gone.sock"), 0.2))
    state = asyncio.run(blind.tick())
    assert not state.runtime_ok and "gone.sock" in (state.last_error or "")
    assert map_file.read_text() == before  # nothing rewritten
    assert get(haproxy.front_port, "/search")[0] == 503  # still shed: last good state
    assert get(haproxy.front_port, "/payments/x")[0] == 200  # and not closed to everything
