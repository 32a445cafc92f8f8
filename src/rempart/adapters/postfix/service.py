"""The policy service: asyncio listeners (TCP and/or a UNIX socket) started and stopped with
`rempart serve`, one task per Postfix connection, several requests per connection.

Every answer is computed on the event loop from memory (`Decider`); refusals go to the journal
(batched, off the loop) and every outcome to plain counters read by `/metrics`. A request that
cannot be judged is answered DEFER_IF_PERMIT; one that breaks the size limits is answered so and
its connection closed; a client that stalls is disconnected. Nothing a client sends can raise
out of a connection's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rempart.adapters.postfix.decide import Action, Answer, Decider, bad_request
from rempart.adapters.postfix.protocol import BadRequest, Limits, Timeout, read_request
from rempart.adapters.postfix.settings import PostfixSettings

log = logging.getLogger(__name__)

Record = Callable[[str, float, dict[str, Any]], None]
"""Journal a record (kind, time, data) that does not pass through the engine, batched."""
JOURNAL_KIND = "postfix_refusal"


class ListenError(Exception):
    """A listener cannot be set up; the message names it and says why."""


class PolicyCounters:
    """Plain counts kept by the service and read by `/metrics` (`metrics.PostfixCollector`)."""

    __slots__ = ("answers", "connections", "open", "problems", "refusals", "refused_connections")

    def __init__(self) -> None:
        self.answers: dict[str, int] = dict.fromkeys(Action, 0)
        self.refusals: dict[str, int] = {}  # by reason code
        # Requests that could not be judged, and connections ended by a limit, by kind.
        self.problems: dict[str, int] = dict.fromkeys(
            ("bad_request", "too_large", "timeout", "malformed"), 0
        )
        self.connections = 0
        self.open = 0
        self.refused_connections = 0


class PolicyService:
    """Postfix's `check_policy_service` endpoint inside `rempart serve`."""

    def __init__(
        self,
        decider: Decider,
        settings: PostfixSettings,
        record: Record | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.decider = decider
        self.settings = settings
        self.record = record
        self.clock = clock
        self.limits = Limits(
            settings.max_line_bytes,
            settings.max_request_bytes,
            settings.request_timeout,
            settings.idle_timeout,
        )
        self.counters = PolicyCounters()
        self._servers: list[asyncio.AbstractServer] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._socket_path: Path | None = None

    # --- listening -------------------------------------------------------------------------
    async def start(self) -> list[str]:
        """Bind the configured listeners; their addresses (`inet:host:port`, `unix:path`).
        ListenError when one cannot be set up (nothing is left listening then)."""
        s = self.settings
        limit = s.max_line_bytes + 1
        where: list[str] = []
        try:
            if s.port:
                host = f"[{s.host}]" if ":" in s.host else s.host
                try:
                    server = await asyncio.start_server(
                        self._connection, s.host, s.port, limit=limit
                    )
                except OSError as exc:
                    raise ListenError(f"cannot listen on {host}:{s.port}: {_why(exc)}") from None
                self._servers.append(server)
                where.append(f"inet:{host}:{server.sockets[0].getsockname()[1]}")
            if s.unix_socket:
                path = Path(s.unix_socket)
                try:
                    _clear_stale_socket(path)
                    server = await asyncio.start_unix_server(self._connection, path, limit=limit)
                except OSError as exc:
                    raise ListenError(f"cannot listen on {path}: {_why(exc)}") from None
                self._servers.append(server)
                self._socket_path = path
                try:
                    os.chmod(path, s.socket_mode)
                    if s.unix_socket_group:
                        shutil.chown(path, group=s.unix_socket_group)
                except (OSError, LookupError) as exc:
                    raise ListenError(f"cannot set the mode or group of {path}: {exc}") from None
                where.append(f"unix:{path}")
        except ListenError:
            await self.stop()
            raise
        return where

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers.clear()
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()
            self._socket_path = None

    # --- one connection --------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counters = self.counters
        counters.connections += 1
        if counters.open >= self.settings.max_connections:
            counters.refused_connections += 1
            writer.close()
            return
        counters.open += 1
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, Timeout):
            pass  # the client went away or stalled: nothing to answer
        except Exception:  # a defect of ours must not take the listener down
            log.exception("postfix policy connection failed")
        finally:
            counters.open -= 1
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counters = self.counters
        while True:
            try:
                request = await read_request(reader, self.limits)
            except BadRequest as exc:
                counters.problems["too_large" if exc.close else "malformed"] += 1
                await self._send(writer, bad_request(exc.reason))
                if exc.close:
                    return
                continue
            except Timeout:
                counters.problems["timeout"] += 1
                return
            if request is None:
                return
            now = self.clock()
            answer = self.decider.answer(request, now)
            if answer.code == "bad_request":
                counters.problems["bad_request"] += 1
            elif answer.refused:
                self._refused(answer, request, now)
            await self._send(writer, answer)

    async def _send(self, writer: asyncio.StreamWriter, answer: Answer) -> None:
        self.counters.answers[answer.action] += 1
        writer.write(answer.encode())
        async with asyncio.timeout(self.limits.request_timeout):
            await writer.drain()

    def _refused(self, answer: Answer, request: dict[str, str], now: float) -> None:
        refusals = self.counters.refusals
        refusals[answer.code] = refusals.get(answer.code, 0) + 1
        if self.record is not None:
            self.record(
                JOURNAL_KIND,
                now,
                {
                    "login": answer.login,
                    "ip": request.get("client_address", ""),
                    "action": answer.action.value,
                    "code": answer.code,
                    "state": request.get("protocol_state", "")[:16],
                    "queue_id": request.get("queue_id", "")[:32],
                },
            )


def _why(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return "already in use (another program; choose another [postfix] port or unix_socket)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address of this machine"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return str(exc.strerror or exc)


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a process that is gone; refuse to replace anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, "the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody answers: stale
    else:
        raise OSError(errno.EADDRINUSE, "in use")
    finally:
        probe.close()
