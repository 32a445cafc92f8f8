"""The corpus secret: generated at first use, kept in a 0600 file in the data dir, never logged."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

KEY_FILE = "leaks.key"
KEY_BYTES = 32


class KeyFileError(RuntimeError):
    """The key file exists but cannot be used (wrong size, unreadable, too open)."""


def load_or_create_key(data_dir: Path) -> bytes:
    """Return the corpus key, creating it (mode 0600, O_EXCL so two processes agree) if absent."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES).hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        dfd = os.open(data_dir, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the leak-corpus key {path}: {exc}") from None
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path} does not hold a {KEY_BYTES}-byte hex key")
    return key
