"""Assembles the service: settings, engine, embedded store, journal, HTTP routes, and runs it."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from rempart import __version__
from rempart.adapters.auth import BasicAuth
from rempart.adapters.logtail import tail_plan
from rempart.adapters.native import NativeApi
from rempart.adapters.nginx import NginxApi
from rempart.adapters.operator import OperatorApi
from rempart.adapters.wforce import WforceApi
from rempart.config import Settings
from rempart.engine import distinct
from rempart.engine.engine import Engine
from rempart.engine.keys import KeyError_, canonical_login
from rempart.engine.oracle import LeakOracle
from rempart.httpserver import HttpApp, HTTPError, Request, Response, Router, json_response
from rempart.model import Action, Attempt, Protocol
from rempart.ops import metrics
from rempart.ops.journal import Journal
from rempart.ops.webhooks import WebhookSender, parse_webhooks
from rempart.state import open_replication, open_store

log = logging.getLogger("rempart")
DETECTOR_STATE = "campaign.state"  # the store setting holding the detector's learned state


def write_secret(path: Path, value: bytes) -> None:
    """Create a file readable by its owner only (0600 from the start, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)


def resolve_api_password(settings: Settings, data_dir: Path) -> tuple[str, bool]:
    """(password, generated_now): env var, then the configured file, else generated once."""
    env = os.environ.get("REMPART_API_PASSWORD")
    if env:
        return env, False
    if settings.api_password_file:
        try:
            return Path(settings.api_password_file).read_text().strip(), False
        except OSError as exc:
            raise SystemExit(
                f"[auth] api_password_file: cannot read "
                f"{settings.api_password_file}: {exc.strerror}"
            ) from None
    path = data_dir / "api-password"
    if path.exists():
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(24)
    write_secret(path, password.encode() + b"\n")
    return password, True


def load_key(data_dir: Path, name: str) -> bytes:
    path = data_dir / name
    if not path.exists():
        write_secret(path, secrets.token_bytes(32))
    return path.read_bytes()


