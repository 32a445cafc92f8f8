"""Child processes on loopback: `rempart serve` (start it on a free port, learn its URL, stop,
restart) and a private `redis-server` for the scale-out mode.

For integration tests, benchmarks, and programs that embed Rempart in their own test suites.
The child's output is drained by a thread into a short buffer (`output`), so a chatty server
never blocks on a full pipe, and a server that fails to start is reported with what it said.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

_LISTENING = re.compile(r"rempart listening on (http://[^\s/]+:(\d+))/")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """One `rempart serve` with its own data directory and configuration file.

    The configuration is written beside the data directory (`<data_dir>.toml`) unless
    `config_path` says where, so the data directory holds only what the server writes.
    `restart()` keeps the port.
    """

    def __init__(
        self,
        data_dir: Path,
        config: str = "",
        password: str = "",
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
        config_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config_path = config_path or self.data_dir.parent / f"{self.data_dir.name}.toml"
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config)
        self.password = password
        self.env = env or {}
        self.start_timeout = start_timeout
        self.port = 0
        self.base = ""
        self.proc: subprocess.Popen[str] | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=200)

    def start(self) -> Self:
        env = {**os.environ, **self.env}
        if self.password:
            env["REMPART_API_PASSWORD"] = self.password
        command = [sys.executable, "-m", "rempart", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), "--config", str(self.config_path)]
        self.proc = proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = _LISTENING.search(line)
            if match:
                self.base, self.port = match.group(1), int(match.group(2))
                self.output.extend(lines)
                threading.Thread(target=self._drain, args=(proc,), daemon=True).start()
                return self
        self.stop()
        raise RuntimeError("rempart serve did not start:\n" + "".join(lines[-50:]))

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        """kill -9: no shutdown path runs (what a crash leaves behind)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return self.base + "/"


class RedisProcess:
    """`redis-server` bound to 127.0.0.1 on a free port, in its own directory, with no
    persistence (`--save ''`, no AOF); stopped and restarted at will, on the same port."""

    def __init__(self, root: Path, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError("redis-server is needed: apt-get install redis-server")
        self.binary = found
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.root)]
        command += ["--logfile", str(self.root / "redis.log")]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
