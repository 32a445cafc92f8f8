"""`CounterCopy`: a counter checkpoint taken a few keys at a time between decisions.

The engine's thread copies the tracked keys in least-recently-used order, `step` by `step`,
each key's ring (and its distinct sketches) into new, dense slabs, while decisions go on in
between; the result is the `PackedCounters` a checkpoint file holds, written by another thread.
Each step's piece of a section is stored as zero runs at once (`packing.squeeze`: a ring row is
mostly empty counters), so a copy of 570,000 keys holds about 40 MB, not 190 MB of fresh pages
the kernel must clear first. Sections are kept in buffers of about `CHUNK` bytes: no step pays
for growing (and so copying again) one large buffer, and the writing thread, which takes the
interpreter's lock again after each buffer it hashes or writes, does so a few dozen times, not
thousands.

No fork: forking a node of 450 MB stalled its event loop for 35-55 ms, then for 100-180 ms more
while every page the loop wrote was copied for the child (`docs/benchmarks.md`, "Counter
checkpoints without fork").

The copy is not one instant: a key is copied as it stands when the walk reaches it, so the
checkpoint mixes states a few seconds apart, each key whole (its ring, its sketches and its slot
copied together). Keys added during the copy are not in it (`KeyIndex.walk`).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from rempart.engine.counterstate import PackedCounters, PackedSketches, Section
from rempart.engine.distinct import pack_sketch_rows
from rempart.engine.families import KeyFamily
from rempart.engine.packing import RUNS_BY_DEFAULT, gather_rows, squeeze

if TYPE_CHECKING:
    from rempart.engine.distinct import Sketch
    from rempart.engine.engine import Engine
    from rempart.engine.windows import RingSlab

_PAIR = KeyFamily.IP_LOGIN.spec.prefix
CHUNK = 1 << 20  # bytes of a section's buffer


def _view(values: array[int]) -> memoryview:
    return memoryview(values).cast("B")


class _Chunks:
    """A section stored as zero runs (or whole: `packing.RUNS_BY_DEFAULT`), in buffers of about
    `CHUNK` bytes: each step's piece is stored as soon as it is copied (small and still in the
    cache, a fifth of its size or less), and pieces are joined once enough of them wait."""

    __slots__ = ("parts", "pending", "runs", "stored", "whole")

    def __init__(self, runs: bool) -> None:
        self.runs = runs
        self.parts: list[bytes] = []
        self.pending: list[bytes | bytearray | memoryview] = []
        self.stored = 0  # bytes pending
        self.whole = 0  # the section's length expanded

    def add(self, data: bytes | bytearray | memoryview) -> None:
        kept = squeeze(data) if self.runs else data
        self.pending.append(kept)
        self.whole += len(data)
        self.stored += len(kept)
        if self.stored >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.parts.append(b"".join(self.pending))
            self.pending, self.stored = [], 0

    def done(self) -> Section:
        self.flush()
        return Section(self.whole, self.parts, self.runs)


class _SketchCopy:
    """One family's sketches, packed as `distinct.pack_sketches` packs them, step by step."""

    __slots__ = ("data", "epochs", "lengths", "slots")

    def __init__(self, runs: bool) -> None:
        self.slots = _Chunks(runs)
        self.epochs = _Chunks(runs)
        self.lengths = _Chunks(runs)
        self.data = _Chunks(runs)

    def add_step(self, found: list[Sketch | None], slots: list[int], first: int) -> None:
        """Copy the sketches at `slots`, whose rings took the dense slots from `first` on."""
        packed_slots, epochs, lengths, data = pack_sketch_rows(found, slots, first)
        if packed_slots:
            self.slots.add(_view(packed_slots))
            self.epochs.add(_view(epochs))
            self.lengths.add(_view(lengths))
            self.data.add(data)

    def packed(self) -> PackedSketches:
        return (self.slots.done(), self.epochs.done(), self.lengths.done(), self.data.done())


class _RingCopy:
    """Rows of one ring slab, copied into a dense slab step by step."""

    __slots__ = ("cells", "count", "epochs")

    def __init__(self, runs: bool) -> None:
        self.cells = _Chunks(runs)
        self.epochs = _Chunks(runs)
        self.count = 0  # rows copied: the next row's slot in the dense slab

    def add_step(self, slab: RingSlab, slots: list[int]) -> None:
        if not slots:
            return
        wanted = array("q", slots)
        self.cells.add(gather_rows(slab.cells, slab.cells.itemsize * slab.stride, wanted))
        self.epochs.add(gather_rows(slab.epochs, slab.epochs.itemsize, wanted))
        self.count += len(slots)


class CounterCopy:
    """The engine's counters, copied `step` by `step` (on the engine's thread only)."""

    def __init__(self, engine: Engine, taken_at: float, runs: bool = RUNS_BY_DEFAULT) -> None:
        self.engine = engine
        self.taken_at = taken_at
        self.shape = engine.counter_shape()
        self.key_lengths = _Chunks(runs)
        self.key_text = _Chunks(runs)
        self.slots = _Chunks(runs)
        self.rings = _RingCopy(runs)
        self.pairs = _RingCopy(runs)
        self.sketches = (_SketchCopy(runs), _SketchCopy(runs), _SketchCopy(runs))
        self.copied = 0
        self.done = False
        engine.states.begin_walk()

    def step(self, count: int) -> bool:
        """Copy the next `count` keys; True once the walk is done."""
        if self.done:
            return True
        engine = self.engine
        keys, slots = engine.states.walk(count)
        if not keys:
            self.done = True
            return True
        lengths, dense = array("I"), array("q")
        ring_slots: list[int] = []
        pair_slots: list[int] = []
        next_ring, next_pair = self.rings.count, self.pairs.count
        for key, slot in zip(keys, slots, strict=True):
            lengths.append(len(key))
            if key[0] == _PAIR:
                dense.append(next_pair + len(pair_slots))
                pair_slots.append(slot)
            else:
                dense.append(next_ring + len(ring_slots))
                ring_slots.append(slot)
        self.rings.add_step(engine.rings, ring_slots)
        self.pairs.add_step(engine.pair_rings, pair_slots)
        found = (engine.peer_sketches, engine.user_sketches, engine.established_sketches)
        for family, copy in zip(found, self.sketches, strict=True):
            copy.add_step(family, ring_slots, next_ring)
        self.key_lengths.add(_view(lengths))
        self.key_text.add("".join(keys).encode("utf-8", "surrogatepass"))
        self.slots.add(_view(dense))
        self.copied += len(keys)
        return False

    def result(self) -> PackedCounters:
        """The copy as a checkpoint's sections (once `step` said it is done), in its buffers."""
        peers, users, established = self.sketches
        rings, pairs = self.rings, self.pairs
        return PackedCounters(
            taken_at=self.taken_at,
            shape=self.shape,
            key_lengths=self.key_lengths.done(),
            key_text=self.key_text.done(),
            slots=self.slots.done(),
            rings=(rings.cells.done(), rings.epochs.done()),
            pairs=(pairs.cells.done(), pairs.epochs.done()),
            sketches=(peers.packed(), users.packed(), established.packed()),
        )
