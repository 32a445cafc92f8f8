"""Settings, time parsing, SVG charts and the report builder on hand-made records."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from rempart.config import ConfigError, from_mapping
from rempart.ops import report, timeparse
from rempart.ops.settings import OpsSettings
from rempart.ops.svg import hbars, stacked_columns


def test_settings() -> None:
    s = OpsSettings.of(from_mapping({}))
    assert s.session_minutes == 30 and s.cookie_secure == "auto" and "imap" in s.services
    s = OpsSettings.of(
        from_mapping({"ops": {"cookie_secure": True}, "status": {"services": {"pay": "Payments"}}})
    )
    assert s.cookie_secure == "true" and s.services == {"pay": "Payments"}
    for bad in (
        {"ops": {"session_minutes": 0}},
        {"ops": {"cookie_secure": "maybe"}},
        {"ops": {"x": 1}},
    ):
        with pytest.raises(ConfigError):
            from_mapping(bad)


def test_timeparse() -> None:
    assert timeparse.parse("2h", "x", now=10000) == 10000 - 7200
    assert timeparse.parse("1790000000", "x") == 1790000000
    assert timeparse.parse("2026-01-01T00:00", "x") == 1767225600
    assert timeparse.parse("", "x") == 0.0
    with pytest.raises(ValueError, match="not a time"):
        timeparse.parse("soonish", "--since")


def test_svg_is_well_formed() -> None:
    chart = stacked_columns([0, 60, 120], 60, {"allow": [1, 2, 3], "deny": [0, 5, 1]}, "t <&>")
    root = ET.fromstring(chart)
    assert root.tag.endswith("svg") and len(root.findall("{http://www.w3.org/2000/svg}rect")) >= 5
    ET.fromstring(hbars([("a<b", 3), ("c", 1)], "bars"))
    ET.fromstring(hbars([], "empty"))


def test_report_build_counts() -> None:
    records = [
        {
            "ts": 100,
            "kind": "decision",
            "verdict": "deny",
            "login": "a@x",
            "ip": "192.0.2.1",
            "protocol": "imap",
            "reasons": ["ip_failures"],
        },
        {
            "ts": 101,
            "kind": "decision",
            "verdict": "step_up",
            "login": "b@x",
            "ip": "192.0.2.2",
            "protocol": "web",
            "reasons": ["account_exposed"],
        },
        {
            "ts": 102,
            "kind": "report",
            "success": False,
            "login": "a@x",
            "ip": "192.0.2.1",
            "protocol": "imap",
        },
        {
            "ts": 103,
            "kind": "list_add",
            "list": "block",
            "by": "policy:ip_failures",
            "value": "192.0.2.1",
            "reason": "auto",
        },
        {
            "ts": 104,
            "kind": "list_add",
            "list": "block",
            "by": "operator:eve",
            "value": "192.0.2.0/24",
            "reason": "manual",
        },
        {
            "ts": 105,
            "kind": "posture",
            "protocol": "imap",
            "from": "normal",
            "to": "guarded",
            "by": "campaign:detector",
            "reason": "spray",
        },
        {
            "ts": 999,
            "kind": "decision",
            "verdict": "deny",
            "login": "z@x",
            "ip": "192.0.2.9",
            "protocol": "imap",
            "reasons": [],
        },
    ]
    r = report.build(records, 0, 500)
    assert r.totals["decisions"] == 2 and r.totals["failure"] == 1
    assert r.ips.most_common(1) == [("192.0.2.1", 2)]
    assert r.subnets["192.0.2.0/24"] == 3
    assert dict(r.exposed) == {"b@x": 1} and r.restricted == {"b@x"}
    assert r.auto_blocks == {"ip_failures": 1}
    assert len(r.campaigns) == 1 and len(r.postures) == 1
    whats = [a["what"] for a in r.actions]
    assert "added to block list: 192.0.2.0/24" in whats and any("posture" in w for w in whats)
    html = report.render(r)
    assert "<script" not in html and 'id="campaigns"' in html
