"""A real `rempart serve` keeps counting across a restart: the counters are written to
<data_dir>/counters.bin at SIGTERM and every `checkpoint_seconds`, so a spray that was one account
short of the rule before the restart is refused right after it, also after kill -9."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.rig import RempartProcess

SPRAYER = "203.0.113.66"


def attempt(login: str) -> dict[str, object]:
    return {"login": login, "remote": SPRAYER, "pwhash": "0abc", "protocol": "imap"}


def fail(server: RempartProcess, login: str) -> int:
    """Dovecot's sequence for a wrong password: allow, then report; the allow's status."""
    status, answer = server.command("allow", attempt(login))
    assert status == 200
    status, _ = server.command(
        "report", {**attempt(login), "success": False, "policy_reject": False}
    )
    assert status == 200
    return int(answer["status"])


def spray(server: RempartProcess, first: int, last: int) -> None:
    for i in range(first, last):
        assert fail(server, f"user{i}@example.org") == 0


def refused_next(server: RempartProcess, n: int) -> bool:
    status, answer = server.command("allow", attempt(f"user{n}@example.org"))
    assert status == 200
    return bool(answer["status"] < 0)


def metric(server: RempartProcess, name: str) -> float:
    status, text = server.request("GET", "/metrics")
    assert status == 200
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_spray_is_refused_after_sigterm_and_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RempartProcess(data).start()
    try:
        spray(server, 0, 11)  # the default spray rule refuses at 12 accounts
        server.stop()  # SIGTERM: the counters are written at stop
        assert (data / "counters.bin").stat().st_size > 0
        server.start()
        assert "restored the counters of" in "".join(server.output)
        spray(server, 11, 12)
        assert refused_next(server, 12)
    finally:
        server.stop()

    # The control: the same run without the checkpoint lets the source go on.
    control = RempartProcess(tmp_path / "control").start()
    try:
        spray(control, 0, 11)
        control.stop()
        (tmp_path / "control" / "counters.bin").unlink()
        control.start()
        spray(control, 11, 12)
        assert not refused_next(control, 12)
    finally:
        control.stop()


def test_counters_written_every_interval_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RempartProcess(data, "[state]\ncheckpoint_seconds = 1\n").start()
    try:
        spray(server, 0, 11)
        time.sleep(2.5)  # at least one periodic checkpoint after the last report
        written = metric(server, "rempart_counter_checkpoint_last_written_timestamp_seconds")
        assert time.time() - 5 < written <= time.time()
        assert metric(server, "rempart_counter_checkpoint_failures_total") == 0
        server.kill()
        server.start()
        assert metric(server, "rempart_counter_checkpoint_restored_keys") > 11
        status, stats = server.command("stats")
        assert status == 200
        assert stats["counters_checkpoint"]["restored_keys"] > 11
        assert stats["counters_checkpoint"]["every_s"] == 1
        spray(server, 11, 12)
        assert refused_next(server, 12)
    finally:
        server.stop()


def test_an_operators_reset_is_not_undone_by_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RempartProcess(data, "[state]\ncheckpoint_seconds = 3600\n").start()
    try:
        spray(server, 0, 11)
        server.stop()  # saved at stop: a restart from here refuses the 12th account
        server.start()
        status, _ = server.command("reset", {"ip": SPRAYER})
        assert status == 200
        time.sleep(2.5)  # the reset is checkpointed at the next second, not the next hour
        server.kill()
        server.start()
        spray(server, 11, 12)
        assert not refused_next(server, 12)
    finally:
        server.stop()
