"""Counter checkpoints: the engine's tracked keys and counters in `<data_dir>/counters.bin`, so a
restarted node goes on counting where it stopped instead of giving every source a fresh budget.

`Checkpointer` writes one every `[state] checkpoint_seconds` and at a clean stop, and restores
it at start when it is younger than the longest counter window. The periodic ones are written
by a forked child, as Redis's BGSAVE does: copying the key table on the event loop would stall
decisions for about 0.1 s per 100,000 keys (walking a scattered table of strings), while a fork
costs the loop a copy of the page tables (`benchmarks/counter_checkpoint.py` measures both).
The file is replaced atomically (a temporary file, fsync, rename), so a crash leaves the
previous checkpoint; a torn, foreign or inconsistent file is reported and ignored (the node
starts with empty counters, as it would without one).

With `[state] backend = "redis"` there is no checkpoint: a starting node warms its counters
from the shared report stream, its own reports from before the restart included.

Layout: `MAGIC`, a 4-byte little-endian header length, a JSON header (format version, byte
order, time taken, counter shape, section names and lengths), the sections, then a 32-byte
BLAKE2b digest of everything before it.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import logging
import os
import signal
import sys
import threading
import time
import warnings
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rempart.engine.counterstate import CounterState, SketchSlots
from rempart.engine.distinct import pack_sketches, unpack_sketches
from rempart.engine.events import CountersReset, EngineEvent

if TYPE_CHECKING:
    from rempart.engine.engine import Engine

log = logging.getLogger(__name__)

FILE_NAME = "counters.bin"
MAGIC = b"rempart counters\n"
VERSION = 1
_DIGEST = 32
_FAMILIES = ("peers", "users", "established")
_SKETCH_PARTS = ("slots", "epochs", "lengths", "data")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, and why."""


def encode(state: CounterState) -> list[bytes]:
    """The checkpoint file's bytes, in pieces."""
    # Keys as one text and their lengths: a login may hold a lone surrogate (read from a log
    # with surrogateescape), which JSON encoders refuse.
    sections: list[tuple[str, bytes]] = [
        ("key_lengths", array("I", map(len, state.keys)).tobytes()),
        ("key_text", "".join(state.keys).encode("utf-8", "surrogatepass")),
        ("slots", state.slots),
        ("ring_cells", state.rings[0]),
        ("ring_epochs", state.rings[1]),
        ("pair_cells", state.pairs[0]),
        ("pair_epochs", state.pairs[1]),
    ]
    for family, found in zip(_FAMILIES, state.sketches, strict=True):
        packed = pack_sketches(found)
        sections.extend(
            (f"{family}_{part}", body) for part, body in zip(_SKETCH_PARTS, packed, strict=True)
        )
    header = orjson.dumps(
        {
            "version": VERSION,
            "byteorder": sys.byteorder,
            "taken_at": state.taken_at,
            "shape": list(state.shape),
            "sections": [[name, len(body)] for name, body in sections],
        }
    )
    pieces = [MAGIC, len(header).to_bytes(4, "little"), header, *(body for _, body in sections)]
    digest = hashlib.blake2b(digest_size=_DIGEST)
    for piece in pieces:
        digest.update(piece)
    pieces.append(digest.digest())
    return pieces


def write(path: Path, state: CounterState) -> int:
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


def _keys(lengths_raw: memoryview, text_raw: memoryview) -> list[str]:
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
        layout = [(str(name), int(size)) for name, size in header["sections"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"unreadable header ({exc})") from None
    if version != VERSION:
        raise CheckpointError(f"format version {version!r}, this Rempart reads {VERSION}")
    if byteorder != sys.byteorder:
        raise CheckpointError(f"written on a {byteorder}-endian machine")
    if len(shape) != 8:
        raise CheckpointError(f"a counter shape of {len(shape)} figures")
    sections: dict[str, memoryview] = {}
    at += length
    for name, size in layout:
        if size < 0 or name in sections:
            raise CheckpointError(f"section {name!r} of {size} bytes")
        sections[name] = view[at : at + size]
        at += size
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


def _child_writes(path: Path, engine: Engine, taken_at: float) -> None:
    """In a forked child, where only this thread exists: write the checkpoint and exit, touching
    nothing else (no logging, no event loop, no store); a failure is said on stderr."""
    code = 1
    try:
        gc.disable()  # a collection would copy the parent's pages for nothing
        for number in (signal.SIGINT, signal.SIGTERM):  # stopped with the parent's process group
            signal.signal(number, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)  # the parent's event loop listens on it
        # Let go of the parent's sockets and files: a connection the parent closes must close
        # now, not when this child exits, and the data directory's lock must not outlive it.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        write(path, engine.counter_state(taken_at))
        code = 0
    except BaseException as exc:
        os.write(2, f"rempart: the counter checkpoint was not written: {exc!r}\n".encode())
    finally:
        os._exit(code)


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
        self._child = 0  # the pid of the process writing a periodic checkpoint
        self._reaped = threading.Event()
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
            "failures": self.failures,
        }

    def listener(self, event: EngineEvent) -> None:
        if isinstance(event, CountersReset):
            self.due = True

    def save_now(self) -> None:
        """Write a checkpoint from the engine's thread (at stop), after any periodic one."""
        if self._child:
            self._reaped.wait(30)
        self._write(self.engine.counter_state(time.time()))

    def start_save(self) -> None:
        """Write a checkpoint without stalling the event loop: a forked child (a copy-on-write
        image of this process, as Redis's BGSAVE) takes the state, writes the file and exits;
        a thread reaps it. Skipped while the previous one is still being written."""
        if self._child:
            return
        self.due = False
        if not hasattr(os, "fork"):
            self._write(self.engine.counter_state(time.time()))
            return
        taken_at = time.time()
        self._reaped.clear()
        try:
            with warnings.catch_warnings():  # Python 3.12 warns about forking a threaded process
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as exc:  # out of processes or memory: the next period tries again
            self.failures += 1
            log.warning("cannot fork to write the counter checkpoint: %s", exc)
            self._reaped.set()
            return
        if pid == 0:
            _child_writes(self.path, self.engine, taken_at)  # never returns
        self._child = pid
        threading.Thread(
            target=self._reap, args=(pid, taken_at), name="rempart-checkpoint", daemon=True
        ).start()

    def _reap(self, pid: int, taken_at: float) -> None:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            with self._lock:
                self.saved_at = max(self.saved_at, taken_at)
        else:
            self.failures += 1
            log.warning(
                "the counter checkpoint writer (pid %d) failed: %s; the previous checkpoint stays",
                pid,
                os.waitstatus_to_exitcode(status),
            )
        self._child = 0
        self._reaped.set()

    def _write(self, state: CounterState) -> None:
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
