"""Following one log file: the complete lines appended to a path, across rotations and restarts.

`FileFollower` survives rotation by rename (the old file is drained, then the new one read from
its start; the old one is still watched for a few seconds for a writer that has not reopened
yet) and truncation (copytruncate: read again from the start). Its `positions()` (device, inode,
offset) let a restarted follower resume where it stopped: lines are neither handed out twice
nor lost, even when the file was rotated while the follower was down (the rotated file is found
next to the path by its inode, e.g. `mail.log.1`; compressed rotations are out of reach, hence
logrotate's `delaycompress`). A file seen for the first time is read from its end unless told
to start at its beginning.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("rempart.tail")

MAX_LINE_BYTES = 65536
READ_CHUNK = 1 << 20
ROTATED_GRACE_SECONDS = 5.0


@dataclass(slots=True)
class Position:
    dev: int
    ino: int
    offset: int

    def to_json(self) -> dict[str, int]:
        return {"dev": self.dev, "ino": self.ino, "offset": self.offset}


@dataclass(slots=True)
class _Open:
    fh: Any
    dev: int
    ino: int
    offset: int  # end of the last complete line handed out
    buffer: bytes = b""
    until: float = 0.0  # for a rotated file: stop watching it after this


@dataclass(slots=True)
class Line:
    text: str
    item: _Open
    start: int  # byte offset of the line in its file
    end: int  # byte offset after its newline


class FileFollower:
    """The complete lines appended to one path, across rotations and restarts."""

    def __init__(
        self, path: str | Path, saved: list[Position] | None, start_at: str = "end"
    ) -> None:
        self.path = Path(path)
        self.current: _Open | None = None
        self.rotated: list[_Open] = []
        self.long_lines = 0
        self._open_initial(saved or [], start_at)

    # --- opening ------------------------------------------------------------------------------
    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except OSError:
            return None

    def _open(self, path: Path, offset: int) -> _Open | None:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - kept open while followed
        except OSError:
            return None
        st = os.fstat(fh.fileno())
        if offset > st.st_size:
            offset = 0  # truncated since
        fh.seek(offset)
        return _Open(fh, st.st_dev, st.st_ino, offset)

    def _find_by_inode(self, dev: int, ino: int) -> Path | None:
        folder = self.path.parent
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return None
        for name in names:
            if not name.startswith(self.path.name) or name == self.path.name:
                continue
            try:
                st = os.stat(folder / name)
            except OSError:
                continue
            if st.st_dev == dev and st.st_ino == ino:
                return folder / name
        return None

    def _open_initial(self, saved: list[Position], start_at: str) -> None:
        st = self._stat()
        if not saved:
            if st is not None:
                self.current = self._open(self.path, st.st_size if start_at == "end" else 0)
            return
        for pos in saved:  # oldest first: files rotated away, then the one at the path
            if st is not None and (st.st_dev, st.st_ino) == (pos.dev, pos.ino):
                self.current = self._open(self.path, pos.offset)
                return
            # Rotated (perhaps while we were down): finish it before the newer files.
            old = self._find_by_inode(pos.dev, pos.ino)
            opened = self._open(old, pos.offset) if old is not None else None
            if opened is None:
                log.warning("tail %s: a file read before the restart is gone", self.path)
                continue
            opened.until = float("inf")  # drained once, then dropped
            self.rotated.append(opened)
        if st is not None:  # a file started since: read it whole
            self.current = self._open(self.path, 0)

    # --- reading ------------------------------------------------------------------------------
    def _read(self, item: _Open, limit: int) -> list[Line]:
        """Complete lines of one open file (up to about `limit` bytes)."""
        out: list[Line] = []
        while limit > 0:
            chunk = item.fh.read(min(READ_CHUNK, limit))
            if not chunk:
                break
            limit -= len(chunk)
            data = item.buffer + chunk
            base = item.offset
            start = 0
            while True:
                end = data.find(b"\n", start)
                if end < 0:
                    break
                raw = data[start:end]
                if len(raw) > MAX_LINE_BYTES:
                    self.long_lines += 1
                else:
                    text = raw.decode("utf-8", "replace").rstrip("\r")
                    out.append(Line(text, item, base + start, base + end + 1))
                start = end + 1
            item.offset = base + start
            item.buffer = data[start:]
            if len(item.buffer) > MAX_LINE_BYTES:  # a line without end: skip what we have
                self.long_lines += 1
                item.offset += len(item.buffer)
                item.buffer = b""
        return out

    def poll(self, limit: int = READ_CHUNK) -> list[Line]:
        """New complete lines, oldest file first. `Line.item.offset` moves past them; a
        consumer that cannot take a line calls `rewind(line)`."""
        out: list[Line] = []
        now = time.monotonic()
        for item in list(self.rotated):
            lines = self._read(item, limit)
            out += lines
            if not lines and (item.until == float("inf") or now > item.until):
                item.fh.close()  # drained (and its lines processed) in an earlier poll
                self.rotated.remove(item)
        st = self._stat()
        cur = self.current
        if cur is not None:
            out += self._read(cur, limit)
            if st is None or (st.st_dev, st.st_ino) != (cur.dev, cur.ino):
                # Renamed away (or deleted): drained above; watch it a little longer for a
                # writer that has not reopened its log yet.
                cur.until = now + ROTATED_GRACE_SECONDS
                self.rotated.append(cur)
                self.current = cur = None
            elif st.st_size < cur.offset + len(cur.buffer):
                log.info("tail %s: truncated, reading from the start", self.path)
                cur.fh.seek(0)
                cur.offset, cur.buffer = 0, b""
                out += self._read(cur, limit)
        if cur is None and st is not None:
            self.current = self._open(self.path, 0)
            if self.current is not None:
                out += self._read(self.current, limit)
        return out

    @staticmethod
    def rewind(line: Line) -> None:
        """Read `line` (and what follows it in its file) again at the next poll."""
        item = line.item
        item.fh.seek(line.start)
        item.offset = line.start
        item.buffer = b""

    def positions(self) -> list[Position]:
        """Where a restart resumes: every file still open (rotated ones first, oldest first),
        each at the end of its last processed line."""
        return [
            Position(item.dev, item.ino, item.offset)
            for item in [*self.rotated, self.current]
            if item is not None
        ]

    def close(self) -> None:
        for item in [*self.rotated, self.current]:
            if item is not None:
                item.fh.close()
        self.rotated, self.current = [], None
