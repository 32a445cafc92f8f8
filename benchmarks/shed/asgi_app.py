"""An ASGI application with bounded capacity, optionally behind ``AdmissionMiddleware``.

``BoundedApp`` serves ``capacity`` requests at a time, ``work`` seconds each; the others wait in
FIFO order and get 503 after ``queue_timeout``, as an overloaded Python service would. Run on
loopback with uvicorn::

    python benchmarks/shed/asgi_app.py --port 18082 --capacity 10 --work 0.04 [--no-shed]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
from typing import Any

from rempart.shed.config import LimiterSettings, Route, parse_shed
from rempart.shed.middleware import AdmissionMiddleware, Receive, Scope, Send
from rempart.shed.status import shed_status

ROUTES: list[dict[str, Any]] = [
    {"name": "2fa", "class": "critical_plus", "path": "/2fa/*"},
    {"name": "payments", "class": "critical_plus", "path": "/payments/*"},
    {"name": "login", "class": "critical", "path": "/login"},
    {"name": "search", "class": "sheddable", "path": "/search*"},
    {"name": "pages", "class": "sheddable_plus", "path": "/pages/*"},
]


def routes() -> tuple[Route, ...]:
    """The issue's example routes, validated by the same parser as the TOML config."""
    return parse_shed({"routes": ROUTES}).routes


class BoundedApp:
    """``capacity`` concurrent requests of ``work`` seconds; a FIFO queue in front of them."""

    def __init__(self, capacity: int, work: float, queue_timeout: float = 5.0) -> None:
        self.slots = asyncio.Semaphore(capacity)
        self.work = work
        self.queue_timeout = queue_timeout
        self.served = 0
        self.busy = 0
        self.active = 0
        self.peak = 0

    async def _answer(self, send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self.slots.acquire()
        except TimeoutError:
            self.busy += 1
            await self._answer(send, 503, b"busy\n")
            return
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.work)
            self.served += 1
        finally:
            self.active -= 1
            self.slots.release()
        await self._answer(send, 200, b"ok\n")


STATUS_PATH = "/_shed/status"


class WithStatus:
    """Serves ``GET /_shed/status`` (the middleware's :func:`shed_status` document, or ``{}``
    without shedding) beside ``app``; every other request goes to ``app``."""

    def __init__(self, app: Any, middleware: AdmissionMiddleware | None) -> None:
        self.app = app
        self.middleware = middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != STATUS_PATH:
            await self.app(scope, receive, send)
            return
        doc = shed_status(self.middleware.state) if self.middleware else {}
        if self.middleware is not None:
            doc["minrtt_measurements"] = self.middleware.limiter.measurements
        body = json.dumps(doc).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def build(
    capacity: int, work: float, *, shed: bool, limiter: LimiterSettings | None = None
) -> WithStatus:
    """The bounded app, wrapped in the middleware when ``shed``, with the status route."""
    app = BoundedApp(capacity, work)
    if not shed:
        return WithStatus(app, None)
    middleware = AdmissionMiddleware(
        app,
        routes=routes(),
        limiter=limiter
        or LimiterSettings(
            initial=capacity, min_limit=2, max_limit=200, tolerance=1.1, minrtt_interval=5.0
        ),
        retry_after=2,
        queue_timeout=1.0,
    )
    return WithStatus(middleware, middleware)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=10)
    parser.add_argument("--work", type=float, default=0.04)
    parser.add_argument("--no-shed", action="store_true")
    args = parser.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        raise SystemExit("the test application listens on loopback only")
    uvicorn.run(
        build(args.capacity, args.work, shed=not args.no_shed),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
        limit_concurrency=None,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
