"""Every third-party module the simulator imports is a core dependency or in the `sim` extra,
and the README names that extra where it shows the simulator (issue 13 item 11)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Import names that differ from their distribution's name.
DISTRIBUTION = {"fake_useragent": "fake-useragent", "yaml": "pyyaml"}


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_simulator_imports_are_declared_and_the_extra_is_documented() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    sim = _requirement_names(project["optional-dependencies"]["sim"])
    imported: set[str] = set()
    for path in (ROOT / "src" / "rempart" / "sim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {
        DISTRIBUTION.get(m, m).replace("_", "-")
        for m in imported
        if m not in sys.stdlib_module_names and m not in ("rempart", "__future__")
    }
    assert third_party - core <= sim, third_party - core - sim
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Simulator", 1)[1].split("\n## ", 1)[0]
    if third_party - core:
        assert "rempart[sim]" in section
