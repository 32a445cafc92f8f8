"""`CounterState`: the engine's tracked keys and their counters as plain data, for a checkpoint.

The typed interface between the engine (`Engine.counter_state` and `Engine.restore_counters`,
the only writer of the counters) and `rempart.state.checkpoint`, which keeps it on disk so a
restarted node goes on counting where it stopped. `PackedCounters` is the same state as the
sections a checkpoint holds, stored as zero runs (`pack`, or `rempart.engine.countercopy` a few
keys at a time).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from rempart.engine.distinct import Sketch, pack_sketches
from rempart.engine.packing import RUNS_BY_DEFAULT, squeeze

SketchSlots = list[Sketch | None]


@dataclass(frozen=True, slots=True)
class Section:
    """A checkpoint section in pieces written one after the other, stored as zero runs
    (`packing.squeeze`; the runs of pieces end to end are those of their bytes end to end) or
    whole, and its length expanded."""

    size: int
    pieces: list[bytes]
    runs: bool


def store(data: bytes, runs: bool) -> Section:
    return Section(len(data), [squeeze(data) if runs else data], runs)


# A family's sketches as (slots, epochs, lengths, data): `distinct.pack_sketches`.
PackedSketches = tuple[Section, Section, Section, Section]


@dataclass(frozen=True, slots=True)
class CounterState:
    taken_at: float
    # Window widths and bucket counts the counters were kept with (`Engine.counter_shape`):
    # counters kept with other settings cannot be read with these.
    shape: tuple[int, ...]
    keys: list[str]  # least recently used first
    slots: bytes  # each key's slot in its slab (array "q", machine byte order)
    rings: tuple[bytes, bytes]  # cells and epochs of the slab of every family but ip+login
    pairs: tuple[bytes, bytes]  # the same for the ip+login family's slab
    # Distinct sketches by ring slot: failing peers, successful users, established users. At
    # `counter_state` these are the live objects (the checkpoint copies them off the event loop).
    sketches: tuple[SketchSlots, SketchSlots, SketchSlots]


@dataclass(frozen=True, slots=True)
class PackedCounters:
    """A `CounterState` as the bytes of a checkpoint's sections."""

    taken_at: float
    shape: tuple[int, ...]
    key_lengths: Section  # in code points (array "I")
    key_text: Section  # the keys end to end, UTF-8 (surrogatepass: a login may hold a lone one)
    slots: Section
    rings: tuple[Section, Section]
    pairs: tuple[Section, Section]
    sketches: tuple[PackedSketches, PackedSketches, PackedSketches]


def pack(state: CounterState, runs: bool = RUNS_BY_DEFAULT) -> PackedCounters:
    """The state's checkpoint sections, stored as zero runs or whole."""
    return PackedCounters(
        taken_at=state.taken_at,
        shape=state.shape,
        key_lengths=store(array("I", map(len, state.keys)).tobytes(), runs),
        key_text=store("".join(state.keys).encode("utf-8", "surrogatepass"), runs),
        slots=store(state.slots, runs),
        rings=(store(state.rings[0], runs), store(state.rings[1], runs)),
        pairs=(store(state.pairs[0], runs), store(state.pairs[1], runs)),
        sketches=(
            _stored_sketches(state.sketches[0], runs),
            _stored_sketches(state.sketches[1], runs),
            _stored_sketches(state.sketches[2], runs),
        ),
    )


def _stored_sketches(found: SketchSlots, runs: bool) -> PackedSketches:
    slots, epochs, lengths, data = pack_sketches(found)
    return store(slots, runs), store(epochs, runs), store(lengths, runs), store(data, runs)
