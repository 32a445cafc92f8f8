"""What nodes send each other over Redis: typed, versioned records.

A report travels as a `ReportWire` (JSON object, batched by the Redis store); a change (list,
posture, counter reset) as a `ChangeWire` that carries the journal record of the change
(`rempart.engine.records`), so the one schema serves the journal, the reports and replication.
A node skips records of a newer version than it knows, counting them as apply errors.

Reports travel in their compact form since version 2: a stream entry carries `"v": "2"` and
its records as JSON arrays of the fields of `ReportWire` in order (`report_row`), decoded
straight into the `Attempt` and `Outcome` the engine applies (`reports_of_entry`): no field
names repeated in every record, no intermediate object per record on the receiving node. An
entry without `v` holds version 1 objects, which are still read (a rolling upgrade).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr

from rempart.engine.events import Reported
from rempart.model import Attempt, Outcome, Protocol

WIRE_VERSION = 1
# The version of a stream entry of compact report rows (`report_row`).
ROWS_VERSION = 2
ROWS_VERSION_FIELD = b"2"
_ROW_FIELDS = 12
_PROTOCOLS: dict[str, Protocol] = {p.value: p for p in Protocol}


class WireError(ValueError):
    """A record this node cannot read (malformed, or of a newer version)."""


def _check_version(data: dict[str, Any]) -> None:
    version = data.get("v")
    if not isinstance(version, int) or not 1 <= version <= WIRE_VERSION:
        raise WireError(
            f"replication record of version {version!r} (this node reads 1..{WIRE_VERSION})"
        )


# A plain Python class even when compiled: orjson serializes it, and orjson 3.13 crashes on
# a mypyc native class with a float field (tests/unit/engine/test_compiled_equivalence.py).
# Not frozen: a frozen dataclass's __init__ sets each of its 13 fields through
# object.__setattr__, and every peer report is decoded into one (2.9 -> 1.2 us).
@mypyc_attr(native_class=False)
@dataclass(slots=True)
class ReportWire:
    at: float
    login: str
    ip: str
    protocol: str
    pwhash: str
    device_id: str
    user_agent: str
    success: bool
    policy_reject: bool
    unknown_login: bool
    pair_fingerprint: str  # hex ("" when none)
    password_popular: bool
    v: int = WIRE_VERSION

    @classmethod
    def of(cls, event: Reported) -> ReportWire:
        return cls(*report_row(event))  # one definition of the fields' order and form

    @classmethod
    def from_wire(cls, data: object) -> ReportWire:  # unchecked input: any JSON value
        if not isinstance(data, dict):
            raise WireError(f"a report record must be an object, not {type(data).__name__}")
        _check_version(data)
        try:
            record = cls(**data)
        except TypeError as exc:
            raise WireError(f"malformed report record: {exc}") from None
        if record.protocol not in _PROTOCOLS:
            raise WireError(f"unknown protocol {record.protocol!r} in a report record")
        return record

    def attempt(self) -> Attempt:
        protocol = _PROTOCOLS[self.protocol]  # checked by from_wire
        fingerprint = self.pair_fingerprint
        return Attempt(
            self.login,
            self.ip,
            protocol,
            self.pwhash,
            self.device_id,
            self.user_agent,
            pair_fingerprint=bytes.fromhex(fingerprint) if fingerprint else b"",
            password_popular=self.password_popular,
        )

    def outcome(self) -> Outcome:
        return Outcome(self.success, self.policy_reject, self.unknown_login)


def report_row(event: Reported) -> list[Any]:
    """A report in its compact wire form: `ReportWire`'s fields in order, without `v`."""
    a, o = event.attempt, event.outcome
    return [
        event.at,
        a.login,
        a.ip,
        a.protocol.value,
        a.pwhash,
        a.device_id,
        a.user_agent,
        o.success,
        o.policy_reject,
        o.unknown_login,
        a.pair_fingerprint.hex() if a.pair_fingerprint else "",
        a.password_popular,
    ]


def _text(row: list[Any], index: int) -> str:
    value = row[index]
    if type(value) is not str:
        raise WireError(f"report row field {index} must be a string, not {type(value).__name__}")
    return value


def _flag(row: list[Any], index: int) -> bool:
    value = row[index]
    if type(value) is not bool:
        raise WireError(f"report row field {index} must be true or false, not {value!r}")
    return value


PeerReport = tuple[Attempt, Outcome, float]


def report_from_row(row: object) -> PeerReport:  # unchecked input: any JSON value
    """The attempt, outcome and time of a compact report row; WireError when malformed."""
    if type(row) is not list or len(row) != _ROW_FIELDS:
        raise WireError(f"a report row must be an array of {_ROW_FIELDS} fields")
    at = row[0]
    if type(at) is not float and type(at) is not int:
        raise WireError(f"report row field 0 (time) must be a number, not {at!r}")
    protocol = _PROTOCOLS.get(_text(row, 3))
    if protocol is None:
        raise WireError(f"unknown protocol {row[3]!r} in a report row")
    fingerprint = _text(row, 10)
    try:
        pair_fingerprint = bytes.fromhex(fingerprint) if fingerprint else b""
    except ValueError:
        raise WireError("report row field 10 (pair fingerprint) is not hex") from None
    attempt = Attempt(
        _text(row, 1),
        _text(row, 2),
        protocol,
        _text(row, 4),
        _text(row, 5),
        _text(row, 6),
        pair_fingerprint=pair_fingerprint,
        password_popular=_flag(row, 11),
    )
    return attempt, Outcome(_flag(row, 7), _flag(row, 8), _flag(row, 9)), float(at)


def reports_of_entry(version: bytes | None, records: object) -> list[PeerReport]:
    """The reports of a stream entry (its `v` field, None for version 1, and its decoded `r`)."""
    if type(records) is not list:
        raise WireError("a stream entry's reports must be an array")
    if version is None:
        out: list[PeerReport] = []
        for data in records:
            wire = ReportWire.from_wire(data)
            out.append((wire.attempt(), wire.outcome(), wire.at))
        return out
    if version != ROWS_VERSION_FIELD:
        raise WireError(
            f"stream entry of version {version.decode(errors='replace')!r}"
            f" (this node reads 1..{ROWS_VERSION})"
        )
    return [report_from_row(row) for row in records]


@dataclass(frozen=True, slots=True)
class ChangeWire:
    node: str
    record: dict[str, Any]  # the journal record of the change
    v: int = WIRE_VERSION

    @classmethod
    def from_wire(cls, data: object) -> ChangeWire:  # unchecked input: any JSON value
        if not isinstance(data, dict):
            raise WireError(f"a change record must be an object, not {type(data).__name__}")
        _check_version(data)
        node, record = data.get("node"), data.get("record")
        if not isinstance(node, str) or not isinstance(record, dict):
            raise WireError("a change record needs a node id and a record")
        return cls(node, record, data["v"])
