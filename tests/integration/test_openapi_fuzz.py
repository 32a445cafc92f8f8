"""Property-based fuzzing of a live `rempart serve`, driven by its own OpenAPI document.

Schemathesis (the `test` extra) reads the document the server serves at /openapi.json and sends
generated requests to every operation, valid and invalid ones (`--mode all`: wrong types, values
out of range, missing fields), authenticated with the API password, for a bounded time
(REMPART_FUZZ_SECONDS, 60 by default). A small leak corpus is
ingested first, so the password-check and account routes run, and `fuzz_hooks.py` puts numbers
of absurd magnitude (1e17, 1e300 seconds...) into generated bodies. The proof: no answer is a 5xx, the server never crashes
or logs a handler failure, and after the run it still decides, and every listing, page and
console view still shows whatever the fuzzer managed to store.
The figures (requests, answers by status) are printed and recorded as junit properties.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from rempart.process import ServeProcess
from tests.integration.test_ops_http import Client

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "openapi-fuzz-password-0123"
SECONDS = int(os.environ.get("REMPART_FUZZ_SECONDS", "60"))
CONFIG = """
[[shed.services]]
name = "web"
upstream = "127.0.0.1:9"
probe_path = ""
"""


def schemathesis_command() -> list[str]:
    """The `st` next to this interpreter (the test extra installs it), else on PATH."""
    beside = Path(sys.executable).with_name("st")
    found = str(beside) if beside.exists() else shutil.which("st")
    assert found, "schemathesis is missing: pip install -e '.[test]'"
    return [found]


def answers_by_status(ndjson: Path) -> collections.Counter[int | None]:
    """Every request schemathesis sent, counted by the status of its answer (None: no answer)."""
    statuses: collections.Counter[int | None] = collections.Counter()
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        for interaction in finished["recorder"].get("interactions", {}).values():
            response = interaction.get("response")
            statuses[response["status_code"] if response else None] += 1
    return statuses


def api(base: str, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    token = base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def test_fuzzing_the_documented_api_finds_no_server_error(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    # A small leak corpus, so the password-check and account routes answer for real, not 404.
    combo = tmp_path / "combo.txt"
    combo.write_text("alice@example.org:hunter2\nbob@example.org:Password1\n")
    ingest = [sys.executable, "-m", "rempart", "leaks", "ingest", "--no-progress"]
    subprocess.run(
        [*ingest, "--data-dir", str(tmp_path / "data"), str(combo)], check=True, capture_output=True
    )
    server = ServeProcess(tmp_path / "data", CONFIG, PASSWORD).start()
    reports = tmp_path / "reports"
    try:
        status, schema = api(server.base, "GET", "/openapi.json")
        assert status == 200
        (tmp_path / "openapi.json").write_bytes(schema)
        command = [
            *schemathesis_command(),
            "run",
            str(tmp_path / "openapi.json"),
            "--url",
            server.base,
            "--auth",
            f"ci:{PASSWORD}",
            "--checks",
            "not_a_server_error",
            "--mode",
            "all",
            "--max-time",
            str(SECONDS),
            "--workers",  # one: hypothesis's strategy reprs race in threads (ast SystemError)
            "1",
            "--request-timeout",
            "10",
            "--no-shrink",
            "--report",
            "json,ndjson",
            "--report-dir",
            str(reports),
            "--output-truncate",
            "false",
        ]
        hooks = {
            "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        run = subprocess.run(
            command,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SECONDS + 120,
            env={**os.environ, **hooks},
        )
        (report_path,) = reports.glob("json-*.json")
        (events_path,) = reports.glob("ndjson-*.ndjson")
        report = json.loads(report_path.read_text())
        statuses = answers_by_status(events_path)
        requests = sum(statuses.values())
        server_errors = sum(n for code, n in statuses.items() if code is not None and code >= 500)
        figures = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items(), key=str))
        print(
            f"\nschemathesis (seed {report['seed']}): {requests} requests in "
            f"{report['running_time']:.0f} s over {report['operations']['tested']} operations, "
            f"{server_errors} server errors; answers by status: {figures}"
        )
        record_property("fuzz_requests", requests)
        record_property("fuzz_server_errors", server_errors)
        record_property("fuzz_seed", report["seed"])

        assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
        assert report["failures"] == [] and report["errors"] == []
        assert report["operations"]["tested"] == report["operations"]["total"] >= 25
        assert server_errors == 0 and statuses[None] == 0
        assert requests >= 20 * SECONDS  # the run was real, not a handful of requests

        # Still up, still deciding, nothing logged as a handler failure.
        assert server.proc is not None and server.proc.poll() is None
        assert api(server.base, "GET", "/healthz")[0] == 200
        status, body = api(
            server.base, "POST", "/v1/decide", {"login": "after@example.org", "ip": "192.0.2.1"}
        )
        # Any verdict: the fuzzer may have closed a protocol or blocked this address.
        assert status == 200 and json.loads(body)["verdict"] in (
            "allow",
            "delay",
            "deny",
            "step_up",
        )
        # Whatever the fuzzer stored, every listing and page still shows it.
        for path in ("/command/getBL", "/command/getWL", "/command/stats", "/v1/posture"):
            assert api(server.base, "GET", path)[0] == 200, path
        for path in ("/status.json", "/metrics", "/status"):
            with urllib.request.urlopen(server.base + path, timeout=10) as response:
                assert response.status == 200, path
        console = Client(server.base)
        assert console.login(PASSWORD) == 303
        for path in ("/ops/", "/ops/journal", "/ops/api/snapshot"):
            status, _, _ = console.request("GET", path)
            assert status == 200, path
        log = "".join(server.output)
        assert "Traceback" not in log and "handler failed" not in log, log[-4000:]
    finally:
        server.stop()
