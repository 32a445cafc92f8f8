"""The journals of a host with decision workers, read as one: records of every chain merged by
time and named by chain, each chain verified on its own, the first broken one named, and the
CLI's query, verify and export reading them all."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from rempart.cli import main
from rempart.ops.host_journals import HostJournals
from rempart.ops.journal import Journal

T0 = 1_800_000_000.0


def write(directory: Path, stamps: list[float], ip: str) -> None:
    journal = Journal(directory, flush_interval=0.01)
    journal.start()
    for ts in stamps:
        journal.append("note", ts, {"ip": ip, "at": ts})
    assert journal.flush()
    journal.close()


def host(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write(data / "journal", [T0, T0 + 3], "192.0.2.1")
    write(data / "workers" / "0" / "journal", [T0 + 1, T0 + 4], "192.0.2.2")
    write(data / "workers" / "1" / "journal", [T0 + 2], "192.0.2.3")
    (data / "workers" / "config.toml").write_text("")  # not a worker's directory
    return data


def test_records_are_merged_by_time_and_name_their_chain(tmp_path: Path) -> None:
    journals = HostJournals(host(tmp_path))
    records = list(journals.records())
    assert [r["at"] for r in records] == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4]
    assert [r.get("chain", "") for r in records] == ["", "workers/0", "workers/1", "", "workers/0"]
    assert [r["at"] for r in journals.records(ip="192.0.2.2")] == [T0 + 1, T0 + 4]
    assert journals.verify() == (5, None)


def test_a_broken_worker_chain_is_named(tmp_path: Path) -> None:
    data = host(tmp_path)
    (segment,) = sorted((data / "workers" / "1" / "journal").glob("segment-*.jsonl"))
    segment.write_text(segment.read_text().replace("192.0.2.3", "192.0.2.9"))
    count, broken = HostJournals(data).verify()
    assert broken is not None
    assert broken.segment == f"workers/1/{segment.name}" and broken.line == 1
    assert count == 4  # the primary's and worker 0's records, intact


def test_the_cli_reads_every_chain(tmp_path: Path) -> None:
    data = host(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "REMPART_API_PASSWORD"}
    runner = CliRunner(env=env)
    query = runner.invoke(main, ["journal", "--data-dir", str(data)])
    assert query.exit_code == 0, query.output
    assert [json.loads(line)["at"] for line in query.output.splitlines()] == [
        T0 + i for i in range(5)
    ]
    verify = runner.invoke(main, ["journal", "--data-dir", str(data), "verify"])
    assert verify.exit_code == 0, verify.output
    assert "5 records" in verify.output
    export = runner.invoke(main, ["journal", "--data-dir", str(data), "export"])
    assert export.exit_code == 0, export.output
    assert len([line for line in export.output.splitlines() if line.startswith("{")]) == 5
