"""`rempart learn`: history into familiarity and detector baselines, once per file content,
with bad input reported by file and line and the rest learned."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rempart.adapters.logparse import load_parser, regex_parser
from rempart.cli import main
from rempart.config import Settings
from rempart.learn import DETECTOR_STATE, LearnError, learn, series, timestamp
from rempart.state.sqlite import SqliteStore

T0 = 1_795_000_000.0  # 2026-11-18


def dovecot_lines(start: float, minutes: int, per_minute: int = 30) -> list[str]:
    lines = []
    for m in range(minutes):
        for k in range(per_minute):
            t = start + m * 60 + k * 2
            stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(t))
            user = f"user{k}@example.org"
            ip = f"198.51.{k}.{10 + k % 5}"
            if k % 15 == 0:
                lines.append(
                    f"{stamp} imap-login: Info: Disconnected: Connection closed (auth failed, "
                    f"1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip={ip}, "
                    f"lip=192.0.2.1, session=<x{m}{k}>"
                )
            else:
                lines.append(
                    f"{stamp} imap-login: Info: Login: user=<{user}>, method=PLAIN, rip={ip}, "
                    f"lip=192.0.2.1, mpid=1, session=<y{m}{k}>"
                )
    return lines


def write(path: Path, lines: list[str], mtime: float = T0 + 86400) -> Path:
    data = "".join(line + "\n" for line in lines).encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def state_of(data: Path) -> tuple[dict, list]:
    store = SqliteStore(data)
    try:
        detector = json.loads(store.get_setting(DETECTOR_STATE) or "null")
        familiarity = sorted(store.load_familiarity())
    finally:
        store.close()
    return detector, familiarity


def test_timestamps() -> None:
    assert timestamp("Nov 18 08:26:40 imap-login: x", 2026) == T0 - 0.0 + (
        timestamp("2026-11-18T08:26:40Z x", 2026) - T0  # type: ignore[operator]
    )
    assert timestamp("2026-11-18T09:26:40+01:00 x", 2026) == timestamp("Nov 18 08:26:40 x", 2026)
    nginx = '1.2.3.4 - - [18/Nov/2026:08:26:40 +0000] "POST /login"'
    assert timestamp(nginx, 2026) == timestamp("Nov 18 08:26:40 x", 2026)
    assert timestamp("no time here", 2026) is None


def test_rotated_series_oldest_first(tmp_path: Path) -> None:
    names = ["mail.log", "mail.log.1", "mail.log.2.gz", "mail.log.10.gz", "other.log"]
    paths = [tmp_path / n for n in names]
    ordered = [p.name for p in series([*paths, paths[0]])]
    assert ordered == ["mail.log.10.gz", "mail.log.2.gz", "mail.log.1", "mail.log", "other.log"]


def test_learns_familiarity_and_baselines_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = write(tmp_path / "dovecot.log.1.gz", dovecot_lines(T0, 60))
    new = write(tmp_path / "dovecot.log", dovecot_lines(T0 + 3600, 60))
    summary = learn(Settings.default(), data, [new, old], load_parser("dovecot"))
    assert not summary.problems
    assert summary.successes == 60 * 28 * 2 and summary.failures == 60 * 2 * 2
    detector, familiarity = state_of(data)
    assert ("user1@example.org", "n4:198.51.1", T0 + 3600 + 59 * 60 + 2) in familiarity
    imap = detector["protocols"]["imap"]
    assert imap["learned_ticks"] > 600  # nearly two hours of 10-s ticks
    failures_mean = imap["baselines"]["failures"][0]
    assert 0.05 < failures_mean < 0.08  # 2 in 30 fail; the 3 % prior has faded
    # Again, and the rotated copy under another name: nothing changes.
    (tmp_path / "copy.log").write_bytes(new.read_bytes())
    again = learn(
        Settings.default(), data, [old, new, tmp_path / "copy.log"], load_parser("dovecot")
    )
    assert again.successes == 0 and all(f.skipped for f in again.files)
    assert state_of(data) == (detector, familiarity)


def test_grown_file_is_resumed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lines = dovecot_lines(T0, 30)
    log = write(tmp_path / "dovecot.log", lines[:500])
    first = learn(Settings.default(), data, [log], load_parser("dovecot"))
    write(log, lines)
    second = learn(Settings.default(), data, [log], load_parser("dovecot"))
    assert first.successes + second.successes == sum("Login:" in line for line in lines)
    assert second.files[0].resumed_at > 0


def test_bad_input_named_by_file_and_line_rest_learned(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lines = dovecot_lines(T0, 2)
    lines[3] = lines[3].replace("rip=198.51.3.13", "rip=999.1.1.1")
    lines[5] = "\0\1\2binary" + lines[5]
    log = write(tmp_path / "dovecot.log", lines)
    truncated = tmp_path / "old.log.1.gz"
    truncated.write_bytes(gzip.compress("".join(x + "\n" for x in lines).encode())[:300])
    missing = tmp_path / "nope.log"
    summary = learn(Settings.default(), data, [log, truncated, missing], load_parser("dovecot"))
    problems = "\n".join(summary.problems)
    assert f"{log}:4: field 'ip'" in problems
    assert f"{log}:6: binary data" in problems
    assert f"{truncated}: read stopped" in problems or f"{truncated}:" in problems
    assert f"{missing}: cannot read" in problems
    assert summary.successes >= 56 - 2  # every other line of the good file learned
    # The truncated file's good part is recorded: learning it again adds nothing.
    again = learn(Settings.default(), data, [log, truncated], load_parser("dovecot"))
    assert again.successes == 0 and again.failures == 0


def test_regex_parser_and_cli(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(
        log,
        [
            "2026-11-18T08:26:40Z Failed password for root from 203.0.113.9 port 22",
            "2026-11-18T08:26:41Z Failed password for admin from 203.0.113.9 port 22",
        ],
    )
    data = tmp_path / "data"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "learn",
            str(log),
            "--data-dir",
            str(data),
            "--quiet",
            "--regex",
            r"Failed password for (?P<login>\S+) from (?P<ip>\S+)",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 failures" in result.output
    bad = runner.invoke(main, ["learn", str(log), "--data-dir", str(data), "--parser", "exim"])
    assert bad.exit_code == 2 and "unknown parser 'exim'" in bad.output
    assert regex_parser(r"(?P<ip>\S+)").name == "regex"


def test_refuses_a_data_dir_held_by_a_server(tmp_path: Path) -> None:
    import fcntl

    data = tmp_path / "data"
    data.mkdir()
    with (data / "rempart.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LearnError, match="in use"):
            learn(Settings.default(), data, [], load_parser("dovecot"))
