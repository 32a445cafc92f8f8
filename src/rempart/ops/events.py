"""Server-sent events for the dashboard: one ticker per service, fanned out to every client.

The ticker wakes once a second, asks `LiveStats.tick()` for the new history point and, only when
a dashboard is connected, builds one JSON message shared by all clients. A slow client's queue
drops its oldest message instead of growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from rempart.ops.live import LiveStats

log = logging.getLogger(__name__)
QUEUE = 8


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Hub:
    def __init__(
        self, live: LiveStats, extras: Callable[[], dict[str, Any]], interval: float = 1.0
    ) -> None:
        self.live = live
        self.extras = extras
        self.interval = interval
        self.clients: set[asyncio.Queue[bytes]] = set()
        self.task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                point = self.live.tick()
                if not self.clients:
                    continue
                message = sse("tick", {"point": point, **self.extras()})
            except Exception:  # the ticker must survive any bad figure
                log.exception("dashboard ticker failed")
                continue
            for queue in self.clients:
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(message)

    async def stream(self, alive: Callable[[], bool]) -> AsyncIterator[bytes]:
        """The event stream of one client, until it leaves or its session ends."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE)
        self.clients.add(queue)
        try:
            yield b"retry: 3000\n\n"
            while True:
                message = await queue.get()
                if not alive():
                    yield sse("expired", {"error": "session expired: sign in again"})
                    return
                yield message
        finally:
            self.clients.discard(queue)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
