"""The Store interface: where durable facts live (lists, familiarity, settings such as posture).

Counters stay in the engine's memory; a Store keeps what must survive a restart. Writes are
queued and applied by a background writer, so the engine never waits on disk; `flush()` waits
until everything queued so far is durable (the API calls it before confirming a list change).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Protocol

from rempart.engine.lists import ListEntry


class Store(Protocol):
    def load_entries(self) -> Iterator[tuple[str, ListEntry]]:
        """Every stored list entry as (list name "block" | "allow", entry)."""
        ...

    def put_entry(self, which: str, entry: ListEntry) -> None: ...

    def delete_entry(self, which: str, kind: str, value: str) -> None: ...

    def load_familiarity(self) -> Iterator[tuple[str, str, float]]:
        """Every (login, marker, last success) remembered."""
        ...

    def put_familiarity(self, login: str, marker: str, last: float, *, shared: bool = True) -> None:
        """Remember an account's network or device; `shared=False`: another node already wrote
        it to the shared store (a node with one keeps it in its local mirror only)."""

    def get_setting(self, key: str) -> str | None: ...

    def put_setting(self, key: str, value: str | None) -> None: ...

    def flush(self, timeout: float = 10.0) -> bool: ...

    def flush_future(self) -> Future[bool]:
        """`flush()` without blocking: a future that turns True once all queued is durable."""
        ...

    def close(self) -> None: ...

    @property
    def write_errors(self) -> int:
        """Writes lost or failed so far (a metric)."""
        ...
