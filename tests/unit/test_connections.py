"""Connection limits of the HTTP server, against a real listening HttpApp on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from rempart.connections import ConnectionGuard, ConnectionLimits, automatic_ceiling
from rempart.httpserver import Auth, HttpApp, Request, Response, Router, json_response

PING = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


def _app(**limits: object) -> HttpApp:
    router = Router()
    router.add("GET", "/ping", lambda r: json_response({"ok": True}), auth=Auth.PUBLIC)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.6)
        return json_response({"slow": True})

    router.add("GET", "/slow", slow, auth=Auth.PUBLIC)
    return HttpApp(router, limits=ConnectionLimits(**limits))  # type: ignore[arg-type]


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    """True if the server closes the connection within `within` seconds."""
    try:
        data = await asyncio.wait_for(reader.read(), within)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b"" or (data.startswith(b"HTTP/1.1") and reader.at_eof())


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(PING)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return head


def test_partial_headers_and_silent_connections_are_closed_by_the_header_timeout() -> None:
    async def main() -> None:
        app = _app(header_timeout=0.4, idle_timeout=30)
        port = await app.start("127.0.0.1", 0)
        try:
            r1, w1 = await asyncio.open_connection("127.0.0.1", port)
            w1.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # never finished
            r2, _w2 = await asyncio.open_connection("127.0.0.1", port)  # never says anything
            started = time.monotonic()
            assert await _closed(r1, 3) and await _closed(r2, 3)
            assert time.monotonic() - started < 2.5
            assert app.guard.timed_out["header"] == 2
            assert app.guard.open == 0
        finally:
            await app.stop()

    asyncio.run(main())


def test_idle_keep_alive_is_closed_but_a_slow_handler_is_not() -> None:
    async def main() -> None:
        app = _app(header_timeout=0.3, idle_timeout=0.3)
        port = await app.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await _ask(reader, writer)).startswith(b"HTTP/1.1 200")
            # Busy for twice the timeouts: a request in flight is never timed out.
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            w2.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(r2.readuntil(b"\r\n\r\n"), 3)
            assert head.startswith(b"HTTP/1.1 200")
            assert await _closed(reader, 3)
            assert app.guard.timed_out["idle"] >= 1
        finally:
            await app.stop()

    asyncio.run(main())


def test_per_client_cap_refuses_the_excess_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        app = _app(max_connections_per_client=5, trusted_clients=())
        port = await app.start("127.0.0.1", 0)
        try:
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
            extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
            for reader, _ in extra:
                assert await _closed(reader, 2)
            for reader, writer in held:
                assert (await _ask(reader, writer)).startswith(b"HTTP/1.1 200")
            assert app.guard.refused["per_client"] == 20
            assert app.guard.per_client == {"127.0.0.1": 5}
        finally:
            await app.stop()

    with caplog.at_level(logging.WARNING, "rempart.connections"):
        asyncio.run(main())
    lines = [r for r in caplog.records if "max_connections_per_client" in r.getMessage()]
    assert len(lines) == 1  # rate-limited: one line, not one per refusal
    assert "127.0.0.1" in lines[0].getMessage()


def test_ceiling_keeps_headroom_for_trusted_clients() -> None:
    async def main() -> None:
        app = _app(
            max_connections=20,
            trusted_reserve=5,
            max_connections_per_client=0,
            trusted_clients=("127.0.0.2",),
        )
        port = await app.start("127.0.0.1", 0)
        try:
            flood = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
            await asyncio.sleep(0.1)
            assert app.guard.open == 15  # untrusted stop at ceiling - reserve
            trusted = [
                await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
                for _ in range(5)
            ]
            for reader, writer in trusted:
                assert (await _ask(reader, writer)).startswith(b"HTTP/1.1 200")
            assert app.guard.open == 20
            assert app.guard.refused["ceiling"] == 25
            late = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            assert await _closed(late[0], 2)  # the ceiling holds for trusted clients too
            del flood
        finally:
            await app.stop()

    asyncio.run(main())


def test_ceiling_stays_below_the_descriptor_limit() -> None:
    assert automatic_ceiling(1024) == 896
    assert automatic_ceiling(20000) == 18000
    guard = ConnectionGuard(ConnectionLimits(max_connections=10**9), descriptors=4096)
    assert guard.ceiling < 4096
    assert guard.untrusted_ceiling == guard.ceiling - guard.ceiling // 10


def test_ipv6_clients_are_counted_per_64() -> None:
    guard = ConnectionGuard(ConnectionLimits(), descriptors=4096)
    assert guard.classify("2001:db8::1")[0] == guard.classify("2001:db8::ffff")[0]
    assert guard.classify("::1") == ("::/64", True)
    assert guard.classify("::ffff:127.0.0.1") == ("::ffff:127.0.0.1", True)
    assert guard.classify("192.0.2.1") == ("192.0.2.1", False)


def test_head_answers_like_get_without_a_body() -> None:
    async def main() -> None:
        app = _app()
        port = await app.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\n" + PING)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 11" in head
            # The next bytes are the pipelined GET's answer, not a HEAD body.
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(
                b"HTTP/1.1 200"
            )
            assert await reader.readexactly(11) == b'{"ok":true}'
        finally:
            await app.stop()

    asyncio.run(main())


def test_batched_answers_keep_their_order_before_an_unbatched_close() -> None:
    """Keep-alive answers wait for the pass's write batch; a closing answer is written at once,
    so the batch must go out first or the client would read the answers out of order."""

    async def main() -> None:
        app = _app()
        port = await app.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            closing = b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            writer.write(PING + PING + closing)
            data = await asyncio.wait_for(reader.read(), 2)
            answers = data.split(b"HTTP/1.1 ")[1:]
            assert [a[:3] for a in answers] == [b"200", b"200", b"404"]
            assert b"Connection: close" in answers[2]
        finally:
            await app.stop()

    asyncio.run(main())


def test_answers_to_many_connections_in_one_pass_all_arrive() -> None:
    async def main() -> None:
        app = _app()
        port = await app.start("127.0.0.1", 0)
        try:
            pairs = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
            for round_ in range(3):
                for _, writer in pairs:
                    writer.write(PING)
                heads = await asyncio.gather(*(_read_answer(r) for r, _ in pairs))
                assert all(h.startswith(b"HTTP/1.1 200") for h in heads), round_
        finally:
            await app.stop()

    async def _read_answer(reader: asyncio.StreamReader) -> bytes:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        await reader.readexactly(11)
        return head

    asyncio.run(main())


def test_a_client_that_does_not_read_its_answers_is_not_read_either() -> None:
    """Pipelined requests from a client that does not read: once its output buffer is full the
    server stops reading instead of buffering every answer, and sends them all once the client
    reads."""

    async def main() -> None:
        app = _app()
        port = await app.start("127.0.0.1", 0)
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # a small window
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
            writer.transport.set_write_buffer_limits(high=1 << 26)  # the client keeps sending
            count = 200_000  # 6 MB of requests, 17 MB of answers: more than the kernel holds
            writer.write(PING * count)
            await asyncio.sleep(2)
            (conn,) = app.connections
            assert conn.transport is not None
            buffered = conn.transport.get_write_buffer_size()
            assert buffered < 1 << 20, f"{buffered} bytes of answers buffered"
            answers, tail = 0, b""
            while answers < count:
                data = tail + await asyncio.wait_for(reader.read(1 << 20), 5)
                answers += data.count(b"HTTP/1.1 200 OK")
                tail = data[-16:]
                answers -= tail.count(b"HTTP/1.1 200 OK")
            assert answers == count
        finally:
            await app.stop()

    asyncio.run(main())


def test_new_connections_are_accepted_at_once_while_every_turn_of_the_loop_is_long() -> None:
    """uvloop (libuv) accepts one connection per turn of the loop; under load a turn lasts as
    long as every ready request's decision, so new clients would wait in the kernel's queue.
    The server accepts everything pending at each turn instead."""
    import uvloop

    async def main() -> None:
        router = Router()

        def busy(request: Request) -> Response:
            time.sleep(0.004)  # a turn with 20 ready requests lasts 80 ms
            return json_response({"ok": True})

        router.add("GET", "/busy", busy, auth=Auth.PUBLIC)
        app = HttpApp(router)
        port = await app.start("127.0.0.1", 0)
        stop = asyncio.Event()

        async def client() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while not stop.is_set():
                writer.write(b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(11)
            writer.close()

        clients = [asyncio.ensure_future(client()) for _ in range(20)]
        newcomers: list[socket.socket] = []
        try:
            await asyncio.sleep(0.5)
            for _ in range(100):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))  # in progress: EINPROGRESS
                newcomers.append(sock)
            await asyncio.sleep(1.5)
            assert len(app.connections) >= 120, f"{len(app.connections) - 20} of 100 accepted"
        finally:
            stop.set()
            await asyncio.wait(clients, timeout=2)
            for sock in newcomers:
                sock.close()
            await app.stop()

    uvloop.run(main())
