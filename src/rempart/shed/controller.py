"""The control loop: watch each upstream, adapt its concurrency limit, push admission to HAProxy.

Every ``interval`` it reads ``show stat`` and the ``st_class``/``st_shed`` tables over the
runtime socket. From the server's response counters it takes the requests the upstream served
since the last tick; while HAProxy queues for the server (the upstream is at its limit) these
feed the service's :class:`~rempart.shed.plateau.PlateauLimiter`, which moves the concurrency
limit to where more concurrency stops adding served requests (the upstream's width), and its
:class:`~rempart.shed.admit_rate.AdmittedRate`, which hands out the rate the upstream serves,
corrected to keep a short queue in HAProxy (where requests wait by criticality). Each class's
share fills that rate by criticality (:func:`~rempart.shed.admit_rate.exact_shares`, dithered to
whole percents, cuts at once, rises of 10 points a tick at most). While HAProxy does not queue,
the loop probes each upstream itself and the capacity is ``limit / rtt`` (Little's law). Changes
are applied live: ``set maxconn server`` and ``set map``, without reload; the map file is
rewritten too so that a restart resumes the last state.

After each successful tick every service's :class:`~rempart.shed.episodes.EpisodeTracker` turns
the new state into shedding-episode events (start, summary, end, limit moves); the loop logs each
one and hands it to ``listeners`` (the server journals them).

If the runtime socket cannot be used, nothing is changed: HAProxy keeps enforcing the last good
limit and maps (fails static), the state says ``runtime_ok = False`` and the next successful
tick pushes the full state again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from rempart.shed.admission import settle_shares
from rempart.shed.admit_rate import AdmittedRate, ShareDither, exact_shares
from rempart.shed.classes import CLASSES
from rempart.shed.config import ShedSettings
from rempart.shed.episodes import EpisodeTracker, LimitMoved, ShedEvent, describe
from rempart.shed.haproxy_config import CLASS_TABLE, SERVER, SHED_TABLE, backend_name
from rempart.shed.maps import (
    ADMISSION_MAP,
    map_key,
    read_admission,
    reset_admission,
    write_admission,
)
from rempart.shed.plateau import PlateauLimiter
from rempart.shed.probe import probe_many
from rempart.shed.runtime import HAProxyRuntime, RuntimeUnavailable, TableEntry
from rempart.shed.state import ControllerState, ServiceState

log = logging.getLogger("rempart.shed")

PROBES_PER_TICK = 3
NOLOAD_WINDOW = 300  # probe rounds the no-load RTT is the minimum of
SERVED = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx")  # responses that are work done


def _int(row: dict[str, str], name: str) -> int:
    value = row.get(name) or "0"
    return int(value) if value.isdigit() else 0


class Controller:
    """Adaptive admission for every service of ``settings`` behind one HAProxy."""

    def __init__(self, settings: ShedSettings, runtime: HAProxyRuntime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or HAProxyRuntime(settings.haproxy.runtime_socket)
        self.map_file = str(Path(settings.haproxy.map_dir) / ADMISSION_MAP)
        lim = settings.limiter
        self.limiters = {s.name: PlateauLimiter(lim) for s in settings.services}
        self.rates = {
            s.name: AdmittedRate(lim.queue_delay, lim.utilization) for s in settings.services
        }
        self.dithers = {s.name: ShareDither() for s in settings.services}
        self.state = ControllerState(
            services={
                s.name: ServiceState(s.name, limit=settings.limiter.initial)
                for s in settings.services
            }
        )
        self.episodes = {
            s.name: EpisodeTracker(s.name, settings.episodes, settings.limiter.initial)
            for s in settings.services
        }
        # Called with every episode event, on the loop (they must not block).
        self.listeners: list[Callable[[ShedEvent], None]] = []
        self._counters: dict[str, tuple[int, int]] = {}  # service → (responses, errors)
        self._served: dict[str, tuple[int, float]] = {}  # service → (responses served, when)
        self._minima: dict[str, deque[float]] = {
            s.name: deque(maxlen=NOLOAD_WINDOW) for s in settings.services
        }
        self._saturated: set[str] = set()  # services HAProxy queued for at the last tick
        self._unprobed: set[str] = set()  # services whose upstream placeholder is unset here
        self._map_error: str | None = None  # the last failure to write admission.map
        self._last_tick = time.monotonic()
        self._need_full_push = True

    async def _sample_rtt(self, name: str) -> list[float]:
        service = self.settings.service(name)
        if not service.probe_path or name in self._saturated:
            # While HAProxy queues, the served rate is the measure; a probe would only take
            # one of the upstream's slots from the requests waiting for it.
            return []
        endpoint = service.endpoint()
        if endpoint is None:
            if name not in self._unprobed:
                self._unprobed.add(name)
                log.warning(
                    "shed: upstream %s of %s does not expand in Rempart's environment; "
                    "its latency comes from HAProxy's rtime only",
                    service.address,
                    name,
                )
            return []
        timeout = max(1.0, self.settings.haproxy.queue_timeout)
        found = await probe_many(*endpoint, service.probe_path, PROBES_PER_TICK, timeout)
        return [r for r in found if r is not None]

    def _error_ratio(self, name: str, server: dict[str, str]) -> float:
        responses = _int(server, "stot")
        errors = _int(server, "hrsp_5xx") + _int(server, "eresp") + _int(server, "econ")
        before = self._counters.get(name)
        self._counters[name] = (responses, errors)
        if before is None or responses <= before[0]:
            return 0.0
        return max(0.0, errors - before[1]) / (responses - before[0])

    async def tick(self) -> ControllerState:
        """One observation and decision; never raises for an unreachable runtime socket."""
        self._last_tick = time.monotonic()
        probes = {
            s.name: asyncio.ensure_future(self._sample_rtt(s.name)) for s in self.settings.services
        }
        try:
            rows = await self.runtime.show_stat()
            read_at = time.monotonic()
            demand = await self.runtime.show_table(CLASS_TABLE)
            shed = await self.runtime.show_table(SHED_TABLE)
        except RuntimeUnavailable as exc:
            await asyncio.gather(*probes.values())
            self._unreachable(exc)
            return self.state
        servers = {r["pxname"]: r for r in rows if r.get("svname") == SERVER}
        backends = {r["pxname"]: r for r in rows if r.get("svname") == "BACKEND"}
        absent = [
            backend_name(s.name)
            for s in self.settings.services
            if backend_name(s.name) not in servers
        ]
        if absent:
            await asyncio.gather(*probes.values())
            self._unreachable(
                RuntimeUnavailable(
                    f"HAProxy has no server {absent[0]}/{SERVER}: its configuration was not "
                    "generated from this [shed] table"
                )
            )
            return self.state
        decisions: dict[str, tuple[int, dict[str, str]]] = {}
        for service in self.settings.services:
            rtts = await probes[service.name]
            server = servers[backend_name(service.name)]
            backend = backends.get(backend_name(service.name), {})
            decisions[service.name] = self._decide(
                service.name, rtts, server, backend, demand, shed, read_at
            )
        try:
            await self._apply(decisions)
        except RuntimeUnavailable as exc:
            self._unreachable(exc)
            return self.state
        if not self.state.runtime_ok:
            log.warning("shed: HAProxy runtime socket answers again; full admission state pushed")
        self.state.runtime_ok = True
        self.state.last_error = None
        self.state.ticks += 1
        self.state.updated_at = time.time()
        for name, tracker in self.episodes.items():
            for event in tracker.observe(self.state.services[name], self.state.updated_at):
                self._emit(event)
        return self.state

    def _emit(self, event: ShedEvent) -> None:
        level = logging.INFO if isinstance(event, LimitMoved) else logging.WARNING
        log.log(level, "%s", describe(event))
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a failing consumer must not stop admission control
                log.exception("shed: episode listener failed on %s", type(event).__name__)

    def _decide(
        self,
        name: str,
        rtts: list[float],
        server: dict[str, str],
        backend: dict[str, str],
        demand: dict[str, TableEntry],
        shed: dict[str, TableEntry],
        read_at: float,
    ) -> tuple[int, dict[str, str]]:
        state = self.state.services[name]
        limiter = self.limiters[name]
        state.inflight = _int(server, "scur")
        state.queued = _int(backend, "qcur") + _int(server, "qcur")
        state.error_ratio = self._error_ratio(name, server)
        saturated = state.queued > 0
        if saturated:
            self._saturated.add(name)
        else:
            self._saturated.discard(name)
        served, seconds = self._served_since(name, server, read_at)
        rtime = _int(server, "rtime") / 1000.0
        self._observe_rtt(state, rtts, rtime)
        limiter.observe(served, seconds, saturated=saturated, error_ratio=state.error_ratio)
        state.limit = float(limiter.limit)
        estimate = state.limit / state.rtt if state.rtt else None
        rate = self.rates[name].update(
            served, seconds, queued=state.queued, saturated=saturated, estimate=estimate
        )
        state.capacity = rate if (saturated or estimate is not None) else None
        for cls in CLASSES:
            key = map_key(name, cls)
            cs = state.classes[cls]
            entry, shed_entry = demand.get(key), shed.get(key)
            cs.demand_rps = float(entry.rate) if entry else 0.0
            cs.requests_total = entry.count if entry else 0
            cs.shed_rps = float(shed_entry.rate) if shed_entry else 0.0
            cs.shed_total = shed_entry.count if shed_entry else 0
        state.measuring = False
        state.overloaded = saturated
        demands = {c: s.demand_rps for c, s in state.classes.items()}
        if state.capacity is None:
            exact = {c: 100.0 for c in CLASSES}  # nothing known yet: admit everything
        else:
            exact = exact_shares(rate, demands, protected=self.rates[name].capacity)
        shares = settle_shares(self.dithers[name].next(exact), state.shares())
        changed = {
            map_key(name, c): str(pct)
            for c, pct in shares.items()
            if self._need_full_push or pct != state.classes[c].admitted_pct
        }
        for cls, pct in shares.items():
            state.classes[cls].admitted_pct = pct
        return max(1, limiter.limit), changed

    def _served_since(self, name: str, server: dict[str, str], now: float) -> tuple[float, float]:
        """Responses the upstream served since the last tick and the seconds between the two
        reads; (-1, 0) on the first read, after a gap of more than five periods (the socket
        failed, the loop was stopped) or after HAProxy's counters went back (a restart)."""
        count = sum(_int(server, c) for c in SERVED)
        before = self._served.get(name)
        self._served[name] = (count, now)
        stale = before is None or now - before[1] > 5 * max(self.settings.interval, 0.1)
        if before is None or stale or count < before[0] or now <= before[1]:
            return -1.0, 0.0
        return float(count - before[0]), now - before[1]

    def _observe_rtt(self, state: ServiceState, rtts: list[float], rtime: float) -> None:
        """Latest latency (probes' median, else HAProxy's ``rtime``) and the no-load RTT, the
        minimum over the last probe rounds (for status and metrics)."""
        minima = self._minima[state.name]
        if rtts:
            state.rtt = statistics.median(rtts)
            minima.append(min(rtts))
        elif rtime > 0:
            state.rtt = rtime
        if minima:
            state.rtt_noload = min(minima)
        if state.rtt and state.rtt_noload:
            state.gradient = min(1.0, state.rtt_noload / state.rtt)

    async def _apply(self, decisions: dict[str, tuple[int, dict[str, str]]]) -> None:
        changed: dict[str, str] = {}
        for name, (limit, values) in decisions.items():
            await self.runtime.set_maxconn(backend_name(name), SERVER, max(1, limit))
            changed.update(values)
        if changed:
            await self.runtime.set_map(self.map_file, changed)
        self._need_full_push = False
        self._write_map_file(rewrite=bool(changed))

    def _write_map_file(self, rewrite: bool) -> None:
        """Keep ``admission.map`` equal to the shares HAProxy enforces, so that a restarted
        HAProxy starts from them. A file removed or edited by hand is put back (and said so);
        a failed write is logged once and retried next tick, HAProxy's live map is unaffected."""
        map_dir = Path(self.settings.haproxy.map_dir)
        wanted = {n: s.shares() for n, s in self.state.services.items()}
        if not rewrite:
            try:
                stored = read_admission(map_dir)
            except (OSError, ValueError):
                stored = {}
            if stored == wanted:
                return
            if self._map_error is None:
                what = "changed by hand" if Path(self.map_file).exists() else "removed"
                log.warning(
                    "shed: %s was %s; rewritten with the shares in force", self.map_file, what
                )
        try:
            map_dir.mkdir(parents=True, exist_ok=True)
            write_admission(map_dir, wanted)
        except OSError as exc:
            if self._map_error is None:
                log.warning(
                    "shed: cannot write %s: %s; HAProxy keeps its live map", self.map_file, exc
                )
            self._map_error = str(exc)
            return
        if self._map_error is not None:
            log.warning("shed: %s written again", self.map_file)
        self._map_error = None

    def _unreachable(self, exc: Exception, logged: bool = False) -> None:
        if self.state.runtime_ok and not logged:
            log.warning("shed: %s; HAProxy keeps its last admission state", exc)
        self.state.runtime_ok = False
        self.state.last_error = str(exc)
        self.state.runtime_failures += 1
        self._need_full_push = True

    def reset_admission(self) -> None:
        """Start from every class admitted: the map file now, HAProxy at the first tick (which
        pushes the whole state), not the shares a previous run left behind."""
        for state in self.state.services.values():
            for cls in state.classes.values():
                cls.admitted_pct = 100
        self._need_full_push = True
        try:
            reset_admission(Path(self.settings.haproxy.map_dir), self.state.services)
        except OSError as exc:
            log.warning("shed: cannot reset %s: %s", self.map_file, exc)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Tick every ``interval`` until ``stop`` is set."""
        stop = stop or asyncio.Event()
        self.reset_admission()
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.tick()
            except Exception as exc:  # a bug or an answer nobody foresaw: keep HAProxy's state
                log.exception("shed: control loop tick failed; HAProxy keeps its last state")
                self._unreachable(exc, logged=True)
            delay = max(0.0, self.settings.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
