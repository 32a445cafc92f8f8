"""The ASN table (iptoasn format) and the `asn` key family in rules."""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import pytest

from rempart.config import ConfigError, from_mapping
from rempart.engine.asn import AsnTable, AsnTableError
from rempart.engine.engine import Engine
from rempart.model import Action, Attempt, Outcome, Protocol

T0 = 1_700_000_000.0

TABLE = "\n".join(
    [
        "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET",
        "1.0.1.0\t1.0.3.255\t0\tNone\tNot routed",
        "198.51.100.0\t198.51.101.255\t64500\tFR\tEXAMPLE-RESIDENTIAL",
        "203.0.113.0\t203.0.113.255\t64501\tDE\tEXAMPLE-HOSTING",
        "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64502\tNL\tEXAMPLE-V6",
        "",
    ]
)


def packed(ip: str) -> bytes:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return socket.inet_pton(family, ip)


def test_lookup_at_range_edges_and_outside() -> None:
    table = AsnTable.parse(TABLE.splitlines())
    assert table.lookup(packed("1.0.0.0")) == 13335
    assert table.lookup(packed("1.0.0.255")) == 13335
    assert table.lookup(packed("1.0.1.7")) == 0  # "Not routed"
    assert table.lookup(packed("198.51.101.255")) == 64500
    assert table.lookup(packed("198.51.102.0")) == 0
    assert table.lookup(packed("0.0.0.1")) == 0
    assert table.lookup(packed("2001:db8:1::5")) == 64502
    assert table.lookup(packed("2001:db9::1")) == 0
    assert table.ranges == 4
    assert table.describe(64501) == "AS64501 EXAMPLE-HOSTING (DE)"


def test_gzip_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ip2asn-combined.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(TABLE)
    assert AsnTable.load(path).lookup(packed("203.0.113.9")) == 64501


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1.0.0.0\t1.0.0.255", "3:.*expected range_start"),
        ("1.0.0.x\t1.0.0.255\t5", "3: field range_start: not an IP address"),
        ("1.0.0.0\t::1\t5", "3: range_start and range_end mix"),
        ("1.0.0.9\t1.0.0.1\t5", "3: range_end is before range_start"),
        ("1.0.0.0\t1.0.0.9\tAS5", "3: field AS_number"),
    ],
)
def test_bad_lines_name_the_line_and_field(line: str, message: str) -> None:
    lines = ["# comment", "9.9.9.0\t9.9.9.255\t19281\tUS\tQUAD9", line]
    with pytest.raises(AsnTableError, match=message):
        AsnTable.parse(lines, "t.tsv")


def test_overlapping_ranges_are_refused() -> None:
    lines = ["10.0.0.0\t10.0.0.255\t1", "10.0.0.128\t10.0.1.0\t2"]
    with pytest.raises(AsnTableError, match=r"overlapping ranges at 10\.0\.0\.128"):
        AsnTable.parse(lines)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AsnTableError, match=r"\[asn\] database: cannot read"):
        Engine(from_mapping({"asn": {"database": str(tmp_path / "absent.tsv")}}))


def test_asn_rule_denies_a_hosting_network_spread_over_many_ips(tmp_path: Path) -> None:
    path = tmp_path / "ip2asn.tsv"
    path.write_text(TABLE)
    settings = from_mapping(
        {
            "asn": {"database": str(path)},
            "policy": {
                "include_defaults": False,
                "rules": [
                    {
                        "name": "asn_spray",
                        "when": "failed_logins(asn, '1h') >= 20",
                        "action": "deny",
                        "message": "Refused from this network.",
                    }
                ],
            },
        }
    )
    engine = Engine(settings)
    # One failure per address, each on a different login: no per-IP or per-/24 rule could see
    # it, but all of it is announced by the same hosting AS (spread over its /24).
    for i in range(30):
        attempt = Attempt(f"user{i}@example.org", f"203.0.113.{i + 1}", Protocol.IMAP)
        engine.report(attempt, Outcome(success=False), T0 + i)
    hosting = Attempt("newcomer@example.org", "203.0.113.200", Protocol.IMAP)
    assert engine.decide(hosting, T0 + 60).action is Action.DENY
    assert engine.explain(hosting, T0 + 60)["asn"] == "AS64501 EXAMPLE-HOSTING (DE)"
    residential = Attempt("newcomer@example.org", "198.51.100.7", Protocol.IMAP)
    assert engine.decide(residential, T0 + 60).action is Action.ALLOW
    unrouted = Attempt("newcomer@example.org", "192.0.2.1", Protocol.IMAP)
    assert engine.decide(unrouted, T0 + 60).action is Action.ALLOW


def test_asn_family_needs_no_table_to_compile_and_never_matches_without_one() -> None:
    settings = from_mapping(
        {
            "policy": {
                "include_defaults": False,
                "rules": [{"name": "r", "when": "failures(asn, '1h') >= 1", "action": "deny"}],
            }
        }
    )
    engine = Engine(settings)
    attempt = Attempt("a@example.org", "203.0.113.1", Protocol.IMAP)
    engine.report(attempt, Outcome(success=False), T0)
    assert engine.decide(attempt, T0 + 1).action is Action.ALLOW


def test_asn_database_must_be_a_path() -> None:
    with pytest.raises((AsnTableError, ConfigError), match=r"\[asn\] database"):
        Engine(from_mapping({"asn": {"database": 5}}))


def test_campaign_detector_counts_failing_autonomous_systems(tmp_path: Path) -> None:
    path = tmp_path / "ip2asn.tsv"
    path.write_text(TABLE)
    engine = Engine(from_mapping({"asn": {"database": str(path)}}))
    sources = ["1.0.0.1", "1.0.0.2", "198.51.100.1", "198.51.101.9", "203.0.113.1", "2001:db8::1"]
    sources += ["192.0.2.1"]  # not in the table: an IP but no AS
    for i, ip in enumerate(sources):
        engine.report(Attempt(f"u{i}@example.org", ip, Protocol.IMAP), Outcome(False), T0 + i)
    engine.report(Attempt("ok@example.org", "1.0.0.9", Protocol.IMAP), Outcome(True), T0 + 8)
    assert engine.campaign is not None
    engine.tick(T0 + 60)
    figures = engine.campaign.state("imap").figures
    assert figures["failing_ips"] == pytest.approx(7 * figures["failing_asns"] / 4)
