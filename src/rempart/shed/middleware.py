"""``AdmissionMiddleware``: admission control for a Python ASGI service without a proxy in front.

Pure ASGI, no framework. Per HTTP request: classify (host, path, method) into a criticality
class; for sheddable classes, reject early with the client-side throttling probability of that
client key (``max(0, (requests - 2 accepts) / (requests + 1))``); enforce a fair share of the
limit per client key once the service is half busy; admit while in-flight requests stay under the
class's fraction of the adaptive concurrency limit. Critical classes wait (in priority order, at
most ``queue_timeout``) for a free slot instead of being refused at once; every refusal is a 503
with ``Retry-After``. The limit follows the gradient of the application's own response time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import statistics
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from rempart.shed.classes import CLASSES, Criticality
from rempart.shed.classify import Classifier
from rempart.shed.config import LimiterSettings, Route
from rempart.shed.limiter import GradientLimiter
from rempart.shed.state import ControllerState, ServiceState
from rempart.shed.throttle import AdaptiveThrottle

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Share of the limit a class may fill; critical classes may also wait for a slot.
CLASS_FRACTION = {
    Criticality.CRITICAL_PLUS: 1.0,
    Criticality.CRITICAL: 1.0,
    Criticality.SHEDDABLE_PLUS: 0.9,
    Criticality.SHEDDABLE: 0.75,
}
WAITING_CLASSES = (Criticality.CRITICAL_PLUS, Criticality.CRITICAL)
MAX_CLIENT_KEYS = 10_000


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


class AdmissionMiddleware:
    """Wrap ``app``; ``state`` (a :class:`ControllerState`) feeds the status and metrics helpers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[Route] = (),
        default_class: Criticality = Criticality.SHEDDABLE_PLUS,
        limiter: LimiterSettings | None = None,
        retry_after: int = 5,
        queue_timeout: float = 1.0,
        update_interval: float = 0.1,
        client_key: Callable[[Scope], str] = client_address,
        service: str = "app",
    ) -> None:
        self.app = app
        self.classifier = Classifier(routes, default_class, service)
        self.limiter = GradientLimiter(limiter or LimiterSettings())
        self.retry_after = str(retry_after).encode()
        self.queue_timeout = queue_timeout
        self.update_interval = update_interval
        self.client_key = client_key
        self.service = ServiceState(service, limit=self.limiter.limit)
        self.state = ControllerState(services={service: self.service})
        self.inflight = 0
        self.critical_inflight = 0
        self.per_client: dict[str, int] = {}
        self.throttles: OrderedDict[str, AdaptiveThrottle] = OrderedDict()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._samples: list[float] = []
        self._errors = 0
        self._window_start = time.monotonic()
        self._window_requests = dict.fromkeys(CLASSES, 0)
        self._window_shed = dict.fromkeys(CLASSES, 0)

    # -- admission -----------------------------------------------------------------------------
    def _throttle(self, key: str) -> AdaptiveThrottle:
        throttle = self.throttles.get(key)
        if throttle is None:
            throttle = self.throttles[key] = AdaptiveThrottle(window=10.0)
            if len(self.throttles) > MAX_CLIENT_KEYS:
                self.throttles.popitem(last=False)
        else:
            self.throttles.move_to_end(key)
        return throttle

    def _limit(self) -> float:
        """The limit now; while the no-load RTT is re-measured, pinned low (critical kept)."""
        return self.limiter.concurrency(reserve=self.critical_inflight + 1)

    def _fair_share_exceeded(self, key: str) -> bool:
        limit = self._limit()
        if self.inflight < limit / 2:
            return False
        active = max(1, len(self.per_client))
        return self.per_client.get(key, 0) >= max(1.0, limit / active)

    def _has_room(self, cls: Criticality) -> bool:
        return self.inflight < self._limit() * CLASS_FRACTION[cls]

    async def _admit(self, cls: Criticality, key: str, now: float) -> bool:
        """True with a slot taken (``inflight`` counted), False to refuse."""
        if cls not in WAITING_CLASSES and self._throttle(key).should_reject(now):
            return False
        if self._fair_share_exceeded(key):
            return False
        if self._has_room(cls) and not any(p <= cls for p, _, _ in self._waiters):
            self.inflight += 1
            return True
        if cls not in WAITING_CLASSES:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (int(cls), next(self._order), waiter)
        heapq.heappush(self._waiters, entry)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout)
            return True
        except TimeoutError:
            if entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            return waiter.done() and not waiter.cancelled()

    def _wake(self) -> None:
        while self._waiters and self._has_room(Criticality(self._waiters[0][0])):
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)
                self.inflight += 1  # the slot is handed over before the waiter runs
                return

    # -- measurement ---------------------------------------------------------------------------
    def _record(self, rtt: float, error: bool, now: float) -> None:
        self._samples.append(rtt)
        self._errors += error
        elapsed = now - self._window_start
        if elapsed < self.update_interval or not self._samples:
            return
        samples, self._samples = self._samples, []
        error_ratio, self._errors = self._errors / len(samples), 0
        self.limiter.update(
            statistics.median(samples),
            self.inflight,
            rtt_min=min(samples),
            now=now,
            error_ratio=error_ratio,
        )
        svc = self.service
        svc.limit, svc.rtt, svc.rtt_noload = (
            self.limiter.limit,
            self.limiter.last_rtt,
            self.limiter.rtt_noload,
        )
        svc.gradient, svc.error_ratio, svc.inflight = (
            self.limiter.last_gradient,
            error_ratio,
            self.inflight,
        )
        svc.queued = len(self._waiters)
        svc.overloaded = svc.gradient < 1.0 or bool(self._waiters)
        svc.measuring = self.limiter.measuring
        for cls in CLASSES:
            cs, req, shed = svc.classes[cls], self._window_requests[cls], self._window_shed[cls]
            cs.demand_rps, cs.shed_rps = req / elapsed, shed / elapsed
            cs.admitted_pct = 100 if req == 0 else round(100 * (req - shed) / req)
            self._window_requests[cls] = self._window_shed[cls] = 0
        self._window_start = now
        self.state.ticks += 1
        self.state.updated_at = time.time()

    # -- ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
                break
        route = self.classifier.classify(host, scope.get("path", "/"), scope.get("method", "GET"))
        cls = route.criticality
        key = self.client_key(scope)
        now = time.monotonic()
        self._window_requests[cls] += 1
        self.service.classes[cls].requests_total += 1
        if not await self._admit(cls, key, now):
            self._window_shed[cls] += 1
            self.service.classes[cls].shed_total += 1
            await self._refuse(send, cls)
            return
        self.per_client[key] = self.per_client.get(key, 0) + 1
        critical = cls in WAITING_CLASSES
        self.critical_inflight += critical
        status = 500
        started = time.monotonic()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            done = time.monotonic()
            self.inflight -= 1
            self.critical_inflight -= critical
            left = self.per_client[key] - 1
            if left:
                self.per_client[key] = left
            else:
                del self.per_client[key]
            if cls not in WAITING_CLASSES:
                throttle = self._throttle(key)
                if status < 500:
                    throttle.accepted(done)
            self._record(done - started, status >= 500, done)
            self._wake()

    async def _refuse(self, send: Send, cls: Criticality) -> None:
        body = b"overloaded: this request was shed, retry later\n"
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"retry-after", self.retry_after),
                    (b"content-type", b"text/plain"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-rempart-shed", cls.label.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
