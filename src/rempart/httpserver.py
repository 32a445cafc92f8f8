"""A small HTTP/1.1 server on asyncio + httptools: keep-alive, body limits, routing, streaming.

Connection limits and timeouts are decided by `rempart.connections.ConnectionGuard`; a
connection here only reports what it is doing (reading a request, idle between requests).

Why not a framework: the decision API is the hot path and DESIGN.md's measurements put a raw
asyncio Protocol with httptools at 2.3x uvicorn's throughput on this hardware. This module owns
only HTTP mechanics, and the rule that every route declares its `Auth` level, whose guard runs
before the handler; what each route does lives in `adapters/` and `ops/`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast
from urllib.parse import parse_qs

import httptools
import orjson

from rempart.acceptor import Acceptor, listening_sockets
from rempart.connections import ConnectionGuard, ConnectionLimits

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16384
# Pipelined requests one connection has answered inline in one pass of the event loop; the
# rest of what it sent waits for the next pass, its reading paused meanwhile. One read brings
# up to 256 KB, a thousand pipelined decisions: answered in one go, they held every other
# client's answer for 50 ms, and twenty such connections for a second a pass.
PIPELINE_TURN = 16
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HTTPError(Exception):
    """Raised by handlers for a clean 4xx answer with a JSON reason."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass(slots=True, init=False)  # a written `__init__`, compiled (model.Attempt says why)
class Request:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    client: str
    params: dict[str, str]
    # Who the route's guard let in (an operator's session); None on public and API routes.
    principal: Any

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
        client: str,
        params: dict[str, str] | None = None,
        principal: Any = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.client = client
        self.params = {} if params is None else params
        self.principal = principal

    @property
    def query(self) -> dict[str, str]:
        qs = self.query_string
        if "%" not in qs and "+" not in qs and "&" not in qs and qs.count("=") == 1:
            key, _, value = qs.partition("=")  # the common "command=allow"
            return {key: value}
        return {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}

    def json(self) -> Any:
        if not self.body:
            raise HTTPError(400, "empty body: a JSON object is expected")
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise HTTPError(400, f"malformed JSON: {exc}") from None

    def form(self) -> dict[str, str]:
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(400, "form body is not UTF-8") from None
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes | AsyncIterator[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(data), "application/json", headers or {})


Handler = Callable[[Request], Response | Awaitable[Response]]
Guard = Callable[[Request], Response | None]
"""Runs before a route's handler. None lets the request through (the guard may set
`request.principal`); a Response (a redirect to sign in) or an HTTPError refuses it."""


class Auth(Enum):
    """Who may call a route, declared when the route is added and enforced by the dispatch."""

    PUBLIC = "public"  # anyone: health, metrics, the status page, the sign-in form
    API = "api"  # HTTP Basic with the API password; 401 otherwise
    PROXY_API = "proxy_api"  # the same password from a reverse proxy's subrequest; 407 otherwise
    OPERATOR = "operator"  # a console session (and its CSRF token on every POST)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # a prefix route ends in "/*"
    handler: Handler
    auth: Auth
    # The body of the route's errors, its guard's refusals included (wforce's API answers in
    # wforce's shape); None: the app's `{"error", "status"}`.
    errors: Callable[[HTTPError], Response] | None = None


