"""The block list fed to HAProxy: sources refused at the login layer get 403 at the edge.

`HostileFeed` is an engine listener (it queues list events, nothing more, on the decision
path) and a loop in `rempart serve` that keeps HAProxy's ``blocklist.map`` equal to the
`EdgeSet` (block-list addresses and networks minus what allow entries cover) through the
runtime API: ``add map`` / ``del map`` of the differences only, in batches, no reload. The map
file is rewritten after each change so that a restarted or reloaded HAProxy starts from it.

The desired state is the lists, so nothing is lost when HAProxy cannot be reached: the failure
is logged once per episode, the next exchange that works starts with a full resync (``show
map`` compared with the desired keys). A full resync also runs at start and whenever HAProxy's
pid changed (restart or reload). Expired entries are swept every `sweep_interval`. Every
`reconcile_interval` the desired state is rebuilt from the lists themselves, which also hold
changes no event announced here (a Redis peer's entries).

``blocklist.map`` belongs to this feed alone; ``hostile.map`` stays the operator's
(`rempart shed hostile`) and neither touches the other.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rempart.engine.events import EngineEvent, ListAdded, ListRemoved
from rempart.engine.lists import ListEntry
from rempart.model import ListName
from rempart.shed.blocklist_map import BLOCKLIST_MAP, write_blocklist
from rempart.shed.config import ShedSettings
from rempart.shed.edge_set import EdgeSet
from rempart.shed.feed_settings import HostileFeedSettings
from rempart.shed.runtime import REFUSALS, HAProxyRuntime, RuntimeUnavailable

if TYPE_CHECKING:
    from rempart.engine.engine import Engine

log = logging.getLogger("rempart.shed")


@dataclass(slots=True)
class FeedCounters:
    """Plain counters, read by the metrics collector."""

    added: int = 0  # map entries added to HAProxy
    removed: int = 0  # map entries deleted from HAProxy
    resyncs: int = 0
    failures: int = 0  # exchanges with HAProxy that failed
    file_errors: int = 0
    runtime_ok: bool = False
    synced_at: float = 0.0  # when HAProxy last held exactly the desired keys


def _check(answer: str) -> None:
    lowered = answer.lower().replace("key not found", "")
    if any(marker in lowered for marker in REFUSALS):
        raise RuntimeUnavailable(f"HAProxy refused a map command: {answer.strip()[:200]}")


def map_keys(show_map: str) -> set[str]:
    """The keys of a ``show map`` answer (lines ``<ref> <key> <value>``)."""
    keys = set()
    for line in show_map.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith("0x"):
            keys.add(parts[1])
    return keys


def batches(commands: Iterable[str], limit: int) -> Iterable[list[str]]:
    """Commands grouped so that each exchange's line stays under `limit` bytes."""
    batch: list[str] = []
    size = 0
    for command in commands:
        if batch and size + len(command) + 2 > limit:
            yield batch
            batch, size = [], 0
        batch.append(command)
        size += len(command) + 2
    if batch:
        yield batch


def _edge_set(allows: list[ListEntry], blocks: list[ListEntry], now: float) -> EdgeSet:
    edge = EdgeSet()
    # Allows first: each block is then cut once, no allow rescans the blocks.
    for entry in allows:
        edge.add(True, entry, now)
    for entry in blocks:
        edge.add(False, entry, now)
    return edge


