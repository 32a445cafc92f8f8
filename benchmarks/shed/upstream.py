"""An HTTP upstream with bounded capacity: ``capacity`` requests at a time, ``work`` seconds each.

Requests beyond capacity wait in FIFO order; one that waited longer than ``queue_timeout`` gets
503, as an overloaded application server would. Run as
``python benchmarks/shed/upstream.py --port 18081 --capacity 10 --work 0.02``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import cast

import httptools

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nbusy\n"
)


class Upstream:
    """Shared capacity and counters for every connection."""

    def __init__(self, capacity: int, work: float, queue_timeout: float) -> None:
        self.slots = asyncio.Semaphore(capacity)
        self.work = work
        self.queue_timeout = queue_timeout
        self.served = 0
        self.refused = 0

    async def handle(self, path: bytes) -> bytes:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self.slots.acquire()
        except TimeoutError:
            self.refused += 1
            return BUSY
        try:
            if time.monotonic() - started > self.queue_timeout:
                self.refused += 1
                return BUSY
            await asyncio.sleep(self.work)
            self.served += 1
            return OK
        finally:
            self.slots.release()


class _Connection(asyncio.Protocol):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.pending: asyncio.Task[None] | None = None
        self.queue: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        self.queue.append(self.url)
        if self.pending is None:
            self.pending = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        while self.queue:
            url = self.queue.pop(0)
            answer = await self.upstream.handle(url)
            if self.transport is None or self.transport.is_closing():
                break
            self.transport.write(answer)
        self.pending = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, capacity: int, work: float, queue_timeout: float) -> None:
    upstream = Upstream(capacity, work, queue_timeout)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(upstream), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=10)
    parser.add_argument("--work", type=float, default=0.02)
    parser.add_argument("--queue-timeout", type=float, default=2.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, args.capacity, args.work, args.queue_timeout))


if __name__ == "__main__":
    main()
