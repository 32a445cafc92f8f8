"""The data directory: private modes, usable or a clear error, one writer at a time."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from rempart.datadir import DataDirError, DirLock, lock, prepare


def test_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    held = lock(tmp_path)
    with pytest.raises(DataDirError) as refused:
        lock(tmp_path)
    message = str(refused.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message and "since 20" in message
    held.release()
    lock(tmp_path).release()  # free again once released


def test_a_lock_file_without_holder_details_is_still_a_lock(tmp_path: Path) -> None:
    with DirLock(tmp_path / "x.lock", "test"):
        (tmp_path / "x.lock").write_text("garbage")
        with pytest.raises(DataDirError, match="names no holder"):
            DirLock(tmp_path / "x.lock", "test").acquire()


def test_prepare_creates_a_private_directory_and_closes_an_open_one(tmp_path: Path) -> None:
    fresh = prepare(tmp_path / "a" / "data")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    (old / "journal").mkdir()
    (old / "journal").chmod(0o755)
    (old / "state.sqlite3").write_text("")
    (old / "state.sqlite3").chmod(0o644)
    prepare(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o700
    assert stat.S_IMODE((old / "journal").stat().st_mode) == 0o700
    assert stat.S_IMODE((old / "state.sqlite3").stat().st_mode) == 0o600


def test_prepare_refuses_a_file_and_an_unwritable_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(DataDirError, match="is not a directory"):
        prepare(tmp_path / "f")
    with pytest.raises(DataDirError, match="cannot create"):
        prepare(tmp_path / "f" / "sub")
    with pytest.raises(DataDirError, match="does not exist"):
        prepare(tmp_path / "missing", create=False)
    if os.geteuid() == 0:
        return  # root writes anywhere; the check below needs an ordinary user
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(DataDirError, match="not writable"):
        prepare(ro)
