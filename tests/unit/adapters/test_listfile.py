"""List files in getBL's shape: JSON lines and CSV, bad lines named by number, wforce's times,
and the `ip:value` keys of iplogin / ipja3 records (IPv6 included)."""

from __future__ import annotations

import io

import pytest

from rempart.adapters.listfile import (
    Record,
    RecordError,
    parse_time,
    read_records,
    record_from_dict,
    write_records,
)
from rempart.adapters.wforce import split_ip_prefix, wforce_time
from rempart.httpserver import HTTPError

RECORDS = [
    {"ip": "10.1.1.1/32", "expiration": "2026-Dec-01 09:33:38", "reason": "scan"},
    {"login": "bob@example.org", "expiration": "+infinity", "reason": "fraud, confirmed"},
    {"iplogin": "10.3.3.3:bpair", "expiration": "2030-Jan-02 00:00:00", "reason": ""},
]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_records_round_trip(fmt: str) -> None:
    out = io.StringIO()
    assert write_records(RECORDS, out, fmt) == 3
    read = list(read_records(io.StringIO(out.getvalue()), fmt))
    assert all(isinstance(r, Record) for r in read)
    assert [r.as_dict() for r in read if isinstance(r, Record)] == RECORDS
    assert [r.line for r in read if isinstance(r, Record)] == (
        [1, 2, 3] if fmt == "jsonl" else [2, 3, 4]
    )


def test_bad_lines_are_named_by_number() -> None:
    text = (
        "type,key,expiration,reason\n"
        "ip,10.0.0.1,+infinity,ok\n"
        "host,10.0.0.2,+infinity,unknown type\n"
        "\n"
        "ip,10.0.0.3,tomorrow,bad time\n"
        "login,,+infinity,empty\n"
        "ip,10.0.0.4,+infinity\n"
    )
    errors = [str(r) for r in read_records(io.StringIO(text), "csv") if isinstance(r, RecordError)]
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 5", "line 6", "line 7"]
    assert "type 'host'" in errors[0] and "2026-Dec-01" in errors[1]
    jsonl = '{"ip": "10.0.0.1", "expire_secs": 60}\n{oops\n{"ip": "a", "login": "b", "expire_secs": 1}\n'
    errors = [
        str(r) for r in read_records(io.StringIO(jsonl), "jsonl") if isinstance(r, RecordError)
    ]
    assert errors[0].startswith("line 2: not JSON") and errors[1].startswith(
        "line 3: needs exactly"
    )


def test_expire_secs_may_replace_expiration() -> None:
    record = record_from_dict({"ja3": "771,1-2,0", "expire_secs": 60, "reason": "r"})
    assert record.as_dict() == {"ja3": "771,1-2,0", "expire_secs": 60.0, "reason": "r"}
    with pytest.raises(RecordError, match="expire_secs"):
        record_from_dict({"ja3": "x", "expire_secs": -1})


def test_wforce_times_read_back() -> None:
    assert wforce_time(0) == "+infinity" and parse_time("+infinity") == 0
    assert wforce_time(1796117618) == "2026-Dec-01 09:33:38"
    assert parse_time("2026-Dec-01 09:33:38") == 1796117618


def test_ip_prefix_of_iplogin_and_ipja3_keys() -> None:
    assert split_ip_prefix("10.3.3.3:bpair") == ("10.3.3.3", "bpair")
    assert split_ip_prefix("10.3.3.3:a:b") == ("10.3.3.3", "a:b")
    assert split_ip_prefix("2001:db8::1:771,1-2,0") == ("2001:db8::1", "771,1-2,0")
    assert split_ip_prefix("10.3.3.3::771,1-2,0") == ("10.3.3.3", "771,1-2,0")
    with pytest.raises(HTTPError):
        split_ip_prefix("nobody:here")
