"""AdmissionMiddleware driven as an ASGI callable, in front of a real bounded application."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.shed.asgi_app import BoundedApp, routes
from rempart.shed.classes import Criticality as C
from rempart.shed.config import LimiterSettings
from rempart.shed.middleware import AdmissionMiddleware, Message, Scope
from rempart.shed.status import shed_status


def scope(path: str, client: str = "10.0.0.1", method: str = "GET") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"host", b"bank.example")],
        "client": (client, 40000),
    }


async def call(app: Any, sc: Scope) -> tuple[int, dict[bytes, bytes]]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(sc, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return int(start["status"]), dict(start.get("headers", []))


def middleware(app: Any, **limiter: Any) -> AdmissionMiddleware:
    settings = LimiterSettings(**{"initial": 4, "min_limit": 1, "max_limit": 50, **limiter})
    return AdmissionMiddleware(app, routes=routes(), limiter=settings, retry_after=7)


def test_sheddable_refused_with_retry_after_while_critical_waits_for_a_slot() -> None:
    async def scenario() -> tuple[list[int], list[int], AdmissionMiddleware]:
        mw = middleware(BoundedApp(capacity=4, work=0.05), minrtt_interval=0)
        search = [call(mw, scope("/search", f"10.1.0.{i}")) for i in range(20)]
        login = [call(mw, scope("/login", f"10.2.0.{i}")) for i in range(6)]
        results = await asyncio.gather(*search, *login)
        return [s for s, _ in results[:20]], [s for s, _ in results[20:]], mw

    search, login, mw = asyncio.run(scenario())
    assert login == [200] * 6  # beyond the limit of 4, critical requests queued and got served
    assert search.count(503) >= 17  # sheddable may fill 75 % of the limit (3 slots)
    assert mw.state.services["app"].classes[C.SHEDDABLE].shed_total == search.count(503)
    assert mw.state.services["app"].classes[C.CRITICAL].shed_total == 0


def test_refusal_is_a_503_with_retry_after_and_the_class() -> None:
    async def scenario() -> tuple[int, dict[bytes, bytes]]:
        mw = middleware(BoundedApp(capacity=1, work=0.05), initial=1, minrtt_interval=0)
        first = asyncio.ensure_future(call(mw, scope("/pages/a")))
        await asyncio.sleep(0.01)
        answer = await call(mw, scope("/search", "10.9.9.9"))
        await first
        return answer

    status, headers = asyncio.run(scenario())
    assert status == 503
    assert headers[b"retry-after"] == b"7"
    assert headers[b"x-rempart-shed"] == b"sheddable"


def test_non_http_scopes_pass_through() -> None:
    async def scenario() -> list[Message]:
        mw = middleware(BoundedApp(capacity=1, work=0.01))
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[Message] = []

        async def receive() -> Message:
            return inbox.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        await mw({"type": "lifespan"}, receive, send)
        return sent

    assert [m["type"] for m in asyncio.run(scenario())] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_fair_share_per_client_key() -> None:
    async def scenario() -> tuple[list[int], int]:
        mw = middleware(BoundedApp(capacity=8, work=0.05), initial=8, minrtt_interval=0)
        greedy = [call(mw, scope("/pages/x", "10.0.0.66")) for _ in range(8)]
        waiting = asyncio.gather(*greedy)
        await asyncio.sleep(0.01)  # the greedy client holds its share of the busy service
        other, _ = await call(mw, scope("/pages/y", "10.0.0.77"))
        return [s for s, _ in await waiting], other

    greedy, other = asyncio.run(scenario())
    assert greedy.count(200) < 8  # one key cannot take the whole limit once half of it is busy
    assert other == 200  # another client still gets in


def test_limit_adapts_to_the_application_and_critical_keeps_working() -> None:
    """A bounded app (capacity 5): the limit starts at 40 and comes down under a flood."""

    async def scenario() -> tuple[AdmissionMiddleware, list[int]]:
        app = BoundedApp(capacity=5, work=0.02, queue_timeout=5.0)
        mw = middleware(app, initial=40, tolerance=1.1, minrtt_interval=1.0)
        critical: list[int] = []
        stop = asyncio.get_running_loop().time() + 4.0
        tasks: set[asyncio.Task[Any]] = set()

        async def critical_client(n: int) -> None:
            while asyncio.get_running_loop().time() < stop:
                status, _ = await call(mw, scope("/payments/p", f"10.3.0.{n}"))
                critical.append(status)
                await asyncio.sleep(0.05)

        clients = [asyncio.ensure_future(critical_client(n)) for n in range(3)]
        i = 0
        while asyncio.get_running_loop().time() < stop:  # ~10x capacity (250 req/s) of search
            for _ in range(25):
                i += 1
                task = asyncio.ensure_future(call(mw, scope("/search", f"10.4.{i % 250}.1")))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.01)
        await asyncio.gather(*clients, *tasks)
        return mw, critical

    mw, critical = asyncio.run(scenario())
    assert critical and critical.count(200) == len(critical)
    assert mw.limiter.measurements >= 2
    assert mw.limiter.rtt_noload is not None and mw.limiter.rtt_noload < 0.03
    assert mw.limiter.limit < 15, mw.limiter.limit  # near capacity 5 (fixed point ~6.5), not 40
    doc = shed_status(mw.state)["services"]["app"]
    assert doc["classes"]["sheddable"]["shed_total"] > 0
    assert doc["classes"]["critical_plus"]["shed_total"] == 0
