"""Bad input to the control loop, with real HAProxy: a stats socket that answers garbage or
stalls, the admission map file removed by hand, an upstream whose latency jumps tenfold. The
loop keeps the last shares, logs what happened, and recovers; a slower upstream gets a lower
admitted rate, and a higher one again when it is fast."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks.shed.experiment import _port_open, free_port, wait_for
from rempart.shed.classes import Criticality as C
from rempart.shed.config import LimiterSettings, parse_shed
from rempart.shed.controller import Controller
from rempart.shed.haproxy_config import render
from rempart.shed.maps import ADMISSION_MAP, ensure_maps, read_admission
from rempart.shed.runtime import HAProxyRuntime

from .conftest import UPSTREAM, RealHAProxy, require_haproxy, shed_table
from .test_haproxy import check, get

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(90)]

GARBAGE = b"\x00\xffthis is not HAProxy\n"
BAD_TABLE = b"# table: st_class, type: string, size:1024, used:1\n0xdead: key=web/x nonsense\n\n"


class Relay:
    """A UNIX socket in front of HAProxy's that passes commands through, or answers garbage,
    a table with unreadable lines, or nothing at all (``mode``)."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target = str(path), target
        self.mode = "pass"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_unix_server(self._serve, self.path), self.loop
        ).result(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readline()
            mode = self.mode
            if mode == "stall":
                await asyncio.sleep(30)
            elif mode == "garbage":
                writer.write(GARBAGE)
            elif mode == "bad_table" and request.startswith(b"show table"):
                writer.write(BAD_TABLE)
            else:
                up_reader, up_writer = await asyncio.open_unix_connection(self.target)
                up_writer.write(request)
                await up_writer.drain()
                writer.write(await up_reader.read())
                up_writer.close()
            await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _shutdown(self) -> None:
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def relay(haproxy: RealHAProxy, tmp_path: Path) -> Iterator[Relay]:
    r = Relay(tmp_path / "relay.sock", haproxy.settings.haproxy.runtime_socket)
    yield r
    r.close()


def live_shares(haproxy: RealHAProxy) -> dict[str, int]:
    runtime = HAProxyRuntime(haproxy.settings.haproxy.runtime_socket)
    admission = Path(haproxy.settings.haproxy.map_dir) / ADMISSION_MAP
    text = asyncio.run(runtime.command(f"show map {admission}"))
    return {p[1]: int(p[2]) for p in (line.split() for line in text.splitlines()) if len(p) == 3}


def tick(controller: Controller) -> None:
    asyncio.run(controller.tick())


@pytest.mark.parametrize("mode", ["garbage", "bad_table", "stall"])
def test_a_bad_stats_socket_keeps_the_last_shares_logs_once_and_recovers(
    haproxy: RealHAProxy, relay: Relay, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rempart.shed")
    # No no-load re-measurement, which would hold the shares for its 0.3 s.
    settings = dataclasses.replace(haproxy.settings, limiter=LimiterSettings(minrtt_interval=0.0))
    controller = Controller(settings, HAProxyRuntime(relay.path, timeout=0.3))
    tick(controller)
    web = controller.state.services["web"]
    web.classes[C.SHEDDABLE].admitted_pct = 30  # an overload's shares, pushed by the next tick
    controller._need_full_push = True
    tick(controller)
    pushed = web.shares()
    assert pushed[C.SHEDDABLE] == 40  # idle upstream: recovering 10 points a tick
    assert live_shares(haproxy)["web/sheddable"] == 40

    relay.mode = mode
    started = time.monotonic()
    for _ in range(3):
        tick(controller)
    assert time.monotonic() - started < 3 * 3 * 0.3 + 2  # a stall costs the timeout, no more
    assert controller.state.runtime_ok is False and controller.state.runtime_failures == 3
    assert web.shares() == pushed  # the last shares, in the controller…
    assert live_shares(haproxy)["web/sheddable"] == 40  # …in HAProxy…
    assert read_admission(Path(haproxy.settings.haproxy.map_dir))["web"] == pushed  # …and on disk
    warnings = [r.message for r in caplog.records if "keeps its last admission state" in r.message]
    assert len(warnings) == 1, warnings  # said once, not every tick
    assert get(haproxy.front_port, "/payments/x")[0] == 200  # the data plane never stopped

    relay.mode = "pass"
    tick(controller)
    assert controller.state.runtime_ok is True and controller.state.last_error is None
    assert any("answers again" in r.message for r in caplog.records)
    assert live_shares(haproxy)["web/sheddable"] == 50  # full state pushed again, recovering


def test_a_map_file_removed_by_hand_is_put_back(
    haproxy: RealHAProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rempart.shed")
    binary = require_haproxy()
    map_dir = Path(haproxy.settings.haproxy.map_dir)
    controller = Controller(haproxy.settings)
    tick(controller)
    (map_dir / ADMISSION_MAP).unlink()
    tick(controller)
    assert read_admission(map_dir)["web"] == dict.fromkeys(C, 100)
    assert any("admission.map was removed; rewritten" in r.message for r in caplog.records)
    assert check(binary, haproxy.config).returncode == 0  # a restart would find it

    (map_dir / ADMISSION_MAP).write_text("web/critical_plus 0\n")  # edited by hand
    tick(controller)
    assert read_admission(map_dir)["web"][C.CRITICAL_PLUS] == 100
    assert any("changed by hand" in r.message for r in caplog.records)

    shutil.rmtree(map_dir)
    map_dir.write_text("a file where the directory was")  # the directory cannot be made
    caplog.clear()
    for _ in range(3):
        tick(controller)
    assert controller.state.runtime_ok is True  # HAProxy's live map is still in force
    assert len([r for r in caplog.records if "cannot write" in r.message]) == 1
    map_dir.unlink()
    tick(controller)
    assert read_admission(map_dir)["web"] == dict.fromkeys(C, 100)
    assert any("written again" in r.message for r in caplog.records)


def _upstream(port: int, work: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", str(port), "--capacity", "8",
         "--work", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: _port_open(port), "upstream")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(5)


def test_an_upstream_latency_jump_cuts_the_capacity_and_it_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The upstream's width (8) does not change, its latency does: the concurrency limit stays
    # (it is the width, tests/unit/shed/test_plateau.py), the rate admission hands out falls.
    binary = require_haproxy()
    caplog.set_level(logging.INFO, logger="rempart.shed")
    up, front = free_port(), free_port()
    settings = parse_shed(shed_table(tmp_path, up, front))
    settings = dataclasses.replace(
        settings, limiter=LimiterSettings(initial=8.0, min_limit=2.0, minrtt_interval=0.0)
    )
    ensure_maps(Path(settings.haproxy.map_dir), [s.name for s in settings.services])
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(settings))
    proxy = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL)
    upstream = _upstream(up, 0.005)
    controller = Controller(settings)
    web = controller.state.services["web"]
    try:
        wait_for(lambda: _port_open(front), "haproxy")
        for _ in range(5):
            tick(controller)
        noload, before = web.rtt_noload, web.capacity
        assert noload is not None and noload < 0.04
        assert before is not None

        _stop(upstream)
        upstream = _upstream(up, 0.05)  # ten times slower
        for _ in range(20):
            tick(controller)
        assert web.rtt is not None and web.rtt > 5 * noload
        assert web.capacity is not None and web.capacity < 0.4 * before, (before, web.capacity)
        assert web.limit == 8  # no queue: nothing says the width changed
        low = web.capacity

        _stop(upstream)
        upstream = _upstream(up, 0.005)  # back to normal: under load the capacity grows again
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                get(front, "/payments/x")

        with ThreadPoolExecutor(12) as pool:
            for _ in range(12):
                pool.submit(load)
            try:
                for _ in range(30):
                    tick(controller)
            finally:
                stop.set()
        assert web.rtt is not None and web.rtt < 4 * noload  # loaded, but not ten times
        assert 2 <= web.limit <= 16
        assert web.shares()[C.CRITICAL_PLUS] == 100  # the payments of the load all admitted
        # Under the load the served rate is what 12 Python clients manage; once they stop, the
        # capacity is the fast upstream's again (limit / rtt).
        for _ in range(5):
            tick(controller)
        assert web.capacity is not None and web.capacity > 2.5 * low, (low, web.capacity)
        assert controller.state.runtime_ok
    finally:
        _stop(upstream)
        proxy.terminate()
        proxy.wait(5)
