"""Input streams for ingest: plain files, gzip (by magic bytes), or `-` for stdin; checks up front.

Yields blocks of complete lines with the byte offset after them, so a checkpoint can say exactly
where to resume; an overlong unterminated run of bytes becomes one (rejected) line.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeAlias

from rempart.breach.parser import MAX_LINE_BYTES

BLOCK_BYTES = 4 << 20
MAX_PENDING = 1 << 20
SNIFF_BYTES = 64 << 10
_GZIP_MAGIC = b"\x1f\x8b"
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f\v")


# What an input reads as: the file itself, or the gzip stream over it.
Stream: TypeAlias = BinaryIO | gzip.GzipFile


class InputError(RuntimeError):
    """An input cannot be ingested; the message names the file (and line when there is one)."""


@dataclass
class Block:
    """Complete lines read so far, and where the next unread line starts."""

    lines: list[bytes]
    ascii: bool
    offset: int
    skipping: bool
    position: int  # bytes of the raw (compressed) file consumed, for the progress bar


def identity(path: str) -> dict[str, int] | None:
    """Size and mtime of a file, to recognise the same input on resume (None for stdin)."""
    if path == "-":
        return None
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_input(path: str) -> None:
    """Fail early on an unreadable path, a directory or a binary file."""
    if path == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path}: is a directory, not a combo list")
    try:
        with open_stream(path) as (stream, _raw):
            head = stream.read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    reason = binary_reason(head)
    if reason:
        raise InputError(f"{path}: looks like a binary file ({reason}), not a combo list")


def binary_reason(head: bytes) -> str:
    """Why the first bytes of a stream look binary, or ''."""
    if not head:
        return ""
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls * 20 > len(head):
        return f"{controls} NUL/control bytes in the first {len(head)}"
    return ""


class open_stream:
    """Open a path (gzip detected by its magic bytes) or stdin; yields (stream, raw file)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._files: list[Stream] = []

    def __enter__(self) -> tuple[Stream, BinaryIO]:
        if self.path == "-":
            raw: BinaryIO = sys.stdin.buffer
        else:
            raw = open(self.path, "rb")
            self._files.append(raw)
        peek = getattr(raw, "peek", None)
        magic = peek(2)[:2] if peek else b""
        if magic == _GZIP_MAGIC:
            gz = gzip.GzipFile(fileobj=raw, mode="rb")
            self._files.insert(0, gz)
            return gz, raw
        return raw, raw

    def __exit__(self, *exc: object) -> None:
        for f in self._files:
            f.close()


def read_blocks(
    stream: Stream, raw: BinaryIO, offset: int, skipping: bool, min_lines: int
) -> Iterator[Block]:
    """Yield blocks of at least `min_lines` complete lines (the last one may be shorter)."""
    if offset:
        if stream.seekable():
            stream.seek(offset)
        else:
            left = offset
            while left:
                got = stream.read(min(left, BLOCK_BYTES))
                if not got:
                    break
                left -= len(got)
    consumed = offset
    pending = b""
    lines: list[bytes] = []
    ascii_ok = True
    while True:
        data = stream.read(BLOCK_BYTES)
        if not data:
            break
        consumed += len(data)
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data = data[nl + 1 :]
            skipping = False
        data = pending + data
        parts = data.split(b"\n")
        pending = parts.pop()
        if len(pending) > MAX_PENDING:
            parts.append(pending[: MAX_LINE_BYTES + 1])
            pending = b""
            skipping = True
        ascii_ok = ascii_ok and data.isascii()
        lines.extend(parts)
        if len(lines) >= min_lines:
            yield Block(lines, ascii_ok, consumed - len(pending), skipping, _tell(raw))
            lines, ascii_ok = [], True
    if pending:
        lines.append(pending)
        ascii_ok = ascii_ok and pending.isascii()
    yield Block(lines, ascii_ok, consumed, False, _tell(raw))


def _tell(raw: BinaryIO) -> int:
    try:
        return raw.tell()
    except (OSError, ValueError):
        return 0
