"""A shedding episode for real: the controller against HAProxy logs and reports it, and counts
exactly the requests HAProxy turned away."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rempart.shed.classes import Criticality as C
from rempart.shed.config import LimiterSettings
from rempart.shed.controller import Controller
from rempart.shed.episodes import EpisodeEnded, EpisodeSettings, EpisodeStarted, ShedEvent

from .conftest import RealHAProxy
from .test_haproxy import get

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(90)]


def burst(port: int, count: int) -> list[int]:
    """Page views (the default class, without a per-client limit) from 16 threads."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda _: get(port, "/catalogue")[0], range(count)))


def test_episode_is_logged_journaled_and_counted(
    haproxy: RealHAProxy, caplog: pytest.LogCaptureFixture
) -> None:
    # A tiny capacity (5 % of 2 slots over a ~2 ms RTT): a burst of page views exceeds it.
    settings = dataclasses.replace(
        haproxy.settings,
        limiter=LimiterSettings(
            initial=2.0, min_limit=1.0, max_limit=2.0, utilization=0.05, minrtt_interval=0.0
        ),
        episodes=EpisodeSettings(end_after=0.0),
    )
    controller = Controller(settings)
    events: list[ShedEvent] = []
    controller.listeners.append(events.append)
    caplog.set_level(logging.INFO, logger="rempart.shed")

    async def ticks(n: int) -> None:
        for _ in range(n):
            await controller.tick()

    asyncio.run(ticks(2))
    assert events == []  # idle: nothing to say
    assert set(burst(haproxy.front_port, 300)) == {200}  # admitted while shares are 100 %
    asyncio.run(ticks(1))
    started = [e for e in events if isinstance(e, EpisodeStarted)]
    assert len(started) == 1, events
    assert started[0].service == "web"
    # The burst's class, or the class below it when HAProxy queued (halved first).
    assert started[0].shares and set(started[0].shares) <= {"sheddable_plus", "sheddable"}
    assert started[0].demand_rps["sheddable_plus"] > 100
    assert any("shedding started on web" in r.message for r in caplog.records)

    statuses = burst(haproxy.front_port, 200)
    refused = statuses.count(503)
    assert refused > 0, statuses
    for _ in range(200):  # demand falls to 0 within 1 s; shares recover 10 points a tick
        asyncio.run(ticks(1))
        if any(isinstance(e, EpisodeEnded) for e in events):
            break
        time.sleep(0.05)
    [ended] = [e for e in events if isinstance(e, EpisodeEnded)]
    assert ended.turned_away["sheddable_plus"] == refused  # exactly what the clients were told
    assert ended.turned_away["critical_plus"] == 0
    assert ended.lowest_shares["sheddable_plus"] < 100
    assert controller.state.services["web"].classes[C.SHEDDABLE_PLUS].admitted_pct == 100
    assert any(
        f"{refused} requests turned away (sheddable_plus {refused})" in r.message
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
