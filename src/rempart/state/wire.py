"""What nodes send each other over Redis: typed, versioned records.

A report travels as a `ReportWire` (JSON object, batched by the Redis store); a change (list,
posture, counter reset) as a `ChangeWire` that carries the journal record of the change
(`rempart.engine.records`), so the one schema serves the journal, the reports and replication.
A node skips records of a newer version than it knows, counting them as apply errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr

from rempart.engine.events import Reported
from rempart.model import Attempt, Outcome, Protocol

WIRE_VERSION = 1
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
        a, o = event.attempt, event.outcome
        return cls(
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
        )

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
