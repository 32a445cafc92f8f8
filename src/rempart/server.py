"""Assembles the service: settings, engine, embedded store, journal, HTTP routes, and runs it.

The adapters and ops pages below never import this module: each is given a narrow context
(`adapters/context.py`, `ops/context.py`) built here, and each route declares its `Auth`
level, enforced by the Router with the guards built here."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from rempart import __version__, compiled_core
from rempart.adapters import openapi
from rempart.adapters.auth import BasicAuth
from rempart.adapters.context import (
    NativeContext,
    NginxContext,
    OperatorContext,
    TailContext,
    WforceContext,
    WforceCounters,
)
from rempart.adapters.logtail import tail_plan
from rempart.adapters.native import NativeApi
from rempart.adapters.nginx import NginxApi
from rempart.adapters.operator import OperatorApi
from rempart.adapters.postfix.decide import Decider
from rempart.adapters.postfix.metrics import PostfixCollector
from rempart.adapters.postfix.service import ListenError, PolicyService
from rempart.adapters.postfix.settings import PostfixSettings
from rempart.adapters.settings import NginxSettings
from rempart.adapters.wforce import WforceApi
from rempart.apppass.api import AppPasswordApi, AppPasswordContext
from rempart.apppass.settings import AppPasswordSettings
from rempart.apppass.store import AppPasswordCopy, AppPasswordStore
from rempart.breach.settings import BreachSettings
from rempart.config import ConfigError, Settings
from rempart.connections import ConnectionLimits
from rempart.datadir import lock, prepare, private_umask, worker_dir
from rempart.engine import distinct
from rempart.engine.engine import Engine
from rempart.engine.keys import KeyError_, canonical_login
from rempart.engine.oracle import LeakOracle
from rempart.firewall.settings import NftSettings
from rempart.httpserver import Auth, HttpApp, HTTPError, Request, Response, Router, json_response
from rempart.model import Attempt
from rempart.ops import metrics
from rempart.ops.connmetrics import ConnectionCollector
from rempart.ops.console import Console
from rempart.ops.context import ConsoleContext, MetricsContext, StatusContext
from rempart.ops.guards import check_api_password
from rempart.ops.host_journals import HostJournals
from rempart.ops.journal import Journal
from rempart.ops.live import LiveStats
from rempart.ops.operators import Operators, operator_changes
from rempart.ops.settings import OpsSettings
from rempart.ops.webhooks import WebhookSender, WebhookSettings
from rempart.shed.config import ShedSettings
from rempart.state import open_replication, open_store
from rempart.state.checkpoint import CheckpointCollector, Checkpointer
from rempart.state.writer import StateWriter
from rempart.workers import (
    Control,
    DecisionWorkers,
    WorkerCollector,
    WorkerError,
    worker_count,
)

log = logging.getLogger("rempart")
DETECTOR_STATE = "campaign.state"  # the store setting holding the detector's learned state
YOUNG_COLLECTION_S = 0.025  # how often young objects are collected and frozen (_collect_young)


class StartupError(Exception):
    """The service cannot start (the address cannot be bound...); the message says why."""


def write_secret(path: Path, value: bytes) -> None:
    """Create a file readable by its owner only (0600 from the start, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)


def resolve_api_password(settings: Settings, data_dir: Path) -> tuple[str, bool]:
    """(password, generated_now): env var, then the configured file, else generated once."""
    env = os.environ.get("REMPART_API_PASSWORD")
    if env:
        check_api_password(env, "REMPART_API_PASSWORD")
        return env, False
    if settings.api_password_file:
        try:
            password = Path(settings.api_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {settings.api_password_file}: {exc.strerror}",
                "auth.api_password_file",
            ) from None
        check_api_password(password, f"[auth] api_password_file {settings.api_password_file}")
        return password, False
    path = data_dir / "api-password"
    if path.exists():
        password = path.read_text().strip()
        check_api_password(password, str(path))
        return password, False
    password = secrets.token_urlsafe(24)
    write_secret(path, password.encode() + b"\n")
    return password, True


def load_key(data_dir: Path, name: str) -> bytes:
    path = data_dir / name
    if not path.exists():
        write_secret(path, secrets.token_bytes(32))
    return path.read_bytes()


