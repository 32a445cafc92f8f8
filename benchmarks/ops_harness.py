"""Shared by the console's benchmark and screenshot scripts: a real `rempart serve` subprocess,
an HTTP client for its APIs, and Debian's chromium driven headless by Selenium.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from rempart.process import ServeProcess

PASSWORD = "ops-bench-password"
AUTH = "Basic " + base64.b64encode(f"wforce:{PASSWORD}".encode()).decode()
REMPART = (sys.executable, "-c", "from rempart.cli import main; main()")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


class Server(ServeProcess):
    """`rempart serve --port 0` with its own data directory; `base` is its URL."""

    def __init__(self, config: str = "", data_dir: Path | None = None) -> None:
        data_dir = data_dir or Path(tempfile.mkdtemp(prefix="rempart-ops-"))
        body = "[journal]\nflush_interval = 0.05\n" + config
        super().__init__(data_dir, body, PASSWORD, config_path=data_dir / "rempart.toml")
        self.start()

    def api(self, command: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            f"{self.base}/?command={command}",
            data=json.dumps(body).encode(),
            headers={"Authorization": AUTH, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*REMPART, *args, "--data-dir", str(self.data_dir)], capture_output=True, text=True
        )


def chromium(width: int = 1440, height: int = 1000) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="rempart-chromium-")
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=DriverService(driver_path), options=options)


def sign_in(driver: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(server.base + "/ops/login")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "signin").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/ops/"))
