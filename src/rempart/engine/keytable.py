"""The engine's key table: each tracked key's slot in its ring slab, least recently used first.

`PyKeyTable` is the reference (an `OrderedDict` of str -> slot). The C extension
`rempart.engine._keytable` (built with the compiled core by `pip install .`) answers the same
methods the same way while keeping each key as its code units in one array of entries: no str,
int or ordered-dict node per tracked key. `new_key_table()` gives the C table when it is built
and `REMPART_PURE_PYTHON` is not set, the reference otherwise; the engine only ever sees the
`KeyIndex` protocol.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import Protocol

from rempart import native_attribute


class KeyIndex(Protocol):
    def __len__(self) -> int: ...

    def get(self, key: str, /) -> int:
        """The key's slot, or -1 when it is not tracked (its recency unchanged)."""

    def touch(self, key: str, /) -> int:
        """The key's slot, now the most recently used; -1 when it is not tracked."""

    def add(self, key: str, slot: int, /) -> None:
        """Track a key, most recently used, at a slot (≥ 0); ValueError when it is tracked."""

    def pop(self, key: str, /) -> int:
        """Stop tracking a key; its slot, or -1 when it was not tracked."""

    def pop_oldest(self) -> tuple[str, int]:
        """The least recently used key and its slot, no longer tracked; KeyError when empty."""

    def tracked(self) -> list[str]:
        """The tracked keys, least recently used first."""

    def slots(self) -> bytes:
        """Their slots in the same order (array "q", machine byte order)."""

    def clear(self) -> None: ...

    def begin_walk(self) -> None:
        """Start a walk over the tracked keys, least recently used first, that `walk` then
        takes a few at a time while the table goes on changing (a counter checkpoint copied
        between decisions)."""

    def walk(self, count: int, /) -> tuple[list[str], list[int]]:
        """The next keys of the walk (at most `count`, ≥ 1) and their slots now; empty lists
        once it is done. Each key tracked from `begin_walk` until the walk reaches it is visited
        once, with its slot then; keys added during the walk (again, if removed) are not. Keys
        come least recently used first: exactly so when the table does not change during the
        walk, and about so when it does (the C table visits a key used before the walk reached
        it at its new place, the reference where it was when the walk began)."""


class PyKeyTable:
    """The reference `KeyIndex`."""

    __slots__ = ("_added", "_slots", "_walk", "_walked")

    def __init__(self) -> None:
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._walk: list[str] = []  # the keys of the walk under way, as it began
        self._walked = 0  # how many of them it has passed
        self._added: set[str] = set()  # keys added during the walk, which it does not visit

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, key: str, /) -> int:
        return self._slots.get(key, -1)

    def touch(self, key: str, /) -> int:
        slot = self._slots.get(key, -1)
        if slot >= 0:
            self._slots.move_to_end(key)
        return slot

    def add(self, key: str, slot: int, /) -> None:
        if slot < 0:
            raise ValueError("a slot is not negative")
        if key in self._slots:
            raise ValueError("the key is already tracked")
        self._slots[key] = slot
        if self._walk:
            self._added.add(key)

    def pop(self, key: str, /) -> int:
        return self._slots.pop(key, -1)

    def pop_oldest(self) -> tuple[str, int]:
        if not self._slots:
            raise KeyError("no key is tracked")
        return self._slots.popitem(last=False)

    def tracked(self) -> list[str]:
        return list(self._slots)

    def slots(self) -> bytes:
        return array("q", self._slots.values()).tobytes()

    def clear(self) -> None:
        self._slots.clear()
        self._end_walk()

    def begin_walk(self) -> None:
        self._walk, self._walked, self._added = list(self._slots), 0, set()

    def _end_walk(self) -> None:
        self._walk, self._walked, self._added = [], 0, set()

    def walk(self, count: int, /) -> tuple[list[str], list[int]]:
        if count < 1:
            raise ValueError("a walk visits at least one key at a time")
        keys: list[str] = []
        slots: list[int] = []
        pending, at = self._walk, self._walked
        while at < len(pending) and len(keys) < count:
            key = pending[at]
            at += 1
            slot = self._slots.get(key, -1)
            if slot >= 0 and key not in self._added:
                keys.append(key)
                slots.append(slot)
        self._walked = at
        if at == len(pending):
            self._end_walk()
        return keys, slots


def native_key_table() -> type[KeyIndex] | None:
    """The C table's type, or None when it is not built or pure Python was asked for."""
    found: type[KeyIndex] | None = native_attribute("rempart.engine._keytable", "KeyTable")
    return found


_TABLE: type[KeyIndex] = native_key_table() or PyKeyTable


def new_key_table() -> KeyIndex:
    return _TABLE()
