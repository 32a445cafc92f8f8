"""The journal: an append-only, hash-chained record of decisions, reports and changes.

Records are JSON lines in segment files under `<data_dir>/journal/`. Each record carries `seq`,
`prev` (the previous record's hash) and `hash` = sha256(prev ‖ the record's canonical JSON
without `hash`), so any edit, insertion or deletion breaks the chain at that point.

Records follow the schema of `rempart.engine.records`. On the decision path the listener only
appends the event to a pending queue (well under a
microsecond). Pending events are turned into chained lines in batches — by the caller's thread
once `batch_records` have gathered, else by the writer thread within `flush_interval` — and a
background thread writes and syncs them, so decisions never wait on disk. A crash loses at most
the decisions and reports of the last `flush_interval`.

Changes that someone is told about (the engine's list and posture events; operator and notice
records through `append_durable`) are durable before they are acknowledged: their record is encoded at once, the writer skips its
gathering pause, and `await journal.sync()` (or `wait_durable()` from a thread) returns once the
record is fsynced. Every change that arrived while the writer was busy goes into the next write:
one fsync for many changes (group commit). `after_durable(fn)` runs `fn` on the writer thread
once what was appended so far is on disk, so the state store never holds a change the journal
lacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rempart.engine.events import EngineEvent, ListAdded, ListRemoved, PostureChanged
from rempart.engine.records import RecordedEvent, journaled, micros
from rempart.ops.chain import chain_hash as _chain_hash
from rempart.ops.chain import encode_lines

log = logging.getLogger(__name__)
_TOLD = (ListAdded, ListRemoved, PostureChanged)  # changes someone is told about
GENESIS = "0" * 64


class JournalWriteError(OSError):
    """The journal could not write a record that a caller waits for."""


def other_record(kind: str, now: float, data: dict[str, Any]) -> dict[str, Any]:
    """The record of an operator-side event that does not pass through the engine."""
    return {"ts": micros(now), "kind": kind, **data}


@dataclass(slots=True)
class Broken:
    segment: str
    line: int
    seq: int | None
    why: str


class Journal:
    """Writes records; also reads and verifies them."""

    def __init__(
        self, directory: str | Path, segment_bytes: int = 64 << 20, flush_interval: float = 0.2
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.flush_interval = flush_interval
        self._unfinished: Path | None = None  # a segment whose last line has no end (`_tail`)
        self.seq, self.last_hash = self._tail()
        # Events (or ready records) not yet encoded; a deque: appends from any thread are atomic.
        self._pending: deque[RecordedEvent | dict[str, Any]] = deque()
        self.batch_records = 128
        self._queue: queue.SimpleQueue[tuple[int, bytes] | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        # Group commit: set when a durable record waits, so the writer skips its pause.
        self._urgent = threading.Event()
        self.durable_seq = self.seq  # the last record known to be on disk
        self._done_lock = threading.Lock()
        self._after: list[tuple[int, Callable[[], None]]] = []
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.syncs = 0  # fsyncs done (one per group of records)
        self._thread: threading.Thread | None = None
        self.written = 0
        self.write_errors = 0

    # --- writing -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._unfinished is not None:
            log.error(
                "journal %s ends with a damaged record; run `rempart journal verify`",
                self._unfinished,
            )
            raise ValueError(f"journal {self._unfinished} ends with an unfinished record")
        self._thread = threading.Thread(target=self._run, name="rempart-journal", daemon=True)
        self._thread.start()

    def listener(self, event: EngineEvent) -> None:
        """Engine listener: queue the event; encode a batch once enough have gathered."""
        if not journaled(event):
            return  # the learned fetchers: internal state, kept by the StateWriter
        pending = self._pending
        pending.append(event)
        if isinstance(event, _TOLD):
            # A change someone is told about: written and fsynced before it is answered.
            self.encode_pending()
            self._urgent.set()
        elif len(pending) >= self.batch_records:
            self.encode_pending()

    def append_durable(self, kind: str, now: float, data: dict[str, Any]) -> int:
        """Append an operator-side record and start writing it at once; its sequence number.

        Await `sync()` (or call `wait_durable()`) before acknowledging the change."""
        self._pending.append(other_record(kind, now, data))
        self.encode_pending()
        self._urgent.set()
        return self.seq

    async def sync(self) -> None:
        """Return once every record appended so far is fsynced (shares the writer's next
        fsync with every other waiter). Raises JournalWriteError when that write failed."""
        self.encode_pending()
        target = self.seq
        if self._thread is None or self.durable_seq >= target:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._done_lock:
            if self.durable_seq >= target:
                return
            self._waiters.append((target, loop, future))
        self._urgent.set()
        await future

    def wait_durable(self, timeout: float = 10.0) -> bool:
        """`sync()` for threads: True once every record appended so far is on disk."""
        if self._thread is None:
            return True
        done = threading.Event()
        self.after_durable(done.set)
        return done.wait(timeout)

    def after_durable(self, callback: Callable[[], None]) -> None:
        """Run `callback` (on the writer thread, or now when nothing is pending) once every
        record appended so far is on disk. It must be quick and must not raise."""
        self.encode_pending()
        target = self.seq
        with self._done_lock:
            if self._thread is not None and self.durable_seq < target:
                self._after.append((target, callback))
                self._urgent.set()
                return
        callback()

    def _durable_up_to(self, seq: int, error: OSError | None) -> None:
        """The writer thread: records up to `seq` are on disk (or failed with `error`)."""
        with self._done_lock:
            if error is None:
                self.durable_seq = max(self.durable_seq, seq)
            ready = [cb for target, cb in self._after if target <= seq]
            self._after = [(t, cb) for t, cb in self._after if t > seq]
            woken = [(loop, fut) for target, loop, fut in self._waiters if target <= seq]
            self._waiters = [(t, lo, f) for t, lo, f in self._waiters if t > seq]
        if error is None:
            for callback in ready:
                try:
                    callback()
                except Exception:
                    log.exception("journal: after-durable callback failed")
        for loop, future in woken:
            loop.call_soon_threadsafe(_settle, future, error)

    def append(self, kind: str, now: float, data: dict[str, Any]) -> None:
        """Journal an operator-side event that does not pass through the engine."""
        self._pending.append(other_record(kind, now, data))
        if len(self._pending) >= self.batch_records:
            self.encode_pending()

    def encode_pending(self) -> None:
        """Turn the pending events into chained lines and hand them to the writer thread.

        One tight loop per batch: the lock keeps the chain and the queue in the same order
        when the writer thread and the decision path both encode."""
        pending = self._pending
        if not pending:
            return
        with self._lock:
            items: list[RecordedEvent | dict[str, Any]] = []
            popleft = pending.popleft
            while pending:
                items.append(popleft())
            lines, self.seq, self.last_hash = encode_lines(items, self.seq, self.last_hash)
            if lines:
                self._queue.put((self.seq, lines))

    def flush(self, timeout: float = 10.0) -> bool:
        if self._thread is None:
            return True
        self.encode_pending()
        done = threading.Event()
        self._queue.put(done)
        self._urgent.set()
        return done.wait(timeout)

    def close(self) -> None:
        if self._thread is not None:
            self.encode_pending()
            self._queue.put(None)
            self._urgent.set()
            self._thread.join(timeout=10)
            self._thread = None

    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("segment-*.jsonl"))

    def _tail(self) -> tuple[int, str]:
        segments = self._segments()
        for seg in reversed(segments):
            last, finished = _last_line(seg)
            if not finished:
                # Being written by a running server (this Journal only reads: the CLI) or torn
                # by a crash; a writer must not append after it (`start` refuses), a reader
                # goes on from the record before.
                self._unfinished = seg
                last = _last_line(seg, skip_unfinished=True)[0]
            if last:
                try:
                    rec = json.loads(last)
                    return int(rec["seq"]), str(rec["hash"])
                except (ValueError, KeyError):
                    log.error(
                        "journal %s ends with a damaged record; run `rempart journal verify`", seg
                    )
                    raise
        return 0, GENESIS

    def _open_segment(self) -> int:
        """The segment to append to, opened with O_DSYNC: each write returns once its data is
        on disk, so a batch costs the writer one system call (see `_run`)."""
        segments = self._segments()
        if segments and segments[-1].stat().st_size < self.segment_bytes:
            path = segments[-1]
        else:
            number = int(segments[-1].stem.split("-")[1]) + 1 if segments else 1
            path = self.dir / f"segment-{number:06d}.jsonl"
        # Close-on-exec is Python's default for the descriptors it opens.
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_DSYNC, 0o666)

    def _run(self) -> None:
        # Every blocking call made here gives the GIL away and must win it back from the busy
        # event loop, which wakes this thread again and again until it does (thousands of
        # context switches a second under load, paid by the decisions). So each pass blocks
        # twice: one wait for a batch to gather (or an urgent record), one write that is also
        # the sync (O_DSYNC), of all the pass's lines in one `writev`.
        fd = self._open_segment()
        size = os.fstat(fd).st_size
        stop = False
        while not stop:
            self._urgent.wait(self.flush_interval)  # let a batch gather, unless urged
            self._urgent.clear()
            self.encode_pending()
            items: list[tuple[int, bytes] | threading.Event | None] = []
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batches = [item for item in items if isinstance(item, tuple)]
            stop = None in items
            if batches:
                chunks = [lines for _, lines in batches]
                last = max(seq for seq, _ in batches)
                error: OSError | None = None
                try:
                    written = _write_all(fd, chunks)
                    self.syncs += 1
                    self.written += sum(chunk.count(b"\n") for chunk in chunks)
                    size += written
                except OSError as exc:
                    self.write_errors += 1
                    error = JournalWriteError(f"journal write failed: {exc}")
                    log.exception("journal write failed")
                self._durable_up_to(last, error)
                if size >= self.segment_bytes:
                    os.close(fd)
                    fd = self._open_segment()
                    size = os.fstat(fd).st_size
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
        os.close(fd)

    # --- reading -----------------------------------------------------------------------------
    def records(
        self,
        login: str = "",
        ip: str = "",
        since: float = 0.0,
        until: float = 0.0,
        kinds: frozenset[str] = frozenset(),
    ) -> Iterator[dict[str, Any]]:
        """Records matching every given filter, oldest first."""
        for seg in self._segments():
            with open(seg, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if (login and login not in line) or (ip and ip not in line):
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if (since and rec.get("ts", 0) < since) or (until and rec.get("ts", 0) > until):
                        continue
                    if (
                        login
                        and rec.get("login") != login
                        and not rec.get("value", "").endswith(login)
                    ):
                        continue
                    if ip and rec.get("ip") != ip and not rec.get("value", "").startswith(ip):
                        continue
                    if kinds and rec.get("kind") not in kinds:
                        continue
                    yield rec

    def records_after(self, seq: int, containing: str = "") -> Iterator[dict[str, Any]]:
        """Records with a sequence number above `seq` (and whose line holds `containing`),
        read from the last two segments only (for a caller watching a running server)."""
        for seg in self._segments()[-2:]:
            with open(seg, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if containing and containing not in line:
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and int(rec.get("seq", 0)) > seq:
                        yield rec

    def verify(self) -> tuple[int, Broken | None]:
        """Walk the chain; (records checked, first broken record or None)."""
        prev, expected_seq, count = GENESIS, 1, 0
        for seg in self._segments():
            with open(seg, encoding="utf-8", errors="replace") as fh:
                for number, line in enumerate(fh, 1):
                    try:
                        rec = json.loads(line)
                        claimed = rec.pop("hash")
                        seq = int(rec["seq"])
                    except (ValueError, KeyError, TypeError):
                        return count, Broken(seg.name, number, None, "not a journal record")
                    if seq != expected_seq:
                        return count, Broken(
                            seg.name,
                            number,
                            seq,
                            f"sequence jumps from {expected_seq - 1} to {seq}",
                        )
                    if rec.get("prev") != prev:
                        return count, Broken(seg.name, number, seq, "previous-hash mismatch")
                    if _chain_hash(prev, orjson.dumps(rec)) != claimed:
                        return count, Broken(seg.name, number, seq, "content altered")
                    prev, expected_seq, count = claimed, seq + 1, count + 1
        return count, None


def _settle(future: asyncio.Future[None], error: OSError | None) -> None:
    if not future.done():
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


_IOV_MAX = 1024  # buffers per writev (Linux's UIO_MAXIOV)


def _write_all(fd: int, chunks: list[bytes]) -> int:
    """Append every chunk, in order, with as few system calls as the kernel allows; the bytes
    written."""
    total = 0
    for start in range(0, len(chunks), _IOV_MAX):
        part = chunks[start : start + _IOV_MAX]
        expected = sum(map(len, part))
        done = os.writev(fd, part)
        if done < expected:  # a short write (a full disk raises on the next call)
            rest = memoryview(b"".join(part))[done:]
            while rest:
                rest = rest[os.write(fd, rest) :]
        total += expected
    return total


def _last_line(path: Path, skip_unfinished: bool = False) -> tuple[str, bool]:
    """The segment's last line, and whether it ends with a newline (an empty segment: "",
    True); with `skip_unfinished`, the last line that does."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        pos = max(0, end - 65536)
        fh.seek(pos)
        tail = fh.read()
    finished = not tail or tail.endswith(b"\n")
    if skip_unfinished and not finished:
        tail = tail.rpartition(b"\n")[0]
        finished = True
    tail = tail.rstrip(b"\n")
    return (tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace") if tail else ""), finished
