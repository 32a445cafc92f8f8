"""wforce 3.0.1 compatibility of the wforce API against a running `rempart serve`, point by point
(issue 18), written from wforce's documented behaviour and source, not from its test suite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.rig import PASSWORD, RempartProcess

WFORCE_TIME = re.compile(
    r"^\d{4}-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d\d \d\d:\d\d:\d\d$"
)
DOVECOT = {"login": "", "remote": "", "pwhash": "0ed6", "protocol": "imap", "tls": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RempartProcess]:
    proc = RempartProcess(tmp_path_factory.mktemp("compat") / "data").start()
    yield proc
    proc.stop()


def allow(server: RempartProcess, login: str, ip: str, **extra: Any) -> dict[str, Any]:
    status, answer = server.command("allow", {**DOVECOT, "login": login, "remote": ip, **extra})
    assert status == 200, answer
    return answer


def report(server: RempartProcess, login: str, ip: str, success: bool) -> None:
    body = {**DOVECOT, "login": login, "remote": ip, "success": success, "policy_reject": False}
    assert server.command("report", body) == (200, {"status": "ok"})


def add(server: RempartProcess, command: str = "addBLEntry", **body: Any) -> tuple[int, Any]:
    return server.command(command, {"expire_secs": 3600, "reason": "test", **body})


def entries(server: RempartProcess, command: str = "getBL") -> list[dict[str, str]]:
    status, answer = server.request("GET", f"/?command={command}")
    assert status == 200
    return answer["wl_entries" if command == "getWL" else "bl_entries"]


def journal(server: RempartProcess, kind: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rempart",
            "journal",
            "--kind",
            kind,
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


# 1 ------------------------------------------------------------------------------------------------
def test_reset_lifts_automatic_and_operator_blocks(server: RempartProcess) -> None:
    login, ip = "resetbaddie@example.org", "128.0.0.1"
    for _ in range(12):
        report(server, login, ip, False)
    assert allow(server, login, ip)["status"] == -1  # an automatic ip+login block
    assert any(e.get("iplogin") == f"{ip}:{login}" for e in entries(server))
    assert add(server, login=login) == (200, {"status": "ok"})
    assert add(server, ip=ip) == (200, {"status": "ok"})
    assert server.command("reset", {"login": login, "ip": ip}) == (200, {"status": "ok"})
    assert allow(server, login, ip)["status"] == 0
    left = [e for e in entries(server) if login in json.dumps(e) or ip in json.dumps(e)]
    assert left == []
    lifted = [r for r in journal(server, "list_del") if r.get("by") == "api:reset"]
    assert {r["entry_kind"] for r in lifted} >= {"ip", "login", "ip_login"}, lifted


def test_reset_of_one_key_lifts_that_key_only(server: RempartProcess) -> None:
    add(server, login="keep@example.org")
    add(server, ip="128.0.0.9")
    assert server.command("reset", {"ip": "128.0.0.9"}) == (200, {"status": "ok"})
    keys = [e.get("ip") or e.get("login") for e in entries(server)]
    assert "keep@example.org" in keys and "128.0.0.9/32" not in keys
    status, answer = server.command("reset", {})
    assert (status, answer["reason"]) == (400, "No ip, login or ja3 field supplied")


# 2 ------------------------------------------------------------------------------------------------
def test_get_bl_and_wl_answer_wforces_flat_list(server: RempartProcess) -> None:
    add(server, ip="10.1.1.1", reason="flat ip")
    add(server, netmask="10.9.0.0/16", reason="flat net")
    add(server, login="flat@example.org", reason="flat login")
    add(server, ip="10.3.3.3", login="bpair@example.org", reason="flat pair")
    add(server, "addWLEntry", ip="10.4.4.4", reason="trusted")
    listed = {e["reason"]: e for e in entries(server) if e["reason"].startswith("flat")}
    assert listed["flat ip"]["ip"] == "10.1.1.1/32"
    assert listed["flat net"]["ip"] == "10.9.0.0/16"
    assert listed["flat login"]["login"] == "flat@example.org"
    assert listed["flat pair"]["iplogin"] == "10.3.3.3:bpair@example.org"
    for entry in listed.values():
        assert len(entry) == 3 and WFORCE_TIME.match(entry["expiration"]), entry
    (trusted,) = entries(server, "getWL")
    assert trusted == {
        "ip": "10.4.4.4/32",
        "expiration": trusted["expiration"],
        "reason": "trusted",
    }
    expires = time.mktime(time.strptime(trusted["expiration"], "%Y-%b-%d %H:%M:%S")) - time.timezone
    assert abs(expires - (time.time() + 3600)) < 60  # UTC, as wforce prints it
    # wforce keys an address and its /32 alike: deleting one form deletes the other.
    assert server.command("delBLEntry", {"netmask": "10.1.1.1/32"}) == (200, {"status": "ok"})
    assert all(e["reason"] != "flat ip" for e in entries(server))


# 3 ------------------------------------------------------------------------------------------------
def test_expire_secs_is_mandatory_and_zero_expires_at_once(server: RempartProcess) -> None:
    status, answer = server.command("addBLEntry", {"ip": "10.5.5.5", "reason": "r"})
    assert (status, answer) == (
        400,
        {
            "status": "failure",
            "reason": "Missing mandatory expire_secs field",
            "error": answer["error"],
        },
    )
    assert add(server, ip="10.5.5.5", expire_secs=0) == (200, {"status": "ok"})
    assert allow(server, "zero@example.org", "10.5.5.5")["status"] == 0
    assert all(e.get("ip") != "10.5.5.5/32" for e in entries(server))
    for bad in (-1, 10**12, "soon"):
        status, answer = add(server, ip="10.5.5.6", expire_secs=bad)
        assert status == 400 and "expire_secs" in answer["reason"], answer


# 4 ------------------------------------------------------------------------------------------------
def test_deleting_an_absent_entry_is_ok(server: RempartProcess) -> None:
    for command in ("delBLEntry", "delWLEntry"):
        assert server.command(command, {"login": "never-listed@example.org"}) == (
            200,
            {"status": "ok"},
        )


# 5 ------------------------------------------------------------------------------------------------
def test_ja3_entries_are_their_own_kind(server: RempartProcess) -> None:
    bad_tls, other = "771,4865-4867,0-23-65281,29-23,0", "771,49195,0-11,23,0"
    assert add(server, ja3=bad_tls, reason="ja3 bot") == (200, {"status": "ok"})
    assert add(server, ip="10.6.6.6", ja3=other, reason="ip ja3") == (200, {"status": "ok"})
    # No fingerprint, or another one: the source itself is not blocked.
    assert allow(server, "tls@example.org", "10.6.6.7")["status"] == 0
    assert allow(server, "tls@example.org", "10.6.6.7", attrs={"ja3": other})["status"] == 0
    assert allow(server, "tls@example.org", "10.6.6.6")["status"] == 0
    hit = allow(server, "tls@example.org", "10.6.6.7", attrs={"ja3": bad_tls})
    assert hit["status"] == -1
    assert (hit["r_attrs"]["blacklisted"], hit["r_attrs"]["key"]) == ("1", "ja3")
    assert hit["r_attrs"]["reason"] == "ja3 bot"
    assert allow(server, "tls@example.org", "10.6.6.6", attrs={"ja3": other})["status"] == -1
    listed = entries(server)
    assert {"ja3": bad_tls, "expiration": listed[0]["expiration"], "reason": "ja3 bot"} in [
        {**e, "expiration": listed[0]["expiration"]} for e in listed
    ]
    assert any(e.get("ipja3") == f"10.6.6.6:{other}" for e in listed)
    status, answer = add(server, login="x@example.org", ja3=other)
    assert status == 400 and "mutually exclusive" in answer["reason"]
    assert server.command("reset", {"ja3": bad_tls}) == (200, {"status": "ok"})
    assert allow(server, "tls@example.org", "10.6.6.7", attrs={"ja3": bad_tls})["status"] == 0


# 6 ------------------------------------------------------------------------------------------------
def test_get_db_stats_readyz_and_sync_done(server: RempartProcess) -> None:
    report(server, "dbstats@example.org", "10.7.7.7", False)
    status, answer = server.command("getDBStats", {"login": "dbstats@example.org"})
    assert status == 200
    assert answer["login"] == "dbstats@example.org"
    assert (answer["blacklisted"], answer["bl_reason"], answer["whitelisted"]) == (False, "", False)
    assert answer["stats"]["rempart"]["failures"] == 1
    add(server, login="dbstats@example.org", reason="helpdesk")
    answer = server.command("getDBStats", {"login": "dbstats@example.org"})[1]
    assert (answer["blacklisted"], answer["bl_reason"]) == (True, "helpdesk")
    assert WFORCE_TIME.match(answer["bl_expire"])
    answer = server.command("getDBStats", {"ip": "10.7.7.7", "login": "dbstats@example.org"})[1]
    assert answer["ip_login"] == "10.7.7.7:dbstats@example.org"
    status, answer = server.command("getDBStats", {})
    assert (status, answer["reason"]) == (400, "No ja3, ip or login field supplied")
    assert server.request("GET", "/command/readyz", password=None) == (200, "")
    assert server.request("GET", "/?command=syncDone") == (200, {"status": "ok"})
    assert server.request("GET", "/?command=ping") == (200, {"status": "ok"})


# 7 ------------------------------------------------------------------------------------------------
def _metrics(server: RempartProcess) -> dict[str, float]:
    with urllib.request.urlopen(server.base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_wforce_metric_names_beside_rempart_ones(server: RempartProcess) -> None:
    before = _metrics(server)
    add(server, ip="10.8.8.8", reason="metrics")
    allow(server, "m@example.org", "10.8.8.8")  # blacklisted
    allow(server, "m@example.org", "10.8.8.9")  # allowed
    after = _metrics(server)

    def grew(name: str) -> float:
        return after[name] - before.get(name, 0.0)

    assert grew('wforce_commands_total{cmd="allow"}') == 2
    assert grew('wforce_commands_total{cmd="addBLEntry"}') == 1
    assert grew('wforce_allow_status_total{status="blacklisted"}') == 1
    assert grew('wforce_allow_status_total{status="denied"}') == 1
    assert grew('wforce_allow_status_total{status="allowed"}') == 1
    assert grew('wforce_bl_entries{type="ip"}') == 1
    for name in (
        'wforce_bl_entries{type="ja3"}',
        'wforce_wl_entries{type="ip"}',
        'wforce_allow_status_total{status="tarpitted"}',
        'rempart_decisions_total{verdict="deny"}',
    ):
        assert name in after
    status, stats = server.request("GET", "/?command=stats")
    assert status == 200
    assert stats["commandstats"]["allow_blacklisted"] >= 1 and stats["allows"] >= 2
    assert {"reports", "denieds", "uptime", "user-msec", "sys-msec"} <= set(stats)
    assert "tracked_keys" in stats and "failures" in stats["report_outcomes"]


# 8 ------------------------------------------------------------------------------------------------
def test_a_body_that_is_not_utf8_is_judged(server: RempartProcess) -> None:
    def body(command: str, **extra: Any) -> bytes:
        fields = {**DOVECOT, "login": "caf@example.org", "remote": "10.10.0.1", **extra}
        return json.dumps(fields).encode().replace(b"caf@", b"caf\xe9@")

    status, answer = server.request("POST", "/?command=allow", raw=body("allow"))
    assert status == 200 and answer["status"] == 0
    reports = server.request("GET", "/?command=stats")[1]["reports"]
    raw = body("report", success=False, policy_reject=False)
    assert server.request("POST", "/?command=report", raw=raw) == (200, {"status": "ok"})
    assert server.request("GET", "/?command=stats")[1]["reports"] == reports + 1
    status, answer = server.request("POST", "/?command=allow", raw=b"{not json")
    assert status == 400  # malformed JSON stays a 400 (documented)


def test_list_logins_are_canonical_unless_exact_is_asked(
    server: RempartProcess, tmp_path: Path
) -> None:
    add(server, login="Bob+x@Ex.org", reason="canonical")
    assert allow(server, "bob@ex.org", "10.11.0.1")["status"] == -1
    exact = RempartProcess(
        tmp_path / "exact", config="[wforce]\nexact_list_logins = true\n"
    ).start()
    try:
        assert add(exact, login="Bob+x@Ex.org", reason="exact") == (200, {"status": "ok"})
        assert allow(exact, "bob@ex.org", "10.11.0.1")["status"] == 0
        assert allow(exact, "Bob+x@Ex.org", "10.11.0.1")["status"] == -1
        assert entries(exact)[0]["login"] == "Bob+x@Ex.org"
        assert exact.command("reset", {"login": "Bob+x@Ex.org"}) == (200, {"status": "ok"})
        assert allow(exact, "Bob+x@Ex.org", "10.11.0.1")["status"] == 0
    finally:
        exact.stop()


# 9 ------------------------------------------------------------------------------------------------
def lists_cli(server: RempartProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rempart", "lists", *args, "--url", server.base],
        capture_output=True,
        text=True,
        env={**os.environ, "REMPART_API_PASSWORD": PASSWORD},
        timeout=120,
    )


def test_lists_import_is_all_or_nothing_and_export_round_trips(tmp_path: Path) -> None:
    server = RempartProcess(tmp_path / "bulk").start()
    try:
        good = tmp_path / "good.csv"
        rows = ["type,key,expiration,reason"]
        rows += [f"ip,198.18.{i // 250}.{i % 250 + 1},+infinity,feed" for i in range(1500)]
        rows += [
            "login,stuffed@example.org,2099-Jan-01 00:00:00,leak",
            "iplogin,198.19.0.1:pair@example.org,2099-Jan-01 00:00:00,pair",
            'ipja3,"2001:db8::1:771,1-2,0",2099-Jan-01 00:00:00,v6 ja3',
            "ip,198.19.9.9,2001-Jan-01 00:00:00,long gone",
        ]
        bad = tmp_path / "bad.csv"
        bad.write_text(
            "\n".join(
                [*rows[:10], "ip,999.1.1.1,+infinity,typo", *rows[10:20], "login,,+infinity,empty"]
            )
            + "\n"
        )
        result = lists_cli(server, "import", str(bad))
        assert result.returncode == 1
        assert "line 11:" in result.stderr and "line 22:" in result.stderr, result.stderr
        assert "nothing imported: 2 bad lines" in result.stderr
        assert entries(server) == []
        good.write_text("\n".join(rows) + "\n")
        result = lists_cli(server, "import", str(good))
        assert result.returncode == 0, result.stderr
        assert "1503 entries added, 1 already expired" in result.stderr
        assert allow(server, "a@example.org", "198.18.3.7")["status"] == -1
        assert (
            allow(server, "a@example.org", "2001:db8::1", attrs={"ja3": "771,1-2,0"})["status"]
            == -1
        )
        out = tmp_path / "export.jsonl"
        result = lists_cli(server, "export", str(out))
        assert result.returncode == 0 and "1503 entries exported" in result.stderr
        exported = [json.loads(line) for line in out.read_text().splitlines()]
        assert exported == entries(server)
        # Entries survive a restart: the import was journaled and stored.
        server.restart()
        assert len(entries(server)) == 1503
        again = lists_cli(server, "import", str(out))
        assert again.returncode == 0 and "1503 entries added" in again.stderr
        assert len(entries(server)) == 1503  # an entry replaces the one with its key
    finally:
        server.stop()