class Service:
    """One Rempart node with embedded state."""

    def __init__(
        self,
        settings: Settings,
        data_dir: str | Path,
        api_password: str,
        leaks: LeakOracle | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        if leaks is None:
            leaks = open_leak_corpus(settings, self.data_dir)
        self.engine = Engine(settings, leaks)
        self.leaks = leaks
        self.pw_key = load_key(self.data_dir, "fingerprint.key")
        distinct.use_key(b"sketch\0" + self.pw_key)
        self.store = open_store(settings, self.data_dir)
        self._restore()
        self._save_every = max(1, round(self.engine.campaign_settings.save_seconds))
        self.journal: Journal | None = None
        if settings.journal.enabled:
            self.journal = Journal(
                self.data_dir / "journal",
                settings.journal.segment_bytes,
                settings.journal.flush_interval,
            )
            self.journal.start()
            self.engine.listeners.append(self.journal.listener)
        self.engine.listeners.append(self._persist)
        campaign = settings.raw.get("campaign", {})
        self.webhooks = WebhookSender(parse_webhooks(campaign.get("webhooks")))
        if self.webhooks.hooks:
            self.engine.listeners.append(self.webhooks.listener)
        self.auth = BasicAuth(api_password)
        self._logins: dict[str, str] = {}
        self.app: HttpApp | None = None
        self.extra_collectors: list[Any] = []
        self.shed_controller: Any = None
        self.shed_settings: Any = None
        if settings.raw.get("shed", {}).get("services"):
            self._setup_shed(settings.raw["shed"])
        # Scale-out over Redis: this node's share of the cluster's reports and changes.
        self.replication = open_replication(self)

    # --- state ---------------------------------------------------------------------------------
    def _restore(self) -> None:
        now = time.time()
        self.store.purge_expired(now)
        for which, entry in self.store.load_entries():
            if entry.live(now):
                (self.engine.allowlist if which == "allow" else self.engine.blocklist).put(entry)
        for login, marker, last in self.store.load_familiarity():
            self.engine.familiarity.restore(login, marker, last)
        self._restore_detector()
        for protocol in Protocol:
            level = self.store.get_setting(f"posture.{protocol.value}")
            if level:
                self.engine.postures[protocol] = level
                if self.engine.campaign is not None:
                    self.engine.campaign.restore(protocol.value, level)

    def _restore_detector(self) -> None:
        """The campaign detector's learned state, as last saved (by any node, with Redis); a
        state that cannot be read is reported and the detector starts cold, on its priors."""
        campaign = self.engine.campaign
        saved = self.store.get_setting(DETECTOR_STATE)
        if campaign is None or not saved:
            return
        try:
            campaign.load(json.loads(saved))
        except ValueError as exc:  # json.JSONDecodeError included
            log.warning(
                "the saved campaign detector state (setting %r) is unreadable, starting cold "
                "on the priors: %s",
                DETECTOR_STATE,
                exc,
            )

    def save_detector(self) -> None:
        """Queue the detector's learned state for the store's background writer."""
        if self.engine.campaign is not None:
            state = json.dumps(self.engine.campaign.dump(), separators=(",", ":"))
            self.store.put_setting(DETECTOR_STATE, state)

    def _persist(self, kind: str, now: float, data: dict[str, Any]) -> None:
        if kind == "list_add":
            self.store.put_entry(data["list"], data["entry"])
        elif kind == "list_del":
            entry = data["entry"]
            self.store.delete_entry(data["list"], entry.kind, entry.value)
        elif kind == "familiar":
            self.store.put_familiarity(data["login"], data["marker"], now)
        elif kind == "posture":
            level = data["to"]
            self.store.put_setting(
                f"posture.{data['protocol']}", None if level == "normal" else level
            )

    def flush(self) -> bool:
        """Wait until queued durable changes are on disk (list changes from the API)."""
        return self.store.flush()

    def write_errors(self) -> int:
        return self.store.write_errors + (self.journal.write_errors if self.journal else 0)

    def fingerprint_password(self, attempt: Attempt, password: str) -> None:
        """Fill the attempt's fingerprints from a plaintext password, which is then dropped."""
        material = attempt.login.encode() + b"\0" + password.encode("utf-8", "surrogatepass")
        attempt.pwhash = hashlib.blake2b(material, key=self.pw_key, digest_size=8).hexdigest()
        fingerprint = getattr(self.leaks, "fingerprint_password", None)
        if fingerprint is not None:
            found = fingerprint(attempt.login, password)
            attempt.pair_fingerprint = found.pair_fingerprint
            attempt.password_popular = found.password_popular

    def canonical_login(self, raw: str) -> str:
        """The canonical form of a login from a request; HTTPError 400 when it is unusable.

        Cached: the same login arrives in allow, allow and report."""
        login = self._logins.get(raw)
        if login is None:
            try:
                login = canonical_login(raw, self.settings.logins)
            except KeyError_ as exc:
                raise HTTPError(400, f"field 'login': {exc}") from None
            if not login:
                raise HTTPError(400, "field 'login' is empty")
            if len(self._logins) >= 65536:
                self._logins.clear()
            self._logins[raw] = login
        return login

    def journal_event(self, kind: str, data: dict[str, Any]) -> None:
        """Journal an operator-side event that does not pass through the engine."""
        if self.journal is not None:
            self.journal.append(kind, time.time(), data)

    def stats(self) -> dict[str, Any]:
        e = self.engine
        return {
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 1),
            "decisions": {a.label: e.decisions[a] for a in Action},
            "reports": {"failures": e.reports[0], "successes": e.reports[1]},
            "tracked_keys": len(e.states),
            "blocklist_entries": len(e.blocklist),
            "allowlist_entries": len(e.allowlist),
            "accounts_known": len(e.familiarity.accounts),
            "posture": {p.value: e.posture_of(p) for p in Protocol if p is not Protocol.OTHER},
            "reasons": dict(e.reason_counts),
            **({"redis": self.replication.status()} if self.replication else {}),
        }

    # --- admission control (shed/) ---------------------------------------------------------
    def _setup_shed(self, table: dict[str, Any]) -> None:
        from rempart.shed.config import ShedConfigError, parse_shed
        from rempart.shed.controller import Controller
        from rempart.shed.metrics import ShedCollector

        try:
            self.shed_settings = parse_shed(table)
        except ShedConfigError as exc:
            raise SystemExit(f"config: {exc}") from None
        self.shed_controller = Controller(self.shed_settings)
        self.extra_collectors.append(ShedCollector(lambda: self.shed_controller.state))

    def shed_status(self) -> dict[str, Any] | None:
        if self.shed_controller is None:
            return None
        from rempart.shed.status import shed_status

        return shed_status(self.shed_controller.state)

    def shed_public_status(self) -> dict[str, Any] | None:
        if self.shed_controller is None:
            return None
        from rempart.shed.status import public_status

        return public_status(self.shed_controller.state, self.shed_settings)

    def _shed_endpoint(self, request: Request) -> Response:
        self.auth.check(request)
        status = self.shed_status()
        if status is None:
            raise HTTPError(404, "load shedding is not configured on this node ([shed])")
        return json_response(status)

    # --- HTTP ----------------------------------------------------------------------------------
    def router(self) -> Router:
        router = Router()
        WforceApi(self).mount(router)
        NativeApi(self).mount(router)
        OperatorApi(self).mount(router)
        NginxApi(self).mount(router)
        registry = metrics.make_registry(self, self.extra_collectors)

        def scrape(request: Request) -> Response:
            return Response(200, metrics.render(registry), CONTENT_TYPE_LATEST)

        router.add("GET", "/metrics", scrape)
        router.add("GET", "/healthz", lambda r: json_response({"status": "ok"}))
        router.add("GET", "/v1/shed/status", self._shed_endpoint)
        __import__("rempart.ops.console", fromlist=["mount"]).mount(router, self)
        return router

    async def serve(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        tail = tail_plan(self)  # [tail] files, validated before listening
        self.app = HttpApp(self.router(), self.settings.server.max_body_bytes)
        bound = await self.app.start(host, port)
        log.info(
            "rempart %s listening on http://%s:%d/ (data in %s)",
            __version__,
            host,
            bound,
            self.data_dir,
        )
        print(f"rempart listening on http://{host}:{bound}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        if self.replication is not None:
            self.replication.attach(loop)
        gc.freeze()  # everything loaded at start (lists, familiarity, corpus) stays
        gc.set_threshold(50_000, 20, 100)
        housekeeping = asyncio.ensure_future(self._housekeeping())
        shedding = None
        if self.shed_controller is not None:
            shedding = asyncio.ensure_future(self.shed_controller.run(stop))
        tailing = tail(stop) if tail is not None else None  # log tailing in this process
        await stop.wait()
        housekeeping.cancel()
        if tailing is not None:
            await asyncio.wait_for(tailing, 5)
        if shedding is not None:
            await asyncio.wait_for(shedding, 5)
        await self.app.stop()
        self.close()

    async def _housekeeping(self) -> None:
        """Once a second: close campaign-detector ticks and move surviving objects out of the
        garbage collector's sight; every 30 s: pick up a new leak ingest."""
        loop = asyncio.get_running_loop()
        beat = 0
        while True:
            await asyncio.sleep(1.0)
            beat += 1
            self.engine.tick()
            if beat % self._save_every == 0:
                self.save_detector()
            # Tracked keys are long-lived and never form cycles: without this, every full
            # collection walks all of them (100+ ms pauses at a million keys). Frozen objects
            # are still freed by reference counting when the LRU drops them.
            gc.freeze()
            reload = getattr(self.leaks, "reload", None)
            if reload is not None and beat % 30 == 0:
                try:
                    await loop.run_in_executor(None, reload)
                except Exception:
                    log.exception("leak corpus reload failed; keeping the loaded one")

    def close(self) -> None:
        self.save_detector()
        self.webhooks.close()
        if self.journal is not None:
            self.journal.close()
        if self.replication is not None:
            self.replication.close()
        self.store.close()


def open_leak_corpus(settings: Settings, data_dir: Path) -> LeakOracle | None:
    """The leak corpus of this data directory (empty until `rempart leaks ingest` fills it)."""
    try:
        from rempart.breach.corpus import LeakCorpus
        from rempart.breach.settings import settings_from_mapping
    except ImportError:  # the breach extras are not installed
        return None
    return LeakCorpus(data_dir, settings_from_mapping(settings.raw))


def run(settings: Settings, data_dir: str, host: str, port: int) -> None:
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    password, generated = resolve_api_password(settings, path)
    if generated:
        print(
            f"API password generated and stored in {path / 'api-password'} (mode 0600): {password}",
            flush=True,
        )
    service = Service(settings, path, password)
    try:
        import uvloop

        uvloop.run(service.serve(host, port))
    except ImportError:
        asyncio.run(service.serve(host, port))
