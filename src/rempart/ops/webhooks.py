"""Webhooks: posture changes (and other chosen events) POSTed as signed JSON, off the hot path.

Configured as `[[campaign.webhooks]] url = "...", secret = "...", events = ["posture"]`. The body
is signed like wforce's webhooks: HMAC-SHA256 of the body with the secret, base64, in
`X-Wforce-Signature` (and the same value in `X-Rempart-Signature`). Deliveries run on a
background thread with retries; a slow receiver never delays a decision.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from rempart.config import ConfigError, section
from rempart.engine.events import Decided, EngineEvent, Reported
from rempart.engine.records import event_record, journaled

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    secret: str
    events: frozenset[str]


def parse_webhooks(table: Any) -> WebhookSettings:
    """The `[[campaign.webhooks]]` array; ConfigError naming the entry and the key."""
    if table is None:
        return WebhookSettings()
    if not isinstance(table, list):
        raise ConfigError("must be an array of tables ([[campaign.webhooks]])", "campaign.webhooks")
    hooks = []
    for i, item in enumerate(table):
        where = f"campaign.webhooks[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("must be a table", where)
        unknown = sorted(set(item) - {"url", "secret", "events"})
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (known: events, secret, url)", where)
        url, secret = item.get("url"), item.get("secret", "")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("an http(s) URL is required", f"{where}.url")
        if not isinstance(secret, str):
            raise ConfigError("must be a string", f"{where}.secret")
        events = item.get("events", ["posture"])
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ConfigError("must be a list of event names", f"{where}.events")
        hooks.append(Webhook(url, secret, frozenset(events)))
    return WebhookSettings(tuple(hooks))


@section(
    "campaign.webhooks",
    parse=parse_webhooks,
    shown_by_default=False,
    reference="""\
# Signed webhooks for posture changes (none by default):
# [[campaign.webhooks]]
# url = "https://hooks.example.org/rempart"
# secret = "..."            # HMAC-SHA256 of the body, base64, in X-Wforce-Signature
# events = ["posture"]
""",
)
@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The `[[campaign.webhooks]]` array."""

    hooks: tuple[Webhook, ...] = ()


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class WebhookSender:
    def __init__(self, hooks: list[Webhook], attempts: int = 3, timeout: float = 5.0) -> None:
        self.hooks = hooks
        # Whether any hook asked for decisions or reports (else they are dropped unread).
        self._attempts = any(h.events & {"decision", "report"} for h in hooks)
        self.attempts = attempts
        self.timeout = timeout
        self.sent = 0
        self.failed = 0
        self._queue: queue.SimpleQueue[tuple[Webhook, bytes] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="rempart-webhooks", daemon=True)
        self._thread.start()

    def listener(self, event: EngineEvent) -> None:
        """Engine listener: decisions and reports are skipped before anything is built (they
        are on the decision path); other events go to the hooks that chose their kind."""
        match event:
            case Decided() | Reported() if not self._attempts:
                return
            case _:
                pass
        if not journaled(event):
            return  # the learned fetchers are no one's news
        rec: dict[str, Any] | None = None
        for hook in self.hooks:
            if rec is None:
                rec = event_record(event)
            if rec["kind"] in hook.events:
                body = json.dumps(_body(rec), separators=(",", ":")).encode()
                self._queue.put((hook, body))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            hook, body = item
            self._deliver(hook, body)

    def _deliver(self, hook: Webhook, body: bytes) -> None:
        signature = sign(hook.secret, body)
        headers = {
            "Content-Type": "application/json",
            "X-Wforce-Signature": signature,
            "X-Rempart-Signature": signature,
            "User-Agent": "rempart-webhook",
        }
        for attempt in range(self.attempts):
            request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    if 200 <= resp.status < 300:
                        self.sent += 1
                        return
            except (urllib.error.URLError, OSError) as exc:
                log.warning("webhook %s failed (try %d): %s", hook.url, attempt + 1, exc)
            time.sleep(0.5 * 2**attempt)
        self.failed += 1

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


def _body(rec: dict[str, Any]) -> dict[str, Any]:
    """The delivered JSON: the journal record (`rempart.engine.records`) with its `kind` as
    `type`, first, as wforce's webhooks have it."""
    body = {"type": rec["kind"], "ts": rec["ts"]}
    body.update((k, v) for k, v in rec.items() if k not in ("kind", "ts"))
    return body
