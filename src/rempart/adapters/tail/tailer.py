"""The tailer: followers and parsers per file, one sink, and the offsets file.

Lines are parsed and sent in order; the offsets file is written (atomically) after every
processed batch, and at the first event the sink cannot take every file rewinds to its first
unsent line, so nothing is lost or sent twice. Bad lines are counted and skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rempart.adapters.logparse import BadLine, LogParser
from rempart.adapters.tail.follow import FileFollower, Line, Position
from rempart.adapters.tail.sinks import Sink, SinkError

log = logging.getLogger("rempart.tail")


@dataclass
class FileStats:
    lines: int = 0
    events: int = 0
    ignored: int = 0
    bad: int = 0


@dataclass
class Source:
    path: str
    parser: LogParser
    follower: FileFollower | None = None
    stats: FileStats = field(default_factory=FileStats)


class Tailer:
    """Followers, parsers, one sink, and the offsets file."""

    def __init__(
        self,
        sources: Sequence[tuple[str, LogParser]],
        sink: Sink,
        state_file: str | Path | None,
        start_at: str = "end",
    ) -> None:
        self.sink = sink
        self.state_file = Path(state_file) if state_file else None
        saved = self._load()
        self.sources = [Source(str(Path(p)), parser) for p, parser in sources]
        for src in self.sources:
            src.follower = FileFollower(src.path, saved.get(os.path.abspath(src.path)), start_at)
        self._saved: dict[str, Any] = {k: [p.to_json() for p in v] for k, v in saved.items()}
        self._record_positions()
        self.save()  # a first start "at the end" must resume there, not at a later end

    def _record_positions(self) -> None:
        for src in self.sources:
            assert src.follower is not None
            self._saved[os.path.abspath(src.path)] = [p.to_json() for p in src.follower.positions()]

    def _load(self) -> dict[str, list[Position]]:
        """{absolute path: [positions, oldest file first]} from the offsets file."""
        if self.state_file is None or not self.state_file.exists():
            return {}
        try:
            data = json.loads(self.state_file.read_text())
            return {
                path: [Position(int(p["dev"]), int(p["ino"]), int(p["offset"])) for p in files]
                for path, files in data.items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("tail: ignoring unreadable offsets file %s: %s", self.state_file, exc)
            return {}

    def save(self) -> None:
        """Write the offsets noted by the last `apply` (atomically: temporary file, rename)."""
        if self.state_file is None:
            return
        snapshot = json.dumps(self._saved)
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(snapshot)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_file)

    def read(self) -> list[tuple[Source, list[Line]]]:
        """New lines of every file (file I/O only: safe to run in a worker thread)."""
        batches = []
        for src in self.sources:
            assert src.follower is not None
            lines = src.follower.poll()
            if lines:
                batches.append((src, lines))
        return batches

    def apply(self, batches: list[tuple[Source, list[Line]]], save: bool = True) -> int:
        """Parse and send, then note how far each file got (and save it, unless `save` is
        False: then call `save()`, e.g. from a worker thread). At the first line the sink
        cannot take (SinkError) every file rewinds to its first unsent line, kept for the next
        poll."""
        handled = 0
        error: SinkError | None = None
        for src, lines in batches:
            assert src.follower is not None
            rewound: set[int] = set()
            for line in lines:
                if error is None:
                    try:
                        self._line(src, line.text)
                        handled += 1
                        continue
                    except SinkError as exc:
                        error = exc
                if id(line.item) not in rewound:
                    rewound.add(id(line.item))
                    src.follower.rewind(line)
        self._record_positions()
        if save:
            self.save()
        if error is not None:
            raise error
        return handled

    def _line(self, src: Source, text: str) -> None:
        try:
            event = src.parser.parse(text)
        except BadLine as exc:
            src.stats.lines += 1
            src.stats.bad += 1
            log.warning("tail %s: bad line skipped (%s): %.200s", src.path, exc, text)
            return
        if event is not None:
            self.sink.send(event)  # may raise SinkError: the line is read again later
            src.stats.events += 1
        else:
            src.stats.ignored += 1
        src.stats.lines += 1

    def poll_once(self) -> int:
        batches = self.read()
        return self.apply(batches) if batches else 0

    def close(self) -> None:
        for src in self.sources:
            if src.follower is not None:
                src.follower.close()
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()


def log_summary(tailer: Tailer) -> None:
    """What each file gave since the start; a file whose lines all go unmatched says so (its
    daemon's log format may have changed)."""
    for src in tailer.sources:
        s = src.stats
        level = logging.WARNING if s.lines >= 1000 and not s.events else logging.INFO
        log.log(
            level,
            "tail %s (%s): %d lines, %d events, %d ignored, %d bad",
            src.path,
            src.parser.name,
            s.lines,
            s.events,
            s.ignored,
            s.bad,
        )