class Router:
    """Exact paths, plus prefix routes whose remainder goes to `request.params['rest']`.

    Every route names its `Auth` level; a level other than PUBLIC needs its guard, given to
    the constructor, so a route can never be added without the check that protects it."""

    def __init__(self, guards: Mapping[Auth, Guard] | None = None) -> None:
        self.guards: dict[Auth, Guard] = dict(guards or {})
        self.exact: dict[tuple[str, str], Route] = {}
        self.prefixes: list[tuple[str, Route]] = []

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        auth: Auth,
        errors: Callable[[HTTPError], Response] | None = None,
    ) -> None:
        if auth is not Auth.PUBLIC and auth not in self.guards:
            raise ValueError(f"{method} {path}: no guard for auth level {auth.name}")
        route = Route(method, path, handler, auth, errors)
        if path.endswith("/*"):
            self.prefixes.append((path[:-1], route))
            self.prefixes.sort(key=lambda p: -len(p[0]))
        else:
            self.exact[(method, path)] = route

    def routes(self) -> list[Route]:
        """Every route, for the proof that each non-public one refuses strangers."""
        return [*self.exact.values(), *(route for _, route in self.prefixes)]

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_known) — path_known tells 404 from 405."""
        route = self.exact.get((method, path))
        if route is not None:
            return route, {}, True
        known = any(p == path for (_, p) in self.exact)
        for prefix, r in self.prefixes:
            if path.startswith(prefix):
                known = True
                if r.method == method:
                    return r, {"rest": path[len(prefix) :]}, True
        return None, {}, known


def _parse_target(url: bytes) -> tuple[str, str]:
    """(path, query string) of a request target; remembered, as clients repeat a few targets."""
    # Any: httptools' stubs type the parts as bytes, but an absent part is None (and a compiled
    # module checks the declared type).
    parsed: Any = httptools.parse_url(url)
    target = (
        parsed.path.decode("latin-1") if parsed.path else "/",
        parsed.query.decode("latin-1") if parsed.query else "",
    )
    if len(_URLS) >= 1024:
        _URLS.clear()
    _URLS[url] = target
    return target


_URLS: dict[bytes, tuple[str, str]] = {}
# Status line and content type of responses without extra headers, by (status, content type).
_PLAIN_HEADS: dict[tuple[int, str], bytes] = {}


class _Connection(asyncio.Protocol):
    __slots__ = (
        "admitted",
        "answered",
        "app",
        "body",
        "client",
        "client_key",
        "closing",
        "deferred",
        "guard",
        "header_bytes",
        "headers",
        "idle_since",
        "out",
        "parser",
        "queue",
        "reading_since",
        "served",
        "transport",
        "trusted",
        "url",
        "worker",
        "writing_blocked",
    )
    client_key: str  # both set by the guard when it admits the connection
    trusted: bool

    def __init__(self, app: HttpApp) -> None:
        self.app = app
        self.guard = app.guard
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: list[Request | HTTPError] = []
        self.worker: asyncio.Task[None] | None = None
        self.admitted = False
        self.reading_since = 0.0  # coarse clock when the request being read began; 0: none
        self.idle_since = 0.0  # coarse clock since nothing is in flight; 0: busy
        self.out: bytes | None = None  # answers waiting for the write batch (`_WriteBatch`)
        # Reading paused because the client does not read its answers (`pause_writing`), or
        # because its pipelined requests wait for the next pass (`_defer`).
        self.writing_blocked = False
        self.deferred = False
        self.answered = 0  # requests answered inline in this pass (`PIPELINE_TURN`)
        self.closing = False  # answered with Connection: close: what it sends next is dropped

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server hands its protocol a full Transport (asyncio types it as the base).
        stream = self.transport = cast(asyncio.Transport, transport)
        peer = stream.get_extra_info("peername")
        self.client = peer[0] if isinstance(peer, tuple) and peer else ""
        if not self.guard.admit(self, self.client):
            self.transport = None
            stream.abort()
            return
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.release(self)
        self.app.connections.discard(self)
        self.transport = None
        if self.worker is not None:
            self.worker.cancel()

    def pause_writing(self) -> None:
        """The client is not reading its answers (the transport's buffer passed its high-water
        mark): stop reading its requests until it does, so that output it never collects
        cannot grow without bound. If it never does, the connection's timeouts close it."""
        self.writing_blocked = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_blocked = False
        if self.transport is not None and not self.transport.is_closing() and not self.deferred:
            self.transport.resume_reading()

    def expire(self) -> None:
        """Closed by a timeout: at once, even with unsent output (a client that stopped
        reading must not hold its descriptor)."""
        transport = self.transport
        if transport is None:
            return
        self.out = None
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
        self.reading_since = self.idle_since = 0.0

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.answered = 0  # a new pass for this connection
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HTTPError(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._fail(HTTPError(400, f"malformed HTTP request: {exc}"))

    def _fail(self, error: HTTPError) -> None:
        self.queue.append(error)
        self._kick()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.reading_since = self.guard.now
        self.idle_since = 0.0
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] | None = []
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.app.max_body:
            self._too_large()  # answered now, not after the client sent it all

    def on_body(self, body: bytes) -> None:
        if self.body is None:
            return
        self.body.append(body)
        if sum(map(len, self.body)) > self.app.max_body:
            self._too_large()

    def _too_large(self) -> None:
        self.body = None
        self._fail(HTTPError(413, f"body larger than {self.app.max_body} bytes"))

    def on_message_complete(self) -> None:
        self.reading_since = 0.0
        if self.body is None:
            return  # answered 413 when the body passed the limit
        else:
            target = _URLS.get(self.url)
            if target is None:
                target = _parse_target(self.url)
            self.queue.append(
                Request(
                    self.parser.get_method().decode("latin-1"),
                    target[0],
                    target[1],
                    self.headers,
                    b"".join(self.body),
                    self.client,
                )
            )
        self._kick()

    def _kick(self) -> None:
        if self.closing:
            self.queue.clear()  # after an answer that closes the connection, nothing more
            return
        if self.deferred:
            return  # the next pass answers what is queued
        if self.worker is None or self.worker.done():
            # Fast path: a synchronous handler answers inline, without a task.
            while self.queue:
                if self.answered >= PIPELINE_TURN:
                    self._defer()
                    return
                self.answered += 1
                item = self.queue[0]
                if isinstance(item, HTTPError):
                    self.queue.clear()
                    self._write(self.app.error_response(item), keep_alive=False)
                    return
                result = self.app.dispatch(item)
                if type(result) is not Response and inspect.isawaitable(result):
                    self.worker = asyncio.ensure_future(self._drain(result))
                    return
                self.queue.pop(0)
                self._write(result, self.parser.should_keep_alive(), item.method == "HEAD")

    def _defer(self) -> None:
        """Leave the rest of a pipelined burst to the next pass (`PIPELINE_TURN`), reading
        nothing more from this client until it is answered."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.queue.clear()  # the client is gone or going: nobody reads these answers
            return
        if not self.deferred:
            self.deferred = True
            transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self.deferred = False
        self.answered = 0
        transport = self.transport
        if transport is None or transport.is_closing():
            self.queue.clear()
            return
        self._kick()
        if not self.deferred and not self.writing_blocked:
            transport.resume_reading()

    async def _drain(self, pending: Awaitable[Response]) -> None:
        response = await pending
        request = self.queue.pop(0)
        head_only = isinstance(request, Request) and request.method == "HEAD"
        if isinstance(response.body, bytes) or head_only:
            self._write(response, self.parser.should_keep_alive(), head_only)
        else:
            await self._stream(response)
        self.worker = None
        self._kick()

    def _head(self, response: Response, extra: str) -> bytes:
        if not response.headers:
            prefix = _PLAIN_HEADS.get((response.status, response.content_type))
            if prefix is None:
                prefix = _PLAIN_HEADS[(response.status, response.content_type)] = (
                    f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}\r\n"
                    f"Content-Type: {response.content_type}\r\n"
                ).encode("latin-1")
            return prefix + extra.encode("latin-1")
        lines = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}\r\n",
            f"Content-Type: {response.content_type}\r\n",
        ]
        lines += [f"{k}: {v}\r\n" for k, v in response.headers.items()]
        lines.append(extra)
        return "".join(lines).encode("latin-1")

    def _write(self, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        if self.transport is None:
            return
        body = response.body
        if not isinstance(body, bytes):
            if not head_only:
                self.worker = asyncio.ensure_future(self._stream(response))
                return
            # The body iterator is dropped unstarted, so it holds nothing to release.
            extra = "Transfer-Encoding: chunked\r\n"
            body = b""
        else:
            extra = f"Content-Length: {len(body)}\r\n"
        extra += "\r\n" if keep_alive else "Connection: close\r\n\r\n"
        data = self._head(response, extra)
        if not head_only:  # HEAD: the headers GET would send, without the body (RFC 9110 9.3.2)
            data += body
        if not keep_alive:
            self.flush()  # what is batched goes first
            self.transport.write(data)
            self.transport.close()
            self.closing = True
            return
        if self.out is None:
            self.out = data
            self.app.batch.add(self)
        else:
            self.out += data  # pipelined requests: answers in order, one write
        if not self.queue and not self.reading_since:
            self.idle_since = self.guard.now
            self.served = True

    def flush(self) -> None:
        """Writes the batched answers (called by `_WriteBatch`, or before an unbatched write:
        a closing answer or a stream)."""
        out = self.out
        if out is not None:
            self.out = None
            if self.transport is not None:
                self.transport.write(out)

    async def _stream(self, response: Response) -> None:
        assert not isinstance(response.body, bytes)
        if self.transport is None:
            return
        self.flush()  # what is batched goes first
        self.transport.write(self._head(response, "Transfer-Encoding: chunked\r\n\r\n"))
        try:
            async for chunk in response.body:
                if self.transport is None or self.transport.is_closing():
                    break
                if chunk:
                    self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if self.transport is not None:
                self.transport.write(b"0\r\n\r\n")
        finally:
            if self.transport is not None:
                self.transport.close()


class _WriteBatch:
    """The keep-alive answers of one event-loop pass, written together just before the loop
    polls again (as Redis writes its replies before it sleeps).

    On loopback and in a VM, most of a small write's cost is waking the reader: the kernel
    delivers the segment inline and signals the client's thread, often on another CPU. Written
    one by one between decisions, every answer pays that wake-up; written back to back, only
    the first does, and the client sends its next requests together, so the next pass reads
    them together. An answer waits at most for the rest of its pass (the decisions already
    read); under light load a pass holds one request and nothing waits."""

    __slots__ = ("connections",)

    def __init__(self) -> None:
        self.connections: list[_Connection] = []

    def add(self, connection: _Connection) -> None:
        if not self.connections:
            asyncio.get_running_loop().call_soon(self.flush)
        self.connections.append(connection)

    def flush(self) -> None:
        connections, self.connections = self.connections, []
        for connection in connections:
            try:
                connection.flush()
            except Exception:  # one broken transport must not keep the others' answers
                log.exception("could not write answers to %s", connection.client)


class HttpApp:
    """Routes plus the listening socket."""

    def __init__(
        self,
        router: Router,
        max_body: int = 65536,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.router = router
        self.max_body = max_body
        self.guard = ConnectionGuard(limits or ConnectionLimits())
        self.connections: set[_Connection] = set()
        self.batch = _WriteBatch()
        self.acceptor = Acceptor(lambda: _Connection(self))
        self.sweeper: asyncio.Task[None] | None = None
        self.errors = 0

    def error_response(self, error: HTTPError) -> Response:
        return json_response(
            {"error": error.reason, "status": error.status}, error.status, error.headers
        )

    def dispatch(self, request: Request) -> Response | Awaitable[Response]:
        route, params, known = self.router.resolve(request.method, request.path)
        if route is None and request.method == "HEAD":
            # Every GET route answers HEAD (uptime monitors); the body is dropped when written.
            route, params, known = self.router.resolve("GET", request.path)
        if route is None:
            if known:
                return self.error_response(HTTPError(405, f"{request.method} not allowed here"))
            return self.error_response(HTTPError(404, f"no such path: {request.path[:200]}"))
        request.params = params
        try:
            if route.auth is not Auth.PUBLIC:
                refused = self.router.guards[route.auth](request)
                if refused is not None:
                    return refused
            result = route.handler(request)
        except HTTPError as exc:
            return self._error(route, exc)
        except Exception:
            self.errors += 1
            log.exception("handler failed for %s %s", request.method, request.path)
            return self._error(route, HTTPError(500, "internal error"))
        if type(result) is not Response and inspect.isawaitable(result):
            return self._guard(route, result)
        return result

    def _error(self, route: Route, error: HTTPError) -> Response:
        return self.error_response(error) if route.errors is None else route.errors(error)

    async def _guard(self, route: Route, pending: Awaitable[Response]) -> Response:
        try:
            return await pending
        except HTTPError as exc:
            return self._error(route, exc)
        except Exception:
            self.errors += 1
            log.exception("async handler failed")
            return self._error(route, HTTPError(500, "internal error"))

    async def start(self, host: str, port: int) -> int:
        """Listen on every address of `host`; the bound port. Raises OSError (in use, …)."""
        sockets = listening_sockets(host, port, backlog=4096)
        self.adopt(sockets)
        return int(sockets[0].getsockname()[1])

    def adopt(self, sockets: list[socket.socket]) -> None:
        """Serve the connections of listening sockets bound elsewhere (the decision workers
        share the ones their primary bound)."""
        self.acceptor.start(sockets)
        self.sweeper = asyncio.ensure_future(self.guard.run(self.connections))

    async def stop(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        self.acceptor.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.flush()
                conn.transport.close()
        await asyncio.sleep(0)  # the transports' closing callbacks
