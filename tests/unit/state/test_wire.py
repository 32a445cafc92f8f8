"""Replication wire records: typed, versioned, refused when unreadable."""

from __future__ import annotations

import orjson
import pytest

from rempart.engine.events import Reported
from rempart.model import Attempt, Outcome, Protocol
from rempart.state.wire import WIRE_VERSION, ChangeWire, ReportWire, WireError


def test_a_report_round_trips_through_json() -> None:
    attempt = Attempt(
        "bob@example.org",
        "2001:db8::7",
        Protocol.WEB,
        "0abc",
        "dev-1",
        "Firefox",
        pair_fingerprint=b"\x01\x02",
        password_popular=True,
    )
    outcome = Outcome(success=False, policy_reject=True, unknown_login=True)
    wire = ReportWire.of(Reported(1.5, attempt, outcome))
    back = ReportWire.from_wire(orjson.loads(orjson.dumps(wire)))
    assert back == wire and back.v == WIRE_VERSION
    assert back.attempt() == attempt and back.outcome() == outcome


def test_newer_or_malformed_records_are_refused() -> None:
    data = orjson.loads(
        orjson.dumps(ReportWire.of(Reported(1.0, Attempt("a", "192.0.2.1"), Outcome(True))))
    )
    with pytest.raises(WireError, match="version 2"):
        ReportWire.from_wire({**data, "v": 2})
    with pytest.raises(WireError, match="malformed"):
        ReportWire.from_wire({**data, "extra": 1})
    with pytest.raises(WireError, match="object"):
        ReportWire.from_wire([1.0, "a"])
    # Refused when read (on the reader thread, record by record), not when applied.
    with pytest.raises(WireError, match="unknown protocol 'gopher'"):
        ReportWire.from_wire({**data, "protocol": "gopher"})
    with pytest.raises(WireError, match="node id"):
        ChangeWire.from_wire({"v": 1, "record": {}})
