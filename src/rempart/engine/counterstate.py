"""`CounterState`: the engine's tracked keys and their counters as plain data, for a checkpoint.

The typed interface between the engine (`Engine.counter_state` and `Engine.restore_counters`,
the only writer of the counters) and `rempart.state.checkpoint`, which keeps it on disk so a
restarted node goes on counting where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from rempart.engine.distinct import Sketch

SketchSlots = list[Sketch | None]


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
