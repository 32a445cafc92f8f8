"""`rempart serve` as an operator meets it (issue 13 items 3, 7, 9, 11): one server per data
directory, private files, clear messages when it cannot start, HEAD for uptime monitors."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.integration.rig import RempartProcess


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rempart", "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_second_server_on_a_data_dir_refuses_naming_the_holder(tmp_path: Path) -> None:
    first = RempartProcess(tmp_path / "data").start()
    try:
        second = _serve("--data-dir", str(tmp_path / "data"), "--port", "0")
        assert second.returncode == 1
        assert f"in use by pid {first.proc.pid} on {socket.gethostname()}" in second.stderr
        assert "Traceback" not in second.stderr
        # The first one is untouched and still answers.
        assert first.request("GET", "/healthz", password=None)[0] == 200
        busy = _serve("--data-dir", str(tmp_path / "other"), "--port", str(first.port))
        assert busy.returncode == 1 and "port is already in use" in busy.stderr, busy.stderr
    finally:
        first.stop()
    nowhere = _serve("--data-dir", str(tmp_path / "d3"), "--host", "host.invalid", "--port", "0")
    assert nowhere.returncode == 1 and "does not resolve" in nowhere.stderr, nowhere.stderr
    assert "Traceback" not in nowhere.stderr


def test_data_files_are_readable_by_the_service_user_only(tmp_path: Path) -> None:
    os.umask(0o022)  # as a typical login shell: the server must not rely on it
    server = RempartProcess(tmp_path / "data").start()
    try:
        status, _ = server.command(
            "addBLEntry", {"ip": "192.0.2.1", "reason": "test", "expire_secs": 3600}
        )
        assert status == 200
        server.command("allow", {"login": "a@example.org", "remote": "192.0.2.9", "pwhash": "0a"})
    finally:
        server.stop()
    files = list((tmp_path / "data").rglob("*"))
    names = {p.name for p in files}
    assert {"state.sqlite3", "journal", "fingerprint.key", "accounts.sqlite"} <= names, names
    assert any(n.startswith("segment-") for n in names)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} has mode {mode:o}"


def test_head_answers_like_get_without_a_body(tmp_path: Path) -> None:
    server = RempartProcess(tmp_path / "data").start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert body == b""
        get_status, page = server.request("GET", "/status", password=None)
        assert get_status == 200
        assert f"Content-Length: {len(page.encode())}".encode() in head
    finally:
        server.stop()