class Service:
    """One Rempart node with embedded state, or (`worker` set) one of its decision workers.

    A decision worker (`rempart.workers`) reads the keys, the leak corpus and the app
    passwords of the primary's data directory and keeps its own state store and journal under
    `<data_dir>/workers/<i>/`. It answers only the decision API; everything an operator
    changes, and every effect outside the process (edge feeds, nftables, Postfix, log tailing),
    stays with the primary."""

    def __init__(
        self,
        settings: Settings,
        data_dir: str | Path,
        api_password: str,
        leaks: LeakOracle | None = None,
        worker: int | None = None,
        config_text: str = "",
    ) -> None:
        self.settings = settings
        self.data_dir = prepare(data_dir)
        self.worker = worker
        # What this process writes: the data directory, or a decision worker's own one.
        self.node_dir = self.data_dir if worker is None else prepare(worker_dir(data_dir, worker))
        self.workers: DecisionWorkers | None = None  # the primary's, started by serve()
        if worker is None and settings.server.decision_workers:
            self.workers = DecisionWorkers(
                worker_count(settings.server.decision_workers),
                self.data_dir,
                config_text,
                self._worker_said,
                self._dashboard_watched,
            )
        self.started = time.time()
        self._owns_leaks = leaks is None
        if leaks is None:
            # With decision workers, one copy of the corpus for the host, not one per process.
            shared = worker is not None or settings.server.decision_workers != 0
            leaks = open_leak_corpus(settings, self.data_dir, shared)
        self.engine = Engine(settings, leaks)
        self.leaks = leaks
        self.pw_key = load_key(self.data_dir, "fingerprint.key")
        distinct.use_key(b"sketch\0" + self.pw_key)
        self.store = open_store(settings, self.node_dir)
        self.state_writer = StateWriter(self.store)
        self._restore_detector()  # before the postures, which set the detector's level
        self.state_writer.restore(self.engine, time.time())
        self.checkpointer: Checkpointer | None = None
        if settings.state.backend != "redis":  # with Redis, the report stream warms counters
            self.checkpointer = Checkpointer(
                self.engine, self.data_dir, settings.state.checkpoint_seconds
            )
            self.checkpointer.restore(time.time())
            self.engine.listeners.append(self.checkpointer.listener)
        self._save_every = max(1, round(self.engine.campaign_settings.save_seconds))
        self.journal: Journal | None = None
        if settings.journal.enabled:
            self.journal = Journal(
                self.node_dir / "journal",
                settings.journal.segment_bytes,
                settings.journal.flush_interval,
            )
            self.journal.start()
            self.engine.listeners.append(self.journal.listener)
        self.operators = Operators(self.data_dir)
        self._operators_journaled: dict[str, str] = json.loads(
            self.store.get_setting("operators.journaled") or "{}"
        )
        self.journal_operators()
        if self.journal is not None:
            # The state never holds a change the journal lacks (`journal verify` checks it).
            self.state_writer.after_durable = self.journal.after_durable
        self.engine.listeners.append(self.state_writer.listener)
        self.app_password_settings = settings.section(AppPasswordSettings)
        self.app_passwords: AppPasswordStore | None = None
        self.app_password_copy: AppPasswordCopy | None = None  # a decision worker's
        if self.app_password_settings.enabled and worker is not None:
            self.app_password_copy = AppPasswordCopy(
                self.data_dir, self.app_password_settings, BreachSettings.of(settings).dovecot
            )
        elif self.app_password_settings.enabled:
            try:
                self.app_passwords = AppPasswordStore(
                    self.data_dir,
                    self.app_password_settings,
                    BreachSettings.of(settings).dovecot,
                )
            except ValueError as exc:
                raise ConfigError(
                    str(exc).removeprefix("[app_passwords] dovecot_db_group: "),
                    "app_passwords.dovecot_db_group",
                ) from None
        self.webhooks = WebhookSender(list(settings.section(WebhookSettings).hooks))
        if self.webhooks.hooks:
            self.engine.listeners.append(self.webhooks.listener)
        self.auth = BasicAuth(api_password)
        self._logins: dict[str, str] = {}
        self.app: HttpApp | None = None
        self.console: Console | None = None  # built with the first router
        self.extra_collectors: list[Any] = [
            ConnectionCollector(lambda: self.app.guard if self.app else None)
        ]
        if self.checkpointer is not None:
            self.extra_collectors.append(CheckpointCollector(self.checkpointer))
        self.wforce_counters = WforceCounters(time.time())
        self.nft_sync: Any = None
        primary = worker is None  # effects outside the process happen once, from the primary
        if primary and settings.section(NftSettings).enabled:
            self._setup_nft(settings.section(NftSettings))
        self.shed_controller: Any = None
        self.hostile_feed: Any = None  # the block list in HAProxy's map (shed/hostile_feed.py)
        self.standing_feed: Any = None  # good standing in HAProxy's map (shed/standing_feed.py)
        self.shed_settings: Any = None
        if primary and settings.section(ShedSettings).services:
            self._setup_shed(settings.section(ShedSettings))
        self.postfix: PolicyService | None = None  # Postfix policy delegation ([postfix])
        postfix = settings.section(PostfixSettings)
        if primary and postfix.enabled:
            decider = Decider(
                self.engine, settings.logins, postfix, app_passwords=self.app_passwords
            )
            record = self.journal.append if self.journal is not None else None
            self.postfix = PolicyService(decider, postfix, record)
            self.extra_collectors.append(PostfixCollector(self.postfix))
        # Scale-out over Redis: this node's share of the cluster's reports and changes.
        self.replication = open_replication(settings, self.engine, self.store)
        if self.replication is not None and self.nft_sync is not None:
            self.replication.peer_listeners.append(self.nft_sync.listener)
        if self.replication is not None and self.hostile_feed is not None:
            self.replication.peer_listeners.append(self.hostile_feed.listener)
        if self.replication is not None and self.standing_feed is not None:
            self.replication.peer_listeners.append(self.standing_feed.listener)
        if self.workers is not None:
            self.extra_collectors.append(WorkerCollector(self.workers))
        if self.replication is not None:
            from rempart.state.replication import ReplicationCollector  # needs the redis extra

            self.extra_collectors.append(ReplicationCollector(self.replication))

    # --- state ---------------------------------------------------------------------------------
    def journal_operators(self) -> None:
        """Journal the console operator changes `rempart operator` (another process) made since
        the last look: called at start and every second (by the primary only)."""
        if self.journal is None or self.worker is not None:
            return
        current = self.operators.fingerprints()
        if current == self._operators_journaled:
            return
        for kind, data in operator_changes(self._operators_journaled, current):
            self.journal.append_durable(kind, time.time(), data)
        self._operators_journaled = current
        value = json.dumps(current, sort_keys=True)
        self.journal.after_durable(lambda: self.store.put_setting("operators.journaled", value))

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

    def flush(self) -> bool:
        """Wait until queued durable changes are on disk (from a thread; handlers on the event
        loop use `await commit()`)."""
        if self.journal is not None and not self.journal.wait_durable():
            return False
        return self.store.flush()

    async def commit(self) -> None:
        """Return once every change made so far is in the journal and the state store, on
        disk. Concurrent and back-to-back callers share one fsync and one commit.

        Raises HTTPError 503 when that cannot be confirmed (the change is in force)."""
        try:
            if self.journal is not None:
                await self.journal.sync()
            durable = await asyncio.wait_for(asyncio.wrap_future(self.store.flush_future()), 10)
        except (OSError, TimeoutError):
            durable = False
        if not durable:
            raise HTTPError(503, "change applied but not yet saved to disk; retry")

    def journal_durable(self, kind: str, data: dict[str, Any]) -> None:
        """Journal an operator-side event that does not pass through the engine, to be
        acknowledged only after `await commit()`."""
        if self.journal is not None:
            self.journal.append_durable(kind, time.time(), data)

    def app_password_counts(self) -> dict[str, int] | None:
        index = self.app_passwords or self.app_password_copy
        return index.counts(time.time()) if index else None

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

    def stats(self) -> dict[str, Any]:
        snap = self.engine.snapshot()
        return {
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 1),
            "decisions": {a.label: n for a, n in snap.decisions.items()},
            "reports": {"failures": snap.failures, "successes": snap.successes},
            "tracked_keys": snap.tracked_keys,
            "blocklist_entries": snap.blocklist_entries,
            "allowlist_entries": snap.allowlist_entries,
            "accounts_known": snap.accounts_known,
            "posture": snap.levels(),
            "reasons": snap.reasons,
            **({"app_passwords": counts} if (counts := self.app_password_counts()) else {}),
            **({"redis": self.replication.status()} if self.replication else {}),
            **({"counters_checkpoint": self.checkpointer.status()} if self.checkpointer else {}),
            **({"decision_workers": self.workers.status()} if self.workers else {}),
            **({"worker": self.worker} if self.worker is not None else {}),
        }

    # --- nftables (firewall/) ---------------------------------------------------------------
    def _setup_nft(self, nft: NftSettings) -> None:
        from rempart.firewall.metrics import NftCollector
        from rempart.firewall.sync import NftSync, engine_source

        self.nft_sync = NftSync(nft, engine_source(self.engine))
        self.engine.listeners.append(self.nft_sync.listener)
        self.extra_collectors.append(NftCollector(self.nft_sync))

    # --- admission control (shed/) ---------------------------------------------------------
    def _setup_shed(self, shed: ShedSettings) -> None:
        from rempart.shed.config import with_map_dir
        from rempart.shed.controller import Controller
        from rempart.shed.metrics import ShedCollector

        self.shed_settings = with_map_dir(shed, self.data_dir)
        self.shed_controller = Controller(self.shed_settings)
        if self.journal is not None:
            from rempart.shed.episodes import journal_entry

            journal = self.journal  # shedding episodes: start, summaries, end, limit moves
            self.shed_controller.listeners.append(
                lambda event: journal.append(*journal_entry(event))
            )
        self.extra_collectors.append(ShedCollector(lambda: self.shed_controller.state))
        self._setup_hostile_feed()
        self._setup_standing_feed()

    def _setup_hostile_feed(self) -> None:
        """The block list kept in HAProxy's blocklist.map ([shed.blocklist], on by default)."""
        from rempart.shed.feed_metrics import HostileFeedCollector
        from rempart.shed.feed_settings import HostileFeedSettings
        from rempart.shed.hostile_feed import HostileFeed

        settings = self.settings.section(HostileFeedSettings)
        if settings.enabled:
            self.hostile_feed = HostileFeed(self.engine, self.shed_settings, settings)
            self.engine.listeners.append(self.hostile_feed.listener)
            self.extra_collectors.append(HostileFeedCollector(self.hostile_feed))

    def _setup_standing_feed(self) -> None:
        """Good standing kept in HAProxy's standing.map ([shed.standing], on by default)."""
        from rempart.shed.feed_metrics import StandingFeedCollector
        from rempart.shed.feed_settings import StandingSettings
        from rempart.shed.standing_feed import StandingFeed

        settings = self.settings.section(StandingSettings)
        if settings.enabled:
            self.standing_feed = StandingFeed(self.shed_settings, settings)
            self.engine.listeners.append(self.standing_feed.listener)
            self.extra_collectors.append(StandingFeedCollector(self.standing_feed))

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
        status = self.shed_status()
        if status is None:
            raise HTTPError(404, "load shedding is not configured on this node ([shed])")
        return json_response(status)

    # --- HTTP ----------------------------------------------------------------------------------
    def postures(self) -> dict[str, str]:
        """Protocol name -> posture level, for the protocols whose posture was ever set."""
        return {p.value: level for p, level in self.engine.postures.items()}

    def _console(self) -> Console:
        """The console and status page, built once: its sessions outlive a rebuilt router."""
        if self.console is None:
            settings = OpsSettings.of(self.settings)
            status = StatusContext(self.postures, self.shed_public_status)
            context = ConsoleContext(
                engine=self.engine,
                data_dir=self.data_dir,
                api_password=self.auth.password.decode(),
                login_rules=self.settings.logins,
                journal=HostJournals(self.data_dir, self.journal) if self.journal else None,
                leaks=self.leaks,
                commit=self.commit,
                journal_durable=self.journal_durable,
                shed_status=self.shed_status,
                status=status,
                app_password_counts=self.app_password_counts,
            )
            self.console = Console(context, settings)
        return self.console

    def router(self) -> Router:
        """Every route of the node, each behind the guard of the `Auth` level it declares."""
        console = self._console()
        router = Router(
            {
                Auth.API: self.auth.check,
                Auth.PROXY_API: self.auth.check_proxy,
                Auth.OPERATOR: console.require_operator,
            }
        )
        engine, logins = self.engine, self.settings.logins
        self._mount_decisions(router, console.settings)
        if self.app_passwords is not None:
            AppPasswordApi(
                AppPasswordContext(
                    self.app_passwords,
                    self.app_password_settings,
                    logins,
                    self.commit,
                    self.journal_durable,
                    engine.familiarity.known_account,
                )
            ).mount(router)
        OperatorApi(
            OperatorContext(engine, logins, self.leaks, self.commit, self.journal_durable)
        ).mount(router)
        registry = metrics.make_registry(
            MetricsContext(
                engine,
                wforce=self.wforce_counters,
                journal_records=lambda: self.journal.written if self.journal else 0,
                write_errors=self.write_errors,
                handler_errors=lambda: self.app.errors if self.app else 0,
            ),
            self.extra_collectors,
        )

        def scrape(request: Request) -> Response:
            return Response(200, metrics.render(registry), CONTENT_TYPE_LATEST)

        router.add("GET", "/metrics", scrape, auth=Auth.PUBLIC)
        router.add("GET", "/healthz", lambda r: json_response({"status": "ok"}), auth=Auth.PUBLIC)
        router.add("GET", "/v1/shed/status", self._shed_endpoint, auth=Auth.API)
        openapi.mount(router)
        console.mount(router)
        return router

    def _worker_said(self, worker: int, message: dict[str, Any]) -> None:
        """A decision worker's message on its control pipe (see `rempart.workers`)."""
        uses = message.get("uses")
        if self.app_passwords is not None and isinstance(uses, list):
            for app_id, when, network in uses:
                self.app_passwords.record_use(app_id, network, when)
        figures = message.get("figures")
        if self.console is not None and isinstance(figures, dict):
            self.console.live.absorb(worker, figures)

    def _dashboard_watched(self) -> bool:
        """Whether an operator's dashboard asked for the top sources in the last 3 s."""
        live = self.console.live if self.console is not None else None
        return live is not None and time.monotonic() - live.tops_asked < 3.0

    def _mount_decisions(self, router: Router, ops: OpsSettings) -> None:
        """The decision API: wforce's commands (lists included), /v1/decide and /v1/report,
        nginx auth_request. What a decision worker serves besides /healthz."""
        engine, logins = self.engine, self.settings.logins
        WforceApi(
            WforceContext(
                engine,
                logins,
                self.canonical_login,
                self.settings.step_up_status,
                self.commit,
                self.stats,
                (ops.confirm_prefix_v4, ops.confirm_prefix_v6),
                self.wforce_counters,
                self.settings.wforce.exact_list_logins,
                self.app_passwords or self.app_password_copy,
            )
        ).mount(router)
        NativeApi(NativeContext(engine, logins, self.fingerprint_password)).mount(router)
        nginx = self.settings.section(NginxSettings)
        NginxApi(NginxContext(engine, logins, self.fingerprint_password), nginx).mount(router)

    def decision_router(self) -> Router:
        """A decision worker's routes: the decision API and /healthz."""
        router = Router({Auth.API: self.auth.check, Auth.PROXY_API: self.auth.check_proxy})
        self._mount_decisions(router, OpsSettings.of(self.settings))
        router.add("GET", "/healthz", lambda r: json_response({"status": "ok"}), auth=Auth.PUBLIC)
        return router

    async def serve_decisions(self, sockets: list[socket.socket], control: Control) -> None:
        """A decision worker's life: answer on the primary's sockets, say so on the control
        channel, hand the primary the app-password uses seen, stop on SIGTERM or when the
        primary is gone."""
        self.app = HttpApp(
            self.decision_router(),
            self.settings.server.max_body_bytes,
            ConnectionLimits.of(self.settings.server),
        )
        self.app.adopt(sockets)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Only SIGTERM, from the primary: a terminal's Ctrl-C reaches every process of the
        # group, and the primary, not each worker, decides the order of the stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        housekeeping, collecting = self._start_running(loop)
        live = LiveStats(self.engine)  # the primary's dashboard shows what this worker does
        self.engine.listeners.append(live.listener)
        control.send({"ready": os.getpid()})
        log.info(
            "decision worker %d listening (data in %s; decision core: %s)",
            self.worker,
            self.node_dir,
            compiled_core(),
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            live.tick()
            control.send({"figures": live.figures(os.getpid(), control.tops_wanted())})
            if self.app_password_copy is not None:
                self.app_password_copy.refresh()
                uses = self.app_password_copy.take_uses()
                if uses:
                    control.send({"uses": uses})
            if control.broken or not control.alive():
                log.warning("decision worker %d: the primary is gone, stopping", self.worker)
                stop.set()
        housekeeping.cancel()
        collecting.cancel()
        await self.app.stop()
        if self.app_password_copy is not None:
            control.send({"uses": self.app_password_copy.take_uses()})
        control.send({"figures": live.figures(os.getpid(), tops=False)})
        control.close()
        self.close()

    async def serve(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        # [tail] files, validated before listening
        tail = tail_plan(TailContext(self.engine, self.settings, self.data_dir))
        self.app = HttpApp(
            self.router(),
            self.settings.server.max_body_bytes,
            ConnectionLimits.of(self.settings.server),
        )
        try:
            bound = await self.app.start(host, port)
        except OSError as exc:
            self.close()
            raise StartupError(listen_error(host, port, exc)) from None
        if self.workers is not None:  # bound and started before "listening" is said
            workers = self.workers.count
            decision_port = self.settings.server.decision_port
            try:
                bound_decisions = self.workers.bind(host, decision_port)
            except OSError as exc:
                await self.app.stop()
                self.close()
                setting = "[server] decision_port"
                raise StartupError(listen_error(host, decision_port, exc, setting)) from None
            try:
                await self.workers.start()
            except WorkerError as exc:
                await self.app.stop()
                self.close()
                raise StartupError(str(exc)) from None
            log.info("%d decision workers ready on %s port %d", workers, host, bound_decisions)
            print(
                f"decision workers ({workers}) listening on http://{host}:{bound_decisions}/",
                flush=True,
            )
        if self.postfix is not None:  # bound before "listening" is said: all or nothing
            try:
                where = await self.postfix.start()
            except ListenError as exc:
                await self.app.stop()
                self.close()
                raise StartupError(f"[postfix] {exc}") from None
            log.info("postfix policy service listening on %s", ", ".join(where))
            print(f"postfix policy service listening on {', '.join(where)}", flush=True)
        log.info(
            "rempart %s listening on http://%s:%d/ (data in %s; decision core: %s)",
            __version__,
            host,
            bound,
            self.data_dir,
            compiled_core(),
        )
        print(f"rempart listening on http://{host}:{bound}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        housekeeping, collecting = self._start_running(loop)
        shedding = None
        if self.shed_controller is not None:
            shedding = asyncio.ensure_future(self.shed_controller.run(stop))
        feeding = None
        if self.hostile_feed is not None:
            feeding = asyncio.ensure_future(self.hostile_feed.run(stop))
        standing = None
        if self.standing_feed is not None:
            standing = asyncio.ensure_future(self.standing_feed.run(stop))
        tailing = tail(stop) if tail is not None else None  # log tailing in this process
        nft = asyncio.ensure_future(self.nft_sync.run(stop)) if self.nft_sync else None
        watching = asyncio.ensure_future(self.workers.run(stop)) if self.workers else None
        await stop.wait()
        if watching is not None:
            await watching  # the workers stopped: their last reports are in Redis
        housekeeping.cancel()
        collecting.cancel()
        if tailing is not None:
            await asyncio.wait_for(tailing, 5)
        if shedding is not None:
            await asyncio.wait_for(shedding, 5)
        if feeding is not None:
            await asyncio.wait_for(feeding, 5)
        if standing is not None:
            await asyncio.wait_for(standing, 5)
        if self.postfix is not None:
            await self.postfix.stop()
        if nft is not None:
            await asyncio.wait_for(nft, self.nft_sync.settings.timeout_s + 5)
        await self.app.stop()
        self.close()

    def _start_running(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.Future[None], asyncio.Future[None]]:
        """What every serving process starts once it answers: peers' records applied on this
        loop, the start-up objects frozen out of the collector's sight, and the housekeeping
        and young-collection tasks (returned, for the stop to cancel)."""
        if self.replication is not None:
            self.replication.attach(loop)
        gc.freeze()  # everything loaded at start (lists, familiarity, corpus) stays
        gc.set_threshold(50_000, 20, 100)
        return (
            asyncio.ensure_future(self._housekeeping()),
            asyncio.ensure_future(self._collect_young()),
        )

    async def _collect_young(self) -> None:
        """Every `YOUNG_COLLECTION_S`: collect the youngest objects, then freeze the survivors
        out of the collector's sight. What survives is tracked keys' state (sketches, derived
        keys, fetcher records: long-lived, never cyclic), and frozen objects are still freed by
        reference counting when the LRU drops them. A collection then walks only the objects
        made since the last one, not the 50,000-object generation the automatic one met under
        a varying load (75,000 new survivors a second: 15-44 ms pauses, once a second); without
        any freezing, every full collection would walk all tracked keys (100+ ms at a million).
        The pause is the tail of every request that waits behind it, so it is kept short
        rather than rare: at 0.1 s the varying-key p99 was 6.8-8.9 ms, at 0.025 s 5.3-5.5 ms
        for the same throughput (docs/benchmarks.md, "Eighth round")."""
        while True:
            await asyncio.sleep(YOUNG_COLLECTION_S)
            gc.collect(0)
            gc.freeze()

    async def _housekeeping(self) -> None:
        """Once a second: close campaign-detector ticks, start due checkpoints; every 30 s: pick
        up a new leak ingest."""
        loop = asyncio.get_running_loop()
        beat = 0
        while True:
            await asyncio.sleep(1.0)
            beat += 1
            self.engine.tick()
            self.journal_operators()
            if beat % self._save_every == 0:
                self.save_detector()
            checkpoints = self.checkpointer
            if checkpoints is not None and (
                checkpoints.due or (checkpoints.every and beat % checkpoints.every == 0)
            ):
                checkpoints.start_save()
            flush_every = max(1, round(self.app_password_settings.last_use_flush_s))
            if self.app_passwords is not None and beat % flush_every == 0:
                self.app_passwords.flush_uses()
            reload = getattr(self.leaks, "reload", None)
            if reload is not None and beat % 30 == 0:
                try:
                    await loop.run_in_executor(None, reload)
                except Exception:
                    log.exception("leak corpus reload failed; keeping the loaded one")

    def close(self) -> None:
        self.save_detector()
        self.engine.save_learned(time.time())
        if self.checkpointer is not None:
            try:
                self.checkpointer.save_now()
            except Exception:  # the stores and the journal below must still close
                log.exception("the counter checkpoint was not written at stop")
        self.webhooks.close()
        if self.app_passwords is not None:
            self.app_passwords.close()
        if self.app_password_copy is not None:
            self.app_password_copy.close()
        if self.journal is not None:
            self.journal.close()
        if self.replication is not None:
            self.replication.close()
        self.store.close()
        close_leaks = getattr(self.leaks, "close", None)
        if self._owns_leaks and close_leaks is not None:
            close_leaks()  # writes the queued first sightings of exposed accounts


def open_leak_corpus(settings: Settings, data_dir: Path, shared: bool = False) -> LeakOracle | None:
    """The leak corpus of this data directory (empty until `rempart leaks ingest` fills it);
    `shared`: mapped from its files, one copy for every process of the host."""
    from rempart.breach.corpus import LeakCorpus

    return LeakCorpus(data_dir, BreachSettings.of(settings), shared)


def listen_error(
    host: str, port: int, exc: OSError, setting: str = "--port or [server] port"
) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: the host name does not resolve ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: the port is already in use "
            f"(another rempart or program; choose another with {setting})"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}:{port}: {host} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {host}:{port}: permission denied (ports below 1024 need root)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def run(settings: Settings, data_dir: str, host: str, port: int, config_text: str = "") -> None:
    """`rempart serve`: private files, the data directory locked for this process, then serve."""
    private_umask()
    path = prepare(data_dir)
    holder = lock(path)  # held until the process exits; the kernel drops it even on kill -9
    password, generated = resolve_api_password(settings, path)
    if generated:
        print(
            f"API password generated and stored in {path / 'api-password'} (mode 0600): {password}",
            flush=True,
        )
    try:
        service = Service(settings, path, password, config_text=config_text)
        if sys.platform == "win32":  # uvloop is a dependency everywhere else
            asyncio.run(service.serve(host, port))
        else:
            import uvloop

            uvloop.run(service.serve(host, port))
    finally:
        holder.release()
