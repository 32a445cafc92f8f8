"""Replication wire records: typed, versioned, refused when unreadable."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rempart.engine.events import Reported
from rempart.model import Attempt, Outcome, Protocol
from rempart.state.wire import (
    ROWS_VERSION_FIELD,
    WIRE_VERSION,
    ChangeWire,
    ReportWire,
    WireError,
    report_row,
    reports_of_entry,
)

# A report with every field set, its fingerprint included.
ATTEMPT = Attempt(
    "bob@example.org",
    "2001:db8::7",
    Protocol.WEB,
    "0abc",
    "dev-1",
    "Firefox",
    pair_fingerprint=b"\x01\x02",
    password_popular=True,
)
OUTCOME = Outcome(success=False, policy_reject=True, unknown_login=True)


def test_a_report_round_trips_through_json() -> None:
    wire = ReportWire.of(Reported(1.5, ATTEMPT, OUTCOME))
    back = ReportWire.from_wire(orjson.loads(orjson.dumps(wire)))
    assert back == wire and back.v == WIRE_VERSION
    assert back.attempt() == ATTEMPT and back.outcome() == OUTCOME


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


def test_a_compact_report_row_decodes_to_the_attempt_and_outcome() -> None:
    event = Reported(1.5, ATTEMPT, OUTCOME)
    row = orjson.loads(orjson.dumps([report_row(event)]))
    assert reports_of_entry(ROWS_VERSION_FIELD, row) == [(ATTEMPT, OUTCOME, 1.5)]
    # The version 1 form (an object per report, no `v` on the entry) is still read.
    v1 = orjson.loads(orjson.dumps([ReportWire.of(event)]))
    assert reports_of_entry(None, v1) == [(ATTEMPT, OUTCOME, 1.5)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda row: row[:5], "array of 12 fields"),
        (lambda row: "not a row", "array of 12 fields"),
        (lambda row: ["soon", *row[1:]], "field 0 .time. must be a number"),
        (lambda row: [True, *row[1:]], "field 0 .time. must be a number"),
        (lambda row: [*row[:1], 7, *row[2:]], "field 1 must be a string, not int"),
        (lambda row: [*row[:3], "gopher", *row[4:]], "unknown protocol 'gopher'"),
        (lambda row: [*row[:7], 1, *row[8:]], "field 7 must be true or false, not 1"),
        (lambda row: [*row[:10], "zz", *row[11:]], "field 10 .pair fingerprint. is not hex"),
    ],
)
def test_malformed_report_rows_are_refused_with_the_field(change: Any, message: str) -> None:
    row = report_row(Reported(1.0, Attempt("a", "192.0.2.1"), Outcome(True)))
    with pytest.raises(WireError, match=message):
        reports_of_entry(ROWS_VERSION_FIELD, [change(row)])


def test_a_newer_entry_version_is_refused() -> None:
    row = report_row(Reported(1.0, Attempt("a", "192.0.2.1"), Outcome(True)))
    with pytest.raises(WireError, match="version '3'"):
        reports_of_entry(b"3", [row])
    with pytest.raises(WireError, match="must be an array"):
        reports_of_entry(ROWS_VERSION_FIELD, {"r": row})
