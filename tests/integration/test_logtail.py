"""Log tailing with real components: a real Dovecot (no auth_policy hook at all) writes its log
and `rempart serve` follows it; and the `rempart tail` command reporting to a running server
over the native API, stopped and restarted across a rotation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.rig import PASSWORD, SPRAY_RULE, DovecotRig, RempartProcess

pytestmark = [pytest.mark.timeout(90)]

USERS = {"alice@example.org": "correct-horse", "bob@example.org": "tr0ub4dor"}


def blocked_ips(rempart: RempartProcess) -> list[str]:
    status, body = rempart.request("GET", "/?command=getBL")
    assert status == 200
    return [e["ip"].removesuffix("/32") for e in body["bl_entries"] if "ip" in e]


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.dovecot
def test_dovecot_log_failures_put_the_source_on_the_block_list(tmp_path: Path) -> None:
    log = tmp_path / "dovecot" / "dovecot.log"
    config = (
        SPRAY_RULE
        + f'\n[tail]\nfiles = [{{ path = "{log}", parser = "dovecot" }}]\npoll_seconds = 0.1\n'
    )
    rempart = RempartProcess(tmp_path / "rempart-data", config).start()
    dovecot = DovecotRig(tmp_path / "dovecot", rempart.port, USERS, policy=False)
    home, attacker = "127.0.0.2", "127.0.0.77"
    try:
        dovecot.start()
        assert dovecot.imap_login("alice@example.org", "correct-horse", home) == "OK"
        # Dovecot delays each failure by 2 s: the attacker's tries run side by side. Four for a
        # rule at three: the keyed distinct count may merge two of three logins (about 1 % of
        # fresh data directories, whose sketch key is random).
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda i: dovecot.imap_login(f"user{i}@example.org", "123456", attacker),
                    range(4),
                )
            )
        assert all("Authentication failed" in a for a in answers), answers
        wait_for(lambda: attacker in blocked_ips(rempart))
        assert home not in blocked_ips(rempart)
        # The success taught Rempart alice's network, as a hook would have.
        status, explained = rempart.request(
            "POST", "/v1/explain", {"login": "alice@example.org", "ip": home, "protocol": "imap"}
        )
        assert status == 200 and explained["signals"]["familiar_network"] is True
        # There is no hook to refuse the next login, so Dovecot still answers; the block list
        # is what the data plane (nftables, a firewall) enforces.
        _, stats = rempart.request("GET", "/?command=stats")
        assert stats["report_outcomes"]["failures"] >= 3
        assert stats["blocklist_entries"] == 1
    finally:
        dovecot.stop()
        rempart.stop()
    assert "auth failed, 1 attempts" in dovecot.log()


def failure(n: int, ip: str) -> str:
    # The format Dovecot 2.3.19 writes (see src/rempart/adapters/logparsers/dovecot.toml).
    return (
        f"Nov 23 17:17:39 imap-login: Info: Disconnected: Connection closed (auth failed, 1 "
        f"attempts in 2 secs): user=<user{n}@example.org>, method=PLAIN, rip={ip}, "
        f"lip=127.0.0.1, session=<s{n}>\n"
    )


def tail_once(rempart: RempartProcess, log: Path, state: Path) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rempart",
            "tail",
            "--once",
            "--parser",
            "dovecot",
            "--from-start",
            "--url",
            rempart.url,
            "--state-file",
            str(state),
            str(log),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_tail_command_reports_over_the_api_across_restarts_and_rotation(tmp_path: Path) -> None:
    rempart = RempartProcess(tmp_path / "rempart-data", SPRAY_RULE).start()
    log, state = tmp_path / "mail.log", tmp_path / "offsets.json"
    try:
        log.write_text(
            failure(1, "192.0.2.10") + "a line of no interest\n" + failure(2, "192.0.2.10")
        )
        assert "3 lines, 2 events, 1 ignored, 0 bad" in tail_once(rempart, log, state)
        assert "192.0.2.10" not in blocked_ips(rempart)

        # Run again with nothing new: nothing is reported twice.
        assert "0 lines, 0 events" in tail_once(rempart, log, state)
        _, stats = rempart.request("GET", "/?command=stats")
        assert stats["report_outcomes"]["failures"] == 2

        # While the tailer is down the file grows and is rotated; a new file starts.
        # Two more accounts from 192.0.2.10 for a rule at three: the keyed distinct count may
        # merge two of three logins (about 1 % of fresh data directories).
        with open(log, "a") as fh:
            fh.write(
                failure(3, "192.0.2.10")
                + "not a dovecot line: rip=999\n"
                + failure(6, "192.0.2.10")
            )
        log.rename(tmp_path / "mail.log.1")
        log.write_text(failure(4, "198.51.100.20"))
        assert "4 lines, 3 events, 1 ignored" in tail_once(rempart, log, state)
        _, stats = rempart.request("GET", "/?command=stats")
        assert stats["report_outcomes"]["failures"] == 5
        # The third and fourth distinct accounts from 192.0.2.10 crossed the spray threshold.
        assert blocked_ips(rempart) == ["192.0.2.10"]

        # The server down: the tailer says so and keeps the lines for the next run.
        rempart.stop()
        with open(log, "a") as fh:
            fh.write(failure(5, "198.51.100.20"))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "rempart",
                "tail",
                "--once",
                "--parser",
                "dovecot",
                "--url",
                rempart.url,
                "--state-file",
                str(state),
                str(log),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
            timeout=30,
            check=False,
        )
        assert done.returncode != 0 and "cannot reach rempart" in done.stderr
        rempart.start()
        assert "1 lines, 1 events" in tail_once(rempart, log, state)
    finally:
        rempart.stop()
