"""Good standing fed to HAProxy: sources a login recently succeeded from are served first.

`StandingFeed` is an engine listener (it queues successful reports and block-list additions,
nothing more, on the decision path) and a loop in `rempart serve` that keeps HAProxy's
``standing.map`` equal to the `StandingSet` through the runtime API (``add``/``set``/``del
map`` of the differences, batched, no reload), and the map file current for a restarted
HAProxy. A restarted Rempart reads its marks back from that file.

Why a server-side map rather than a client-held token: a client cannot forge or prolong an
entry of a map it never sees, and each entry carries its end (``until``), which HAProxy
compares with its own clock: an expired mark counts as no mark even when Rempart is down.
The mark is earned by a success the login backend reported; a success a policy refused, or
one from an address shared by more than `max_logins` accounts, earns none; a block-list
entry covering the address takes it away.

HAProxy failures follow the block-list feed (`shed/hostile_feed.py`): logged once per episode,
the desired state kept, a full resync (``show map`` compared) at start, after a failure and
when HAProxy's pid changed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from asyncio import FIRST_COMPLETED
from dataclasses import dataclass
from pathlib import Path

from rempart.engine.events import EngineEvent, ListAdded, Reported
from rempart.model import ListName
from rempart.shed.config import ShedSettings
from rempart.shed.edge_set import Net
from rempart.shed.feed_settings import StandingSettings
from rempart.shed.hostile_feed import _check, batches
from rempart.shed.runtime import HAProxyRuntime, RuntimeUnavailable
from rempart.shed.standing_map import STANDING_MAP, read_standing, write_standing
from rempart.shed.standing_set import StandingSet

log = logging.getLogger("rempart.shed")


@dataclass(slots=True)
class StandingCounters:
    """Plain counters, read by the metrics collector."""

    earned: int = 0  # successful reports that counted
    revoked: int = 0  # sources that lost standing to a block
    pushed: int = 0  # map commands applied to HAProxy
    resyncs: int = 0
    failures: int = 0
    file_errors: int = 0
    runtime_ok: bool = False


def map_entries(show_map: str) -> dict[str, str]:
    """``key -> value`` of a ``show map`` answer (lines ``<ref> <key> <value>``)."""
    entries: dict[str, str] = {}
    for line in show_map.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith("0x"):
            entries[parts[1]] = parts[2]
    return entries


def granularity(ttl: float) -> int:
    """Seconds the end of a mark is rounded up to: a minute for an hour's ttl, 1 s for short
    test ttls; a success within the same step changes nothing in HAProxy."""
    return max(1, min(60, int(ttl // 60)))


class StandingFeed:
    """Keeps one HAProxy's ``standing.map`` equal to the sources in good standing."""

    def __init__(
        self,
        shed: ShedSettings,
        settings: StandingSettings,
        runtime: HAProxyRuntime | None = None,
        now: float | None = None,
    ) -> None:
        self.settings = settings
        self.map_dir = Path(shed.haproxy.map_dir)
        self.map_file = str(self.map_dir / STANDING_MAP)
        self.runtime = runtime or HAProxyRuntime(shed.haproxy.runtime_socket)
        self.counters = StandingCounters()
        self.protocols = frozenset(settings.protocols)
        self.standing = StandingSet(
            settings.ttl, settings.max_logins, granularity(settings.ttl), settings.max_sources
        )
        now = time.time() if now is None else now
        for key, until in read_standing(self.map_dir).items():
            self.standing.restore(key, until, now)
        self.standing.take_touched()  # the first exchange is a full resync
        self._events: collections.deque[tuple[str, str, float] | Net] = collections.deque()
        self._applied: dict[str, str] | None = None  # what HAProxy holds; None: resync
        self._pid = ""
        self._file_dirty = True
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    # --- the engine side -------------------------------------------------------------------------
    def listener(self, event: EngineEvent) -> None:
        """Engine listener: queue successes and blocks; wake the loop only for a block (new
        standing waits for the next sweep, so a burst of successes is one batch)."""
        match event:
            case Reported(outcome=outcome, attempt=attempt) if (
                outcome.success and not outcome.policy_reject
            ):
                if self.protocols and attempt.protocol.value not in self.protocols:
                    return
                self._events.append((attempt.ip, attempt.login, event.at))
                return
            case ListAdded(list=ListName.BLOCK, entry=entry) if entry.kind in ("ip", "netmask"):
                try:
                    self._events.append(Net.parse(entry.value))
                except ValueError:
                    return
            case _:
                return
        wake, loop = self._wake, self._loop
        if wake is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def _drain(self) -> None:
        events, standing = self._events, self.standing
        while events:
            event = events.popleft()
            if isinstance(event, Net):
                self.counters.revoked += standing.revoke(event)
            else:
                standing.success(*event)
                self.counters.earned += 1

    # --- the HAProxy side ------------------------------------------------------------------------
    async def _send(self, commands: list[str]) -> None:
        for batch in batches(commands, self.settings.batch_bytes):
            _check(await self.runtime.command(*batch))
        self.counters.pushed += len(commands)

    async def _haproxy_pid(self) -> str:
        for line in (await self.runtime.command("show info")).splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        raise RuntimeUnavailable("HAProxy's 'show info' gave no Pid")

    def _commands(self, keys: set[str], applied: dict[str, str]) -> list[str]:
        commands = []
        for key in sorted(keys):
            until = self.standing.get(key)
            held = applied.get(key)
            if until is None:
                if held is not None:
                    commands.append(f"del map {self.map_file} {key}")
            elif held is None:
                commands.append(f"add map {self.map_file} {key} {until}")
            elif held != str(until):
                commands.append(f"set map {self.map_file} {key} {until}")
        return commands

    def _applied_after(self, keys: set[str], applied: dict[str, str]) -> None:
        for key in keys:
            until = self.standing.get(key)
            if until is None:
                applied.pop(key, None)
            else:
                applied[key] = str(until)

    async def _resync(self) -> None:
        present = map_entries(await self.runtime.command(f"show map {self.map_file}"))
        self.standing.take_touched()  # the full comparison covers them
        keys = set(present) | set(self.standing.desired())
        await self._send(self._commands(keys, present))
        self._applied_after(keys, present)
        self._applied = present
        self.counters.resyncs += 1

    async def _push(self, applied: dict[str, str]) -> None:
        touched = self.standing.take_touched()
        if not touched:
            return
        self._file_dirty = True
        try:
            await self._send(self._commands(touched, applied))
        except RuntimeUnavailable:
            self.standing.give_back(touched)
            raise
        self._applied_after(touched, applied)

    async def sync_once(self, now: float | None = None, *, check: bool = False) -> None:
        """Apply queued events and expiry to HAProxy; never raises for HAProxy failures."""
        now = time.time() if now is None else now
        self._drain()
        self.standing.expire(now)
        try:
            if check:
                pid = await self._haproxy_pid()
                if pid != self._pid:
                    self._pid = pid
                    self._applied = None
            if self._applied is None:
                self._file_dirty = True
                await self._resync()
            else:
                await self._push(self._applied)
        except RuntimeUnavailable as exc:
            if self.counters.runtime_ok or self.counters.failures == 0:
                log.warning("shed standing: %s; retrying, a full resync follows", exc)
            self.counters.runtime_ok = False
            self.counters.failures += 1
            self._applied = None
            self._pid = ""
        else:
            self.counters.runtime_ok = True
        if self._file_dirty:
            await self._write_file()

    async def _write_file(self) -> None:
        marks = self.standing.desired()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, write_standing, self.map_dir, marks)
        except OSError as exc:
            self.counters.file_errors += 1
            log.warning("shed standing: cannot write %s: %s", self.map_file, exc)
            return
        self._file_dirty = False

    async def run(self, stop: asyncio.Event) -> None:
        """Sync every `sweep_interval` and at once on a block, until `stop`."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = wake = asyncio.Event()
        next_check = 0.0
        stopping = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            wake.clear()
            started = time.monotonic()
            check = started >= next_check
            if check:
                next_check = started + self.settings.check_interval
            try:
                await self.sync_once(check=check)
            except Exception:  # a bug must not end the feed
                log.exception("shed standing: sync failed")
            waking = asyncio.ensure_future(wake.wait())
            await asyncio.wait(
                (waking, stopping),
                timeout=self.settings.sweep_interval,
                return_when=FIRST_COMPLETED,
            )
            waking.cancel()
        stopping.cancel()
