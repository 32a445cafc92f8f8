"""Where parsed log events go: each sink turns a `LogEvent` into reported attempts.

`EngineSink` reports into this process's engine (`rempart serve` with `[tail] files`),
`HttpSink` to a running server over the native API (`rempart tail`), `PrintSink` prints them
(`rempart tail --print`). After a failure the engine and HTTP sinks ask for a verdict too: with
no hook to refuse the login, that is where the policy's block rules list the source.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from rempart.adapters.logparse import LogEvent
from rempart.adapters.sources import source_login
from rempart.engine.keys import KeyError_
from rempart.model import Attempt

if TYPE_CHECKING:
    from rempart.engine.engine import Engine

log = logging.getLogger("rempart.tail")


class Sink(Protocol):
    def send(self, event: LogEvent) -> None: ...


class SinkError(RuntimeError):
    """The sink cannot take events now (server unreachable): retry later, lose nothing."""


@dataclass
class EngineSink:
    """Reports straight into this process's engine (`rempart serve` with `[tail] files`)."""

    engine: Engine
    canonical: Callable[[str], str]

    def send(self, event: LogEvent) -> None:
        login = ""
        if event.login:
            try:
                login = self.canonical(event.login)
            except (KeyError_, ValueError):
                login = ""
        if not login and event.outcome == "success":
            return  # nothing to learn from an anonymous success
        attempt = Attempt(
            login=login or source_login(event.ip),
            ip=event.ip,
            protocol=event.protocol,
            raw_login=event.login,
        )
        outcome = event.to_outcome()
        for _ in range(event.count):
            self.engine.report(attempt, outcome)
        if not outcome.success and not outcome.policy_reject:
            # No hook can refuse this login: the verdict is asked so that the policy's
            # block rules put the source on the block list.
            self.engine.decide(attempt)


class HttpSink:
    """Reports to a running server over the native API (`/v1/report`, then `/v1/decide`)."""

    def __init__(self, url: str, password: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        token = base64.b64encode(f"tail:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def _post(self, path: str, body: dict[str, Any]) -> None:
        for attempt in (1, 2):  # once more on a keep-alive connection the server closed
            if self.conn is None:
                cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                self.conn = cls(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", self.prefix + path, json.dumps(body), self.headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise SinkError(f"cannot reach rempart: {exc}") from None
                continue
            if resp.status >= 500 or resp.status in (401, 407):
                raise SinkError(f"{path}: {resp.status} {payload[:200]!r}")
            if resp.status >= 400:
                log.warning("tail: %s refused an event: %s %s", path, resp.status, payload[:200])
            return

    def send(self, event: LogEvent) -> None:
        login = event.login
        if not login and event.outcome == "success":
            return
        body: dict[str, Any] = {
            "login": login or source_login(event.ip),
            "ip": event.ip,
            "protocol": event.protocol.value,
            "success": event.outcome == "success",
            "policy_reject": event.outcome == "policy_reject",
            "unknown_login": event.outcome == "unknown_login",
        }
        for _ in range(event.count):
            self._post("/v1/report", body)
        if event.outcome in ("failure", "unknown_login"):
            self._post("/v1/decide", {k: body[k] for k in ("login", "ip", "protocol")})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class PrintSink:
    """Prints events as JSON lines (`rempart tail --print`: try a parser on a log)."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out

    def send(self, event: LogEvent) -> None:
        self.out(
            json.dumps(
                {
                    "outcome": event.outcome,
                    "ip": event.ip,
                    "login": event.login,
                    "protocol": event.protocol.value,
                    "count": event.count,
                }
            )
        )
