"""A small client for a running `rempart serve`, used by the operator commands of the CLI."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rempart.config import Settings


class ClientError(RuntimeError):
    pass


class Client:
    def __init__(self, url: str, password: str) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"operator:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    @classmethod
    def for_settings(cls, settings: Settings, data_dir: str, url: str | None) -> Client:
        password = os.environ.get("REMPART_API_PASSWORD", "")
        if not password and settings.api_password_file:
            password = Path(settings.api_password_file).read_text().strip()
        if not password:
            path = Path(data_dir) / "api-password"
            if not path.exists():
                raise ClientError(f"no API password: set REMPART_API_PASSWORD or create {path}")
            password = path.read_text().strip()
        host = settings.server.host
        return cls(url or f"http://{host}:{settings.server.port}", password)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, headers=self.headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise ClientError(f"{exc.code}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClientError(f"cannot reach rempart at {self.url}: {exc}") from None
