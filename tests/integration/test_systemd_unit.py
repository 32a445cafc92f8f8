"""The shipped systemd unit passes `systemd-analyze verify` and keeps its hardening.

Skipped where systemd-analyze is missing, failed instead in CI (REMPART_REQUIRE_SYSTEMD=1)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "rempart.service"
HARDENING = {
    "DynamicUser": "yes",
    "StateDirectory": "rempart",
    "StateDirectoryMode": "0700",
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "LimitNOFILE": "65536",
}


def _settings(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), value.strip())
    return out


def test_unit_keeps_its_hardening() -> None:
    settings = _settings(UNIT.read_text())
    for key, value in HARDENING.items():
        assert settings.get(key) == value, f"{key}={settings.get(key)!r}, want {value!r}"
    assert "--data-dir ${STATE_DIRECTORY}" in settings["ExecStart"]


@pytest.mark.parametrize("name", ["rempart.service", "rempart-nft.service"])
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    need("systemd", analyze is not None, "systemd-analyze not found (Debian package systemd)")
    assert analyze is not None
    # ExecStart names the installed program; verify checks that it exists and is executable.
    program = shutil.which("rempart") or str(Path(sys.executable).parent / "rempart")
    need("systemd", Path(program).exists(), "no installed `rempart` program to point at")
    unit = tmp_path / name
    unit.write_text((UNIT.parent / name).read_text().replace("/usr/local/bin/rempart", program))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # Warnings about the host's other units are not ours; any line naming this unit is.
    ours = [line for line in result.stderr.splitlines() if name in line]
    assert result.returncode == 0 and not ours, result.stderr
