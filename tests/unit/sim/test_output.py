"""Output: the table, the JSON file, the SVG chart, the detection document, the CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from rempart.sim import chart, detection, experiment, report
from rempart.sim.cli import sim
from tests.unit.sim.conftest import tiny

SC = tiny(
    leak={"size_per_user": 0.5},
    attack=[{"kind": "stuffing", "start_h": 1, "duration_h": 1, "rate_per_min": 30}],
)


def test_table_chart_json_and_doc(inputs: experiment.Inputs, tmp_path: Path) -> None:
    results = experiment.compare(SC, 1, inputs, ("none", "fail2ban"))
    text = report.table(results)
    lines = text.splitlines()
    assert lines[0].split()[0] == "policy" and len(lines) == 4
    assert lines[2].startswith("none") and lines[3].startswith("fail2ban")
    md = report.table(results, markdown=True)
    assert md.count("\n") == 3 and md.startswith("| policy |")
    report.save_json(results, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())[1]["policy"] == "fail2ban"
    svg_path = chart.write(results[:1], tmp_path / "c.svg", "t")
    root = ET.fromstring(svg_path.read_text())
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "legitimate traffic" in texts and "attack traffic" in texts
    html_path = chart.write(results, tmp_path / "c.svg", "t")
    assert html_path.suffix == ".html" and html_path.read_text().count("<svg") == 2


def test_losses_are_stated() -> None:
    def res(policy: str, takeovers: int, denied: int) -> dict:
        legit = {"users_denied": denied, "users_stepped_up": 0}
        return {"policy": policy, "takeovers": takeovers, "legit": legit}

    lost = detection.losses([res("none", 5, 0), res("fail2ban", 0, 3), res("rempart", 1, 10)])
    assert len(lost) == 1 and "fail2ban" in lost[0] and "fewer takeovers" in lost[0]
    lost = detection.losses([res("wforce", 0, 2), res("rempart", 0, 10)])
    assert "bothers fewer legitimate users" in lost[0]
    assert detection.losses([res("none", 3, 0), res("rempart", 0, 0)]) == []


def test_cli_run_writes_json_and_chart(tmp_path: Path) -> None:
    scenario = tmp_path / "mini.toml"
    scenario.write_text(
        'name = "mini"\nduration_h = 2\n[population]\nusers = 100\n'
        '[[attack]]\nkind = "stuffing"\nstart_h = 1\nduration_h = 1\n'
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        sim, ["run", str(scenario), "--policy", "fail2ban", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "fail2ban" in result.output
    data = json.loads((out / "mini-fail2ban-seed3.json").read_text())
    assert data[0]["policy"] == "fail2ban" and data[0]["seed"] == 3
    assert (out / "mini-fail2ban-seed3.svg").is_file()
    bad = CliRunner().invoke(sim, ["run", "no-such-scenario"])
    assert bad.exit_code != 0 and "shipped ones are" in bad.output
