"""The sync: keeps the nftables table equal to the lists, from engine events or a poller.

The desired state is the lists (`Wanted`); what nft holds is tracked in `installed`. Changes
mark elements dirty and are applied in bounded batches, coalesced for `batch_ms`. A failed
batch changes nothing (one nft transaction) and is not retried element by element: its
elements stay dirty and the next step is a full resync, which regenerates the whole table from
the lists and heals whatever drifted; while nft keeps failing it is retried with backoff, and
nothing is lost because the lists, not a queue, are the truth. A full resync also runs at start,
every `resync_s`, and when the periodic check finds the chain gone (`nft flush ruleset`).

`listener` runs on the decision path: it only updates dicts. nft runs in a subprocess awaited by
`run`, so the event loop never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import TYPE_CHECKING

from rempart.engine.events import EngineEvent, ListAdded, ListRemoved
from rempart.engine.lists import ListEntry
from rempart.firewall.ruleset import CHAIN, SETS, Batch, Element, SetName, element_of, table_script
from rempart.firewall.runner import NftError, NftRunner
from rempart.firewall.settings import NftSettings
from rempart.firewall.wanted import Key, Wanted
from rempart.model import ListName

if TYPE_CHECKING:
    from rempart.engine.engine import Engine

log = logging.getLogger(__name__)

Source = Callable[[], Iterable[tuple[ListName, ListEntry]]]
MAX_BACKOFF_S = 60.0
# An installed element this close to its kernel timeout is taken as gone and never deleted
# (the delete could reach nft after the kernel dropped it and fail the batch). Networks are
# retired by `Wanted` a second before their expiry, so their deletes come well before this.
ADDRESS_MARGIN_S = 1.0
NET_DELETE_MARGIN_S = 0.25
READ_SLICE = 5_000  # entries read between two yields to the event loop during a resync


def engine_source(engine: Engine) -> Source:
    """The live entries of both lists of an engine in this process."""

    def entries() -> Iterable[tuple[ListName, ListEntry]]:
        now = time.time()
        return [(which, e) for which in ListName for e in engine.list_entries(which, now)]

    return entries


class NftSync:
    """One table kept equal to a source of list entries: `put` / `remove` (or `listener`, for
    engine events) record changes, `run` applies them until stopped."""

    def __init__(
        self,
        settings: NftSettings,
        source: Source,
        runner: NftRunner | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.source = source  # every live entry of both lists (the truth, read at resync)
        self.runner = runner or NftRunner(settings.command, settings.timeout_s)
        self.clock = clock
        self.wanted = Wanted()
        self.installed: dict[SetName, dict[Element, float]] = {name: {} for name in SETS}
        self.need_resync = True
        # changes made while a resync reads the lists (applied to what it read, in order)
        self._replay: list[tuple[bool, ListName, ListEntry]] | None = None
        # figures (read by the metrics collector)
        self.elements_synced = 0  # element additions and deletions nft accepted
        self.batches = 0
        self.resyncs = 0
        self.failures = 0
        self.last_sync = 0.0  # UNIX time of the last successful nft batch
        self.failing_since = 0.0

    # --- the changes ---------------------------------------------------------------------------
    def listener(self, event: EngineEvent) -> None:
        match event:
            case ListAdded(list=which, entry=entry):
                self.put(which, entry)
            case ListRemoved(list=which, entry=entry):
                self.remove(which, entry)
            case _:
                pass

    def put(self, which: ListName, entry: ListEntry) -> None:
        if self._replay is not None:
            self._replay.append((True, which, entry))
        element = element_of(which, entry)
        if element is not None:
            self.wanted.put(*element, entry.expires)

    def remove(self, which: ListName, entry: ListEntry) -> None:
        if self._replay is not None:
            self._replay.append((False, which, entry))
        element = element_of(which, entry)
        if element is not None:
            self.wanted.discard(*element)

    @property
    def pending(self) -> int:
        return len(self.wanted.dirty)

    @property
    def installed_count(self) -> int:
        return sum(map(len, self.installed.values()))

    # --- applying ------------------------------------------------------------------------------
    def next_batch(self, now: float) -> tuple[Batch, list[Key]]:
        """Up to `batch_max` dirty elements as one batch of nft changes, and the keys taken
        (put back if the batch fails)."""
        dirty = self.wanted.dirty
        keys = list(islice(dirty, self.settings.batch_max))
        batch = Batch()
        for key in keys:
            del dirty[key]
            name, net = key
            target = self.wanted.target(name, net, now)
            current = self.installed[name].get(net)
            if current and current <= now + (
                NET_DELETE_MARGIN_S if name.nets else ADDRESS_MARGIN_S
            ):
                current = None  # gone from the kernel, or about to be: never deleted
                if target is None:
                    del self.installed[name][net]
            if target == current:
                continue
            if current is not None:
                batch.delete(name, net)
            if target is not None:
                batch.add(name, net, target)
        return batch, keys

    async def flush(self) -> bool:
        """Apply one batch of the dirty elements; False when nft refused it."""
        now = self.clock()
        batch, keys = self.next_batch(now)
        if not len(batch):
            return True
        try:
            await self.runner.apply(batch.script(self.settings.table, now))
        except NftError as exc:
            for key in keys:
                self.wanted.dirty.setdefault(key, None)
            self._failed(f"a batch of {len(batch)} changes", exc)
            self.need_resync = True
            return False
        for name, nets in batch.deletes.items():
            for net in nets:
                self.installed[name].pop(net, None)
        for name, items in batch.adds.items():
            self.installed[name].update(items)
        self._succeeded(len(batch))
        return True

    async def resync(self, routine: bool = False) -> bool:
        """Regenerate the whole table from the lists (one transaction); False when nft
        refused. A `routine` (periodic) one is logged at debug level."""
        now = self.clock()
        self.wanted = await self._read_lists(now)
        elements = await self._installable(now)
        try:
            script = await asyncio.to_thread(table_script, self.settings, elements, now)
            await self.runner.apply(script)
        except NftError as exc:
            self._failed("the full resync", exc)
            # what changes meanwhile is in the lists, read again at the next attempt
            return False
        self.installed = elements
        self.need_resync = False
        self.resyncs += 1
        self._succeeded(sum(map(len, elements.values())))
        log.log(
            logging.DEBUG if routine else logging.INFO,
            "nftables table inet %s regenerated: %d elements",
            self.settings.table,
            self.installed_count,
        )
        return True

    async def _installable(self, now: float) -> dict[SetName, dict[Element, float]]:
        """`Wanted.installable`, a slice at a time (changes made meanwhile are marked dirty
        and applied after the resync)."""
        out: dict[SetName, dict[Element, float]] = {}
        target = self.wanted.target
        for name, entries in self.wanted.entries.items():
            items = list(entries.items())
            chosen = out[name] = {}
            for start in range(0, len(items), READ_SLICE):
                for element, expires in items[start : start + READ_SLICE]:
                    if target(name, element, now) is not None:
                        chosen[element] = expires
                await asyncio.sleep(0)
        return out

    async def _read_lists(self, now: float) -> Wanted:
        """The desired state rebuilt from the source, a slice at a time so that the event loop
        keeps serving (about 5 µs per entry); list changes made meanwhile are replayed on it."""
        self._replay = []
        try:
            fresh = Wanted()
            for i, (which, entry) in enumerate(self.source(), 1):
                if entry.expires == 0 or entry.expires > now:
                    element = element_of(which, entry)
                    if element is not None:
                        fresh.put(*element, entry.expires)
                if i % READ_SLICE == 0:
                    await asyncio.sleep(0)
            for added, which, entry in self._replay:
                element = element_of(which, entry)
                if element is None:
                    continue
                if added:
                    fresh.put(*element, entry.expires)
                else:
                    fresh.discard(*element)
        finally:
            self._replay = None
        fresh.dirty.clear()  # all of it goes into the regenerated table
        return fresh

    async def check(self) -> None:
        """Ask for a resync when the chain is gone (flushed ruleset, reloaded firewall)."""
        try:
            present = await self.runner.has_chain(self.settings.table, CHAIN)
        except NftError as exc:
            self._failed("the table check", exc)
            return
        if not present:
            log.warning("nftables table inet %s is gone; resyncing", self.settings.table)
            self.need_resync = True

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: resync, then apply changes as they come; the table is left in place
        (blocked sources stay blocked while Rempart restarts; the next start regenerates it)."""
        settings = self.settings
        backoff = settings.retry_s
        next_check = next_resync = 0.0
        while not stop.is_set():
            tick = time.monotonic()
            routine = False
            if settings.resync_s and tick >= next_resync and not self.need_resync:
                self.need_resync = routine = True
            if self.need_resync:
                if await self.resync(routine):
                    backoff = settings.retry_s
                    next_resync = tick + settings.resync_s
                    next_check = tick + settings.check_s
                else:
                    await pause(stop, backoff)
                    backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            self.wanted.expire(self.clock())
            while self.wanted.dirty and not stop.is_set():
                if not await self.flush():
                    break
                if len(self.wanted.dirty) < settings.batch_max:
                    break  # a partial batch: coalesce what comes next
            if self.need_resync:
                await pause(stop, backoff)
                continue
            if tick >= next_check:
                next_check = tick + settings.check_s
                await self.check()
            await pause(stop, settings.batch_ms / 1000)

    def _failed(self, what: str, exc: NftError) -> None:
        self.failures += 1
        now = time.monotonic()
        if not self.failing_since or now - self.failing_since >= 60:
            log.warning("nftables: %s failed (retrying; the lists are kept): %s", what, exc)
            self.failing_since = now

    def _succeeded(self, elements: int) -> None:
        if self.failing_since:
            log.info("nftables: working again")
            self.failing_since = 0.0
        self.elements_synced += elements
        self.batches += 1
        self.last_sync = self.clock()


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
