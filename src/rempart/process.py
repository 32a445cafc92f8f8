"""`rempart serve` as a child process: start it on a free port, learn its URL, stop, restart.

For integration tests, benchmarks, and programs that embed Rempart in their own test suites.
The child's output is drained by a thread into a short buffer (`output`), so a chatty server
never blocks on a full pipe, and a server that fails to start is reported with what it said.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on (http://[^\s/]+:(\d+))/")


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

    def start(self) -> ServeProcess:
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

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return self.base + "/"
