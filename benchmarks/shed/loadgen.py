"""Open-loop HTTP load generator for loopback targets, with many source addresses.

Each :class:`Stream` sends ``rate`` requests per second to one path, on its own pool of
keep-alive connections, each bound to a source address taken in turn from ``sources``
(127.0.0.0/8 gives millions). Requests are scheduled on the clock, not on responses (no
coordinated omission): when every connection is busy and ``max_connections`` is reached, the
request is counted as ``unsent``. Every run is bounded by ``duration`` and ``max_connections``,
and only loopback targets and sources are accepted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import time
from dataclasses import dataclass, field
from typing import cast

import httptools


def loopback_sources(first: str, count: int) -> list[str]:
    """``count`` consecutive IPv4 loopback addresses starting at ``first``."""
    start = ipaddress.IPv4Address(first)
    addresses = [str(start + i) for i in range(count)]
    _require_loopback(addresses)
    return addresses


def _require_loopback(addresses: list[str]) -> None:
    for address in addresses:
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"{address} is not a loopback address: load stays on this machine")


@dataclass
class Stream:
    """One kind of traffic: a path hit at a fixed rate from a set of sources."""

    name: str
    path: str
    rate: float
    sources: list[str]
    max_connections: int = 200
    timeout: float = 2.0
    method: str = "GET"
    host: str = "localhost"


@dataclass
class StreamResult:
    name: str
    sent: int = 0
    ok: int = 0
    shed: int = 0  # 503 or 429 with Retry-After: a clean, fast refusal
    failed: int = 0  # other status, timeout, connection error
    unsent: int = 0  # generator had no free connection (target too slow)
    retry_after_missing: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests

    @property
    def success_ratio(self) -> float:
        attempted = self.sent + self.unsent
        return self.ok / attempted if attempted else 1.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self, duration: float) -> dict[str, float | int | str]:
        return {
            "stream": self.name,
            "offered_rps": round((self.sent + self.unsent) / duration, 1),
            "sent": self.sent,
            "ok": self.ok,
            "shed": self.shed,
            "failed": self.failed,
            "unsent": self.unsent,
            "success_ratio": round(self.success_ratio, 5),
            "p50_ms": round(self.percentile(0.50) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
        }


class _Client(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[tuple[int, bool]] | None = None
        self.retry_after = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self.retry_after = True

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result((self.parser.get_status_code(), self.retry_after))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("closed"))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)

    async def request(self, raw: bytes) -> tuple[int, bool]:
        assert self.transport is not None
        self.retry_after = False
        self.parser = httptools.HttpResponseParser(self)
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.done

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Runner:
    def __init__(self, stream: Stream, host: str, port: int, deadline: float) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self.deadline = deadline
        self.result = StreamResult(stream.name)
        self.idle: list[_Client] = []
        self.open = 0
        self.sources = itertools.cycle(stream.sources)
        self.raw = (
            f"{stream.method} {stream.path} HTTP/1.1\r\nHost: {stream.host}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        self.tasks: set[asyncio.Task[None]] = set()

    async def _connect(self) -> _Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            _Client, self.host, self.port, local_addr=(next(self.sources), 0)
        )
        return client

    async def _one(self) -> None:
        result = self.result
        client = self.idle.pop() if self.idle else None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.stream.timeout):
                if client is None:
                    client = await self._connect()
                status, retry_after = await client.request(self.raw)
        except Exception:  # timeouts, refused connections, and anything unexpected: failed
            result.failed += 1
            if client is not None:
                client.close()
            self.open -= 1
            return
        elapsed = time.perf_counter() - started
        if status == 200:
            result.ok += 1
            result.latencies.append(elapsed)
        elif status in (429, 503) and retry_after:
            result.shed += 1
        else:
            result.failed += 1
            if status in (429, 503):
                result.retry_after_missing += 1
        if client.closed:
            self.open -= 1
        else:
            self.idle.append(client)

    async def run(self) -> StreamResult:
        start = time.perf_counter()
        issued = 0
        while (now := time.perf_counter()) < self.deadline:
            due = int((now - start) * self.stream.rate) - issued
            for _ in range(max(due, 0)):
                issued += 1
                if not self.idle and self.open >= self.stream.max_connections:
                    self.result.unsent += 1
                    continue
                if not self.idle:
                    self.open += 1
                self.result.sent += 1
                task = asyncio.ensure_future(self._one())
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(0.002)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.stream.timeout + 1)
        # Still pending here means no answer within the deadline: count them as failed.
        self.result.failed += sum(1 for task in self.tasks if not task.done())
        for client in self.idle:
            client.close()
        return self.result


async def run_streams(
    host: str, port: int, streams: list[Stream], duration: float, *, max_duration: float = 600.0
) -> dict[str, StreamResult]:
    """Run every stream for ``duration`` seconds against ``host:port`` (loopback only)."""
    _require_loopback([host])
    for stream in streams:
        _require_loopback(stream.sources)
    if not 0 < duration <= max_duration:
        raise ValueError(f"duration must be in (0, {max_duration}] seconds")
    deadline = time.perf_counter() + duration
    runners = [_Runner(s, host, port, deadline) for s in streams]
    results = await asyncio.gather(*(r.run() for r in runners))
    return {r.name: r for r in results}


def main() -> None:
    """``python benchmarks/shed/loadgen.py '<json spec>'`` prints the results as JSON.

    Spec: ``{"host": "127.0.0.1", "port": 8080, "duration": 10, "streams": [{"name": ...,
    "path": ..., "rate": ..., "first_source": "127.1.0.1", "sources": 1000,
    "max_connections": 500, "timeout": 2.0}]}``.
    """
    import json
    import sys

    spec = json.loads(sys.argv[1])
    streams = [
        Stream(
            name=s["name"],
            path=s["path"],
            rate=float(s["rate"]),
            sources=loopback_sources(s.get("first_source", "127.0.0.1"), int(s.get("sources", 1))),
            max_connections=int(s.get("max_connections", 200)),
            timeout=float(s.get("timeout", 2.0)),
            method=s.get("method", "GET"),
        )
        for s in spec["streams"]
    ]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    duration = float(spec["duration"])
    results = asyncio.run(run_streams(spec["host"], int(spec["port"]), streams, duration))
    out = {
        name: {**r.summary(duration), "latencies_ms": [round(x * 1000, 3) for x in r.latencies]}
        for name, r in results.items()
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