class HostileFeed:
    """Keeps one HAProxy's ``blocklist.map`` equal to the engine's block list at the edge."""

    def __init__(
        self,
        engine: Engine,
        shed: ShedSettings,
        settings: HostileFeedSettings,
        runtime: HAProxyRuntime | None = None,
    ) -> None:
        self.settings = settings
        self.map_dir = Path(shed.haproxy.map_dir)
        self.map_file = str(self.map_dir / BLOCKLIST_MAP)
        self.runtime = runtime or HAProxyRuntime(shed.haproxy.runtime_socket)
        self.counters = FeedCounters()
        self._events: collections.deque[ListAdded | ListRemoved] = collections.deque()
        self._applied: set[str] | None = None  # what HAProxy holds; None: unknown, resync
        self._pid = ""
        self._file_dirty = True
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.engine = engine
        self.edge = self._from_lists(time.time())
        self.edge.take_touched()  # the first exchange is a full resync

    # --- the engine side -------------------------------------------------------------------------
    def _from_lists(self, now: float) -> EdgeSet:
        return _edge_set(
            self.engine.list_entries(ListName.ALLOW, now),
            self.engine.list_entries(ListName.BLOCK, now),
            now,
        )

    async def reconcile(self, now: float | None = None) -> int:
        """Rebuild the desired state from the engine's lists, which also hold what no event
        announced (a Redis peer's changes); how many map keys differed. The lists are copied
        on the loop, the set is built on a thread (about 10 µs an entry)."""
        now = time.time() if now is None else now
        self._drain(now)
        allows = self.engine.list_entries(ListName.ALLOW, now)
        blocks = self.engine.list_entries(ListName.BLOCK, now)
        loop = asyncio.get_running_loop()
        fresh = await loop.run_in_executor(None, _edge_set, allows, blocks, now)
        fresh.take_touched()
        differ = self.edge.desired() ^ fresh.desired()
        fresh.give_back(differ | self.edge.take_touched())
        self.edge = fresh
        return len(differ)

    def listener(self, event: EngineEvent) -> None:
        """Engine listener: queue list changes and wake the loop."""
        match event:
            case ListAdded() | ListRemoved():
                self._events.append(event)
            case _:
                return
        wake, loop = self._wake, self._loop
        if wake is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def _drain(self, now: float) -> None:
        events = self._events
        while events:
            event = events.popleft()
            allow = event.list is ListName.ALLOW
            if isinstance(event, ListRemoved):
                self.edge.remove(allow, event.entry.kind, event.entry.value)
            else:
                self.edge.add(allow, event.entry, now)

    # --- the HAProxy side ------------------------------------------------------------------------
    async def _send(self, commands: list[str]) -> None:
        for batch in batches(commands, self.settings.batch_bytes):
            _check(await self.runtime.command(*batch))

    async def _haproxy_pid(self) -> str:
        for line in (await self.runtime.command("show info")).splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        raise RuntimeUnavailable("HAProxy's 'show info' gave no Pid")

    async def _resync(self) -> None:
        present = map_keys(await self.runtime.command(f"show map {self.map_file}"))
        desired = self.edge.desired()
        self.edge.take_touched()  # the full difference covers them
        stale, missing = sorted(present - desired), sorted(desired - present)
        await self._send([f"del map {self.map_file} {key}" for key in stale])
        await self._send([f"add map {self.map_file} {key} 1" for key in missing])
        self._applied = desired
        self.counters.removed += len(stale)
        self.counters.added += len(missing)
        self.counters.resyncs += 1
        if stale or missing:
            log.info(
                "shed blocklist: HAProxy's map resynced (%d added, %d removed, %d held)",
                len(missing),
                len(stale),
                len(desired),
            )

    async def _push(self, applied: set[str]) -> None:
        touched = self.edge.take_touched()
        if not touched:
            return
        edge = self.edge
        stale = sorted(k for k in touched if k not in edge and k in applied)
        missing = sorted(k for k in touched if k in edge and k not in applied)
        self._file_dirty = True
        try:
            await self._send([f"del map {self.map_file} {key}" for key in stale])
            await self._send([f"add map {self.map_file} {key} 1" for key in missing])
        except RuntimeUnavailable:
            edge.give_back(touched)
            raise
        applied.difference_update(stale)
        applied.update(missing)
        self.counters.removed += len(stale)
        self.counters.added += len(missing)

    async def sync_once(self, now: float | None = None, *, check: bool = False) -> None:
        """Apply queued changes and expiry to HAProxy; never raises for HAProxy failures."""
        now = time.time() if now is None else now
        self._drain(now)
        self.edge.expire(now)
        try:
            if check:
                pid = await self._haproxy_pid()
                if pid != self._pid:
                    if self._pid:
                        log.info("shed blocklist: HAProxy restarted (pid %s); resyncing", pid)
                    self._pid = pid
                    self._applied = None
            if self._applied is None:
                self._file_dirty = True
                await self._resync()
            else:
                await self._push(self._applied)
        except RuntimeUnavailable as exc:
            self._failed(exc)
        else:
            if not self.counters.runtime_ok:
                log.info("shed blocklist: HAProxy's map in sync (%d sources)", len(self.edge))
            self.counters.runtime_ok = True
            self.counters.synced_at = now
        if self._file_dirty:
            await self._write_file()

    def _failed(self, exc: RuntimeUnavailable) -> None:
        if self.counters.runtime_ok or self.counters.failures == 0:
            log.warning("shed blocklist: %s; retrying, a full resync follows", exc)
        self.counters.runtime_ok = False
        self.counters.failures += 1
        self._applied = None
        self._pid = ""  # ask again: HAProxy may come back as another process

    async def _write_file(self) -> None:
        keys = self.edge.desired()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, write_blocklist, self.map_dir, keys)
        except OSError as exc:
            self.counters.file_errors += 1
            log.warning("shed blocklist: cannot write %s: %s", self.map_file, exc)
            return
        self._file_dirty = False

    async def run(self, stop: asyncio.Event) -> None:
        """Sync at once, then on every list change and every `sweep_interval`, until `stop`."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = wake = asyncio.Event()
        next_check = 0.0
        next_reconcile = time.monotonic() + self.settings.reconcile_interval
        stopping = asyncio.ensure_future(stop.wait())  # ends a wait at once
        while not stop.is_set():
            wake.clear()
            started = time.monotonic()
            check = started >= next_check
            if check:
                next_check = started + self.settings.check_interval
            try:
                if self.settings.reconcile_interval and started >= next_reconcile:
                    next_reconcile = started + self.settings.reconcile_interval
                    await self.reconcile()
                await self.sync_once(check=check)
            except Exception:  # a bug must not end the edge's feed
                log.exception("shed blocklist: sync failed")
            delay = self.settings.sweep_interval
            deadline = self.edge.next_deadline()
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.time()) + 0.01)
            if self._events:
                continue
            waking = asyncio.ensure_future(wake.wait())
            await asyncio.wait((waking, stopping), timeout=delay, return_when=FIRST_COMPLETED)
            waking.cancel()
        stopping.cancel()
