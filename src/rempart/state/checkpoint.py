"""Counter checkpoints: the engine's tracked keys and counters in `<data_dir>/counters.bin`, so a
restarted node goes on counting where it stopped instead of giving every source a fresh budget.

`Checkpointer` writes one every `[state] checkpoint_seconds` and at a clean stop, and restores
it at start when it is younger than the longest counter window. The periodic ones are copied
on the event loop a few thousand keys at a time between decisions (`CounterCopy`: about a
millisecond per step), then written by a thread: no step stalls decisions for long, and nothing
is forked. (They used to be written by a forked child, as Redis's BGSAVE does; on this
project's machines the fork stalled the loop for 35-55 ms at 450 MB and the copy-on-write faults
that followed for 100-180 ms more: `benchmarks/counter_checkpoint.py` measures the copy.) The file is replaced atomically (a temporary file, fsync, rename), so a crash leaves the
previous checkpoint; a torn, foreign or inconsistent file is reported and ignored (the node
starts with empty counters, as it would without one).

With `[state] backend = "redis"` there is no checkpoint: a starting node warms its counters
from the shared report stream, its own reports from before the restart included.

Layout: `MAGIC`, a 4-byte little-endian header length, a JSON header (format version, byte
order, time taken, counter shape, each section's name, length and, for a section stored as zero
runs, stored length), the sections, then a 32-byte BLAKE2b digest of everything before it. The
compiled core stores sections as zero runs (`rempart.engine.packing`: counter rows and sketch
bitmaps are mostly zero, and the file of 500,000 keys is a fraction of their 160 MB); the
pure-Python fallback stores them whole, which costs it less; both read either. Version 1
files, whose sections were all stored whole, are still read.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import logging
import os
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.engine.countercopy import CounterCopy
from rempart.engine.counterstate import CounterState, PackedCounters, Section, SketchSlots, pack
from rempart.engine.distinct import unpack_sketches
from rempart.engine.events import CountersReset, EngineEvent
from rempart.engine.packing import expand

if TYPE_CHECKING:
    from rempart.engine.engine import Engine

log = logging.getLogger(__name__)

FILE_NAME = "counters.bin"
MAGIC = b"rempart counters\n"
VERSION = 2
READS = (1, 2)  # version 1: sections stored whole
_DIGEST = 32
_FAMILIES = ("peers", "users", "established")
_SKETCH_PARTS = ("slots", "epochs", "lengths", "data")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, and why."""


def sections_of(packed: PackedCounters) -> list[tuple[str, Section]]:
    """The checkpoint's sections, named, in the order of the file."""
    # Keys as one text and their lengths: a login may hold a lone surrogate (read from a log
    # with surrogateescape), which JSON encoders refuse.
    sections: list[tuple[str, Section]] = [
        ("key_lengths", packed.key_lengths),
        ("key_text", packed.key_text),
        ("slots", packed.slots),
        ("ring_cells", packed.rings[0]),
        ("ring_epochs", packed.rings[1]),
        ("pair_cells", packed.pairs[0]),
        ("pair_epochs", packed.pairs[1]),
    ]
    for family, parts in zip(_FAMILIES, packed.sketches, strict=True):
        sections.extend(
            (f"{family}_{part}", body) for part, body in zip(_SKETCH_PARTS, parts, strict=True)
        )
    return sections


def encode(state: CounterState | PackedCounters) -> list[bytes]:
    """The checkpoint file's bytes, in pieces."""
    packed = pack(state) if isinstance(state, CounterState) else state
    sections = sections_of(packed)
    header = orjson.dumps(
        {
            "version": VERSION,
            "byteorder": sys.byteorder,
            "taken_at": packed.taken_at,
            "shape": list(packed.shape),
            # [name, length] for a section stored whole, [name, length, stored length] for one
            # stored as zero runs.
            "sections": [
                [name, body.size, sum(map(len, body.pieces))] if body.runs else [name, body.size]
                for name, body in sections
            ],
        }
    )
    pieces: list[bytes] = [MAGIC, len(header).to_bytes(4, "little"), header]
    for _, body in sections:
        pieces.extend(body.pieces)
    digest = hashlib.blake2b(digest_size=_DIGEST)
    for piece in pieces:
        digest.update(piece)
    pieces.append(digest.digest())
    return pieces


def write(path: Path, state: CounterState | PackedCounters) -> int:
    """Replace the checkpoint at `path` atomically; returns its size in bytes."""
    pieces = encode(state)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as out:
        for piece in pieces:
            out.write(piece)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return sum(len(piece) for piece in pieces)


def _sketches(sections: dict[str, Any], family: str, size: int, capacity: int) -> SketchSlots:
    packed = tuple(bytes(sections[f"{family}_{part}"]) for part in _SKETCH_PARTS)
    try:
        return unpack_sketches((packed[0], packed[1], packed[2], packed[3]), size, capacity)
    except ValueError as exc:
        raise CheckpointError(f"the {family} sketches: {exc}") from None


