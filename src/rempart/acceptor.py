"""Listening sockets and their accept loop, for the servers on the event loop.

Why not `loop.create_server`: libuv (under uvloop) accepts one connection per turn of the
event loop (libuv#3696), and under load a turn lasts as long as the decisions of every
connection that had a request ready: with a thousand busy connections, tens of milliseconds.
New connections then wait in the kernel's queue at a few dozen a second, and a client that
connects during a flood times out before it is even accepted. Here every readiness of a
listening socket accepts what is pending (up to `ACCEPTS_PER_WAKE`), so the connection guard
sees each new connection at once and can admit it or refuse it, and the kernel's queue stays
short.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

ACCEPTS_PER_WAKE = 512
# Out of descriptors or memory: stop accepting for a moment instead of spinning on a listening
# socket that stays readable (the connection guard keeps well below the limit, so this is rare).
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
RETRY_AFTER_S = 0.5


def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address of `host` (as
    `loop.create_server` binds them: SO_REUSEADDR, IPv6 sockets IPv6-only). With port 0, the
    port the first one got is used for the others."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Acceptor:
    """Accepts the connections of some listening sockets and hands each to the loop's
    transport machinery with `protocol_factory` (`loop.connect_accepted_socket`)."""

    def __init__(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        self.protocol_factory = protocol_factory
        self.sockets: list[socket.socket] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.accepted = 0
        self._adopting: set[asyncio.Task[None]] = set()

    def start(self, sockets: list[socket.socket]) -> None:
        self.loop = asyncio.get_running_loop()
        self.sockets = sockets
        for sock in sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        for sock in self.sockets:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets = []

    def _accept(self, listener: socket.socket) -> None:
        loop = self.loop
        assert loop is not None
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    log.warning("accept failed: %s", exc)
                    return
                log.error("accept failed: %s; accepting again in %gs", exc, RETRY_AFTER_S)
                loop.remove_reader(listener.fileno())
                loop.call_later(RETRY_AFTER_S, self._resume, listener)
                return
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.accepted += 1
            task = loop.create_task(self._adopt(conn))
            self._adopting.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._adopting.discard)

    def _resume(self, listener: socket.socket) -> None:
        if self.loop is not None and listener in self.sockets and listener.fileno() >= 0:
            self.loop.add_reader(listener.fileno(), self._accept, listener)

    async def _adopt(self, conn: socket.socket) -> None:
        assert self.loop is not None
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory, sock=conn)
        except OSError:
            conn.close()  # reset before its transport was made
