"""The control loop's own latency probes: timed HTTP GETs straight to an upstream."""

from __future__ import annotations

import asyncio
import time


async def probe(host: str, port: int, path: str, timeout: float) -> float | None:
    """Seconds for one ``GET path`` answered 2xx/3xx on a fresh connection, None on failure."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                    "User-Agent: rempart-shed-probe\r\n\r\n".encode()
                )
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit() or not 200 <= int(parts[1]) < 400:
        return None
    return time.perf_counter() - started


async def probe_many(
    host: str, port: int, path: str, count: int, timeout: float
) -> list[float | None]:
    """``count`` concurrent probes."""
    return list(await asyncio.gather(*(probe(host, port, path, timeout) for _ in range(count))))