def _keys(lengths_raw: bytes | memoryview, text_raw: bytes | memoryview) -> list[str]:
    lengths = array("I")
    try:
        lengths.frombytes(lengths_raw)
        text = str(text_raw, "utf-8", "surrogatepass")
    except ValueError as exc:  # UnicodeDecodeError included
        raise CheckpointError(f"unreadable tracked keys ({exc})") from None
    if sum(lengths) != len(text):
        raise CheckpointError("the tracked keys' lengths do not add up to their text")
    ends = list(itertools.accumulate(lengths))
    return list(map(text.__getitem__, map(slice, [0, *ends[:-1]], ends)))


def decode(raw: bytes) -> CounterState:
    """The state a checkpoint file holds; CheckpointError naming what is wrong."""
    if not raw.startswith(MAGIC):
        raise CheckpointError("not a Rempart counter checkpoint")
    if len(raw) < len(MAGIC) + 4 + _DIGEST:
        raise CheckpointError("truncated")
    view = memoryview(raw)  # sections are read in place, not copied
    body, digest = view[:-_DIGEST], view[-_DIGEST:]
    if hashlib.blake2b(body, digest_size=_DIGEST).digest() != digest:
        raise CheckpointError("damaged or truncated (its digest does not match)")
    at = len(MAGIC) + 4
    length = int.from_bytes(raw[len(MAGIC) : at], "little")
    try:
        header: dict[str, Any] = orjson.loads(view[at : at + length])
        version, byteorder = header["version"], header["byteorder"]
        taken_at, shape = float(header["taken_at"]), tuple(int(n) for n in header["shape"])
        layout: list[tuple[str, list[int]]] = [
            (str(name), [int(size) for size in sizes]) for name, *sizes in header["sections"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"unreadable header ({exc})") from None
    if version not in READS:
        raise CheckpointError(
            f"format version {version!r}, this Rempart reads {', '.join(map(str, READS))}"
        )
    if byteorder != sys.byteorder:
        raise CheckpointError(f"written on a {byteorder}-endian machine")
    if len(shape) != 8:
        raise CheckpointError(f"a counter shape of {len(shape)} figures")
    # A section stored whole is read in place; one stored as zero runs is the bytes `expand`
    # made, which `bytes()` below then takes as they are instead of copying them again.
    sections: dict[str, bytes | memoryview] = {}
    at += length
    for name, sizes in layout:  # [length]: stored whole; [length, stored length]: zero runs
        if not 1 <= len(sizes) <= (2 if version >= 2 else 1):
            raise CheckpointError(f"section {name!r} with {len(sizes)} lengths")
        size, stored = sizes[0], sizes[-1]
        if size < 0 or stored < 0 or name in sections:
            raise CheckpointError(f"section {name!r} of {size} bytes")
        if at + stored > len(body):
            raise CheckpointError("its sections do not add up to its length")
        if len(sizes) == 1:
            sections[name] = view[at : at + size]
        else:
            try:
                sections[name] = expand(view[at : at + stored], size)
            except (ValueError, MemoryError) as exc:  # a size no machine holds: a made-up file
                raise CheckpointError(f"section {name!r}: {exc or 'too large'}") from None
        at += stored
    if at != len(body):
        raise CheckpointError("its sections do not add up to its length")
    try:
        keys = _keys(sections["key_lengths"], sections["key_text"])
        capacity = len(sections["ring_epochs"]) // 8  # slots of the ring slab
        sketches = (
            _sketches(sections, "peers", shape[4], capacity),
            _sketches(sections, "users", shape[6], capacity),
            _sketches(sections, "established", shape[6], capacity),
        )
        return CounterState(
            taken_at=taken_at,
            shape=shape,
            keys=keys,
            slots=bytes(sections["slots"]),
            rings=(bytes(sections["ring_cells"]), bytes(sections["ring_epochs"])),
            pairs=(bytes(sections["pair_cells"]), bytes(sections["pair_epochs"])),
            sketches=sketches,
        )
    except KeyError as exc:
        raise CheckpointError(f"section {exc} missing") from None


def longest_window(engine: Engine) -> float:
    """Seconds after which every counter a checkpoint holds has expired."""
    e = engine
    return float(max(e.width * e.size, e.dwidth * e.dsize, e.swidth * e.ssize))


# Keys copied per turn of the event loop: about a millisecond of the engine's thread.
COPY_STEP = 1024


class Checkpointer:
    """Writes the engine's counters to `<data_dir>/counters.bin` and restores them."""

    def __init__(self, engine: Engine, data_dir: Path, interval: float) -> None:
        self.engine = engine
        self.path = data_dir / FILE_NAME
        self.every = max(1, round(interval)) if interval > 0 else 0  # seconds; 0: at stop only
        self.saved_at = 0.0  # when the latest checkpoint written was taken
        self.restored = 0  # keys restored at start
        self.failures = 0  # checkpoints not written (a metric)
        # An operator's counter reset is written at the next second, not the next period: a
        # crash must not bring back the counters of an account the operator just unlocked.
        self.due = False
        self.last_copy: dict[str, float] = {}  # keys, seconds and steps of the latest copy
        self._task: asyncio.Task[None] | None = None  # the periodic checkpoint under way
        self._written = threading.Event()  # no thread is writing a checkpoint
        self._written.set()
        self._lock = threading.Lock()

    def restore(self, now: float) -> int:
        """Track the checkpoint's keys with their counters, if it is recent enough and usable;
        returns how many keys (0 and a log line otherwise)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("cannot read the counter checkpoint %s: %s", self.path, exc)
            return 0
        collecting = gc.isenabled()
        gc.disable()  # hundreds of thousands of long-lived objects: collections would only cost
        try:
            state = decode(raw)
            age = now - state.taken_at
            if age > longest_window(self.engine):
                log.info(
                    "counter checkpoint %s is %.0f s old: every window in it has expired",
                    self.path,
                    age,
                )
                return 0
            self.restored = self.engine.restore_counters(state)
        except ValueError as exc:  # CheckpointError included
            log.warning("counter checkpoint %s not used, counters start empty: %s", self.path, exc)
            return 0
        finally:
            if collecting:
                gc.enable()
        log.info(
            "restored the counters of %d keys from %s (taken %.0f s ago)",
            self.restored,
            self.path,
            max(0.0, age),
        )
        return self.restored

    def status(self) -> dict[str, Any]:
        """For `stats`: the period, the keys restored at start, the latest write, failures."""
        return {
            "every_s": self.every,
            "restored_keys": self.restored,
            "last_written": self.saved_at or None,
            "last_copy": self.last_copy or None,
            "failures": self.failures,
        }

    def listener(self, event: EngineEvent) -> None:
        if isinstance(event, CountersReset):
            self.due = True

    def save_now(self) -> None:
        """Write a checkpoint from the engine's thread (at stop): a periodic one still copying
        is dropped, one being written is waited for."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._written.wait(30)
        self._write(self.engine.counter_state(time.time()))

    def start_save(self) -> None:
        """Start a periodic checkpoint without stalling the event loop: the keys are copied
        `COPY_STEP` at a time between the loop's other work (`CounterCopy`), then a thread
        writes the file. Skipped while the previous one is under way; written at once when no
        event loop runs."""
        if self._task is not None and not self._task.done():
            return
        self.due = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(self.engine.counter_state(time.time()))
            return
        self._task = loop.create_task(self._copy_and_write(loop, time.time()))

    async def _copy_and_write(self, loop: asyncio.AbstractEventLoop, taken_at: float) -> None:
        try:
            started = time.perf_counter()
            copy = CounterCopy(self.engine, taken_at)
            steps = 1
            while not copy.step(COPY_STEP):
                await asyncio.sleep(0)  # decisions waiting go first
                steps += 1
            self.last_copy = {
                "keys": copy.copied,
                "seconds": round(time.perf_counter() - started, 3),
                "steps": steps,
            }
            self._written.clear()
            await loop.run_in_executor(None, self._write_packed, copy.result())
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            log.exception("the counter checkpoint was not written; the previous one stays")

    def _write_packed(self, packed: PackedCounters) -> None:
        try:
            self._write(packed)
        finally:
            self._written.set()

    def _write(self, state: CounterState | PackedCounters) -> None:
        with self._lock:  # the one at stop may start while a periodic one is being written
            if state.taken_at < self.saved_at:
                return
            try:
                write(self.path, state)
            except OSError as exc:
                self.failures += 1
                log.warning("cannot write the counter checkpoint %s: %s", self.path, exc)
                return
            self.saved_at = state.taken_at


class CheckpointCollector(Collector):
    """Prometheus view of the counter checkpoints, read at scrape time."""

    def __init__(self, checkpoints: Checkpointer) -> None:
        self.checkpoints = checkpoints

    def collect(self) -> Iterator[Metric]:
        c = self.checkpoints
        yield GaugeMetricFamily(
            "rempart_counter_checkpoint_last_written_timestamp_seconds",
            "When the latest counter checkpoint written was taken (0: none since start)",
            value=c.saved_at,
        )
        yield CounterMetricFamily(
            "rempart_counter_checkpoint_failures",
            "Counter checkpoints not written (fork, disk or child failures)",
            value=c.failures,
        )
        yield GaugeMetricFamily(
            "rempart_counter_checkpoint_restored_keys",
            "Tracked keys restored from the counter checkpoint at start",
            value=c.restored,
        )
