"""The HTTP runner: the same scenario sent to a running `rempart serve` over the wforce API.

Owns the client side of the wforce-compatible API (`allow` before the password check, `report`
after, HTTP Basic auth, JSON bodies) as a `Defender`, and the pacing that replays a compressed
timeline on the wall clock. It refuses any target that is not a loopback address, and stops by
itself after `max_requests` requests or `max_seconds` seconds.

The server keeps its own (wall) clock, so the scenario is compressed by `time_scale` (a day in
minutes) and the in-process runner is run on the same compressed timeline for comparison.
Over this API a step-up is answered `-1` like a deny, so web/app step-ups count as denies here.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from rempart.model import ALLOW, Action, Attempt, Outcome, Reason, Verdict


class NotLoopback(ValueError):
    """Raised for a target URL that does not resolve only to loopback addresses."""


def loopback_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NotLoopback(f"need an http:// URL on loopback, got {url!r}")
    port = parts.port or 80
    infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise NotLoopback(f"{parts.hostname} is not loopback ({', '.join(sorted(addresses))})")
    return parts.hostname, port


class WforceClient:
    """A `Defender` that asks a wforce-compatible server; `now` is ignored (server clock)."""

    name = "rempart-http"

    def __init__(self, url: str, password: str, timeout: float = 5.0) -> None:
        host, port = loopback_target(url)
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        token = base64.b64encode(f"sim:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.requests = 0
        self.errors = 0

    def _post(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        payload = json.dumps(body)
        for attempt in (1, 2):
            try:
                self.conn.request("POST", f"/?command={command}", payload, self.headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.status != 200:
                    self.errors += 1
                    return {}
                return json.loads(data)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                if attempt == 2:
                    raise
        return {}

    @staticmethod
    def _body(attempt: Attempt) -> dict[str, Any]:
        return {
            "login": attempt.login,
            "remote": attempt.ip,
            "pwhash": attempt.pwhash,
            "protocol": attempt.protocol.value,
            "device_id": attempt.device_id,
            "user_agent": attempt.user_agent,
            "tls": attempt.tls,
        }

    def decide(self, attempt: Attempt, now: float) -> Verdict:
        answer = self._post("allow", self._body(attempt))
        status = int(answer.get("status", 0))
        if status == 0:
            return ALLOW
        reason = Reason("http_status", str(answer.get("msg", "")))
        if status < 0:
            return Verdict(Action.DENY, reasons=(reason,))
        return Verdict(Action.DELAY, float(status), (reason,))

    def report(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        body = self._body(attempt)
        body["success"] = outcome.success
        body["policy_reject"] = outcome.policy_reject
        self._post("report", body)

    def close(self) -> None:
        self.conn.close()


class WallPacer:
    """Waits until each event's compressed time on the wall clock; enforces the bounds."""

    def __init__(self, client: WforceClient, max_requests: int, max_seconds: float) -> None:
        self.client = client
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.start = time.monotonic()
        self.max_lag = 0.0

    def __call__(self, now: float) -> bool:
        if self.client.requests + 2 > self.max_requests:
            return False
        elapsed = time.monotonic() - self.start
        if elapsed >= self.max_seconds:
            return False
        if now > elapsed:
            time.sleep(now - elapsed)
        else:
            self.max_lag = max(self.max_lag, elapsed - now)
        return True
