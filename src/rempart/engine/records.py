"""The written form of engine events: the journal's record schema, written down once.

Every engine event becomes one flat JSON object with `ts` and `kind` first. The journal appends
these records (and chains them), the incident report reads them back, and replication sends
the change records (list, posture, reset) to the other nodes in this same form, parsed back
into events by `change_from_record`.

| kind       | fields after ts, kind                                                          |
|------------|--------------------------------------------------------------------------------|
| decision   | login, ip, protocol, [pwhash, device_id, user_agent], verdict, [delay_s], reasons |
| report     | login, ip, protocol, [pwhash, device_id, user_agent], success, [policy_reject, unknown_login] |
| list_add   | list, by, entry_kind, value, expires, reason (the entry was created at ts)    |
| list_del   | list, by, entry_kind, value, expires, reason                                   |
| familiar   | login, marker                                                                  |
| posture    | protocol, from, to, by, reason, ttl, figures, source, held, until              |
| reset      | login, ip, cleared                                                             |

`device_id` and `user_agent` are cut to 200 characters; `pwhash` keeps only the first
`PWHASH_KEPT` characters of the fingerprint received (never a password): Dovecot's full `pwhash`
(`hash_truncate_bits = 0`, which leak matching wants) is one SHA-256 of a nonce kept in the
config, the login and the password, and a journal that investigators export must not be a list
of crackable hashes of every password tried. Twelve bits still tell a retry of the same password
from a new one on an account (as Dovecot's default truncation does) and match thousands of
passwords in any dictionary. Operator-side events that do not pass through the engine (a
password change, a status notice) are journaled with their own kinds and free fields.
"""

from __future__ import annotations

import enum
from typing import Any, Final, TypeAlias, TypeGuard, assert_never

from rempart.engine.events import (
    CountersReset,
    Decided,
    EngineEvent,
    Familiar,
    FetchersLearned,
    ListAdded,
    ListRemoved,
    PostureChanged,
    Reported,
)
from rempart.engine.lists import ListEntry
from rempart.engine.posture import PostureRecord, PostureSource
from rempart.model import ACTION_LABELS, PROTOCOL_NAMES, Attempt, ListName, Posture, Protocol


class RecordKind(enum.StrEnum):
    DECISION = "decision"
    REPORT = "report"
    LIST_ADD = "list_add"
    LIST_DEL = "list_del"
    FAMILIAR = "familiar"
    POSTURE = "posture"
    RESET = "reset"


# The kinds of the records of every request, as plain str (equal to the members above).
_DECISION, _REPORT = str(RecordKind.DECISION.value), str(RecordKind.REPORT.value)


# The events with a record: all but the learned fetchers, internal state that only the
# StateWriter keeps, and a familiarity learned from another node's report, which that node
# journaled (`journaled` tells them apart: a node's journal holds what it was told).
RecordedEvent: TypeAlias = (
    Decided | Reported | ListAdded | ListRemoved | Familiar | PostureChanged | CountersReset
)


def journaled(event: EngineEvent) -> TypeGuard[RecordedEvent]:
    if isinstance(event, Familiar):
        return not event.from_peer
    return not isinstance(event, FetchersLearned)


# Records that change shared state, which replication carries to the other nodes.
CHANGE_KINDS = frozenset(
    {RecordKind.LIST_ADD, RecordKind.LIST_DEL, RecordKind.POSTURE, RecordKind.RESET}
)


def micros(now: float) -> float:
    """The time to the microsecond (a third of the cost of `round(now, 6)`)."""
    return int(now * 1e6) / 1e6


# Characters of a `pwhash` a record keeps: 12 bits of Dovecot's hex fingerprint (see above).
PWHASH_KEPT: Final = 3


def _attempt_record(kind: str, now: float, a: Attempt) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": micros(now),
        "kind": kind,
        "login": a.login,
        "ip": a.ip,
        "protocol": PROTOCOL_NAMES[a.protocol],
    }
    if a.pwhash:
        rec["pwhash"] = a.pwhash[:PWHASH_KEPT]
    if a.device_id:
        rec["device_id"] = a.device_id[:200]
    if a.user_agent:
        rec["user_agent"] = a.user_agent[:200]
    return rec


def _list_record(kind: str, now: float, which: ListName, e: ListEntry, by: str) -> dict[str, Any]:
    # "entry_kind", not "kind": the record's own "kind" (list_add / list_del) must survive.
    return {
        "ts": micros(now),
        "kind": kind,
        "list": which.value,
        "by": by,
        "entry_kind": e.kind,
        "value": e.value,
        "expires": e.expires,
        "reason": e.reason,
    }


def event_record(event: RecordedEvent) -> dict[str, Any]:
    """The record of an engine event (without the journal's chain fields)."""
    # The two kinds of every request first, by plain attribute reads (a class pattern of `match`
    # reads each field through getattr).
    if isinstance(event, Decided):
        v = event.verdict
        rec = _attempt_record(_DECISION, event.at, event.attempt)
        rec["verdict"] = ACTION_LABELS[v.action]
        if v.delay_s:
            rec["delay_s"] = v.delay_s
        rec["reasons"] = [r.code for r in v.reasons]
        return rec
    if isinstance(event, Reported):
        o = event.outcome
        rec = _attempt_record(_REPORT, event.at, event.attempt)
        rec["success"] = o.success
        if o.policy_reject:
            rec["policy_reject"] = True
        if o.unknown_login:
            rec["unknown_login"] = True
        return rec
    match event:
        case ListAdded(at=at, list=which, entry=entry, by=by):
            return _list_record(RecordKind.LIST_ADD, at, which, entry, by)
        case ListRemoved(at=at, list=which, entry=entry, by=by):
            return _list_record(RecordKind.LIST_DEL, at, which, entry, by)
        case Familiar(at=at, login=login, marker=marker):
            return {"ts": micros(at), "kind": RecordKind.FAMILIAR, "login": login, "marker": marker}
        case PostureChanged(at=at, before=before, record=r, figures=figures, ttl=ttl):
            return {
                "ts": micros(at),
                "kind": RecordKind.POSTURE,
                "protocol": r.protocol.value,
                "from": before.value,
                "to": r.level.value,
                "by": r.by,
                "reason": r.reason,
                "ttl": ttl,
                "figures": figures,
                "source": r.source.value,
                "held": r.held,
                "until": r.until,
            }
        case CountersReset(at=at, login=login, ip=ip, cleared=cleared):
            return {
                "ts": micros(at),
                "kind": RecordKind.RESET,
                "login": login,
                "ip": ip,
                "cleared": cleared,
            }
    assert_never(event)


def posture_of_record(rec: dict[str, Any]) -> PostureRecord:
    """The posture record a `posture` record describes. Records written before postures had a
    source read as the detector's when `by` names it, else as an operator's hold."""
    by = str(rec.get("by", ""))
    legacy_detector = by.startswith(("campaign", "detector", "auto"))
    source = rec.get("source") or ("detector" if legacy_detector else "operator")
    until = rec.get("until")
    if "held" in rec:
        held = bool(rec["held"])
    else:
        held = source == "operator"
        ttl = float(rec.get("ttl") or 0)
        until = float(rec["ts"]) + ttl if ttl else None
    return PostureRecord(
        Protocol(rec["protocol"]),
        Posture.parse(str(rec["to"])),
        PostureSource(source),
        by,
        str(rec.get("reason", "")),
        float(rec["ts"]),
        None if until is None else float(until),
        held,
    )


def change_from_record(rec: dict[str, Any]) -> RecordedEvent:
    """The change event a list, posture or reset record describes; ValueError when the record
    is not one (or is malformed)."""
    try:
        kind = RecordKind(rec["kind"])
        at = float(rec["ts"])
        if kind in (RecordKind.LIST_ADD, RecordKind.LIST_DEL):
            entry = ListEntry(
                str(rec["entry_kind"]),
                str(rec["value"]),
                float(rec["expires"]),
                str(rec["reason"]),
                at,
            )
            cls = ListAdded if kind is RecordKind.LIST_ADD else ListRemoved
            return cls(at, ListName(rec["list"]), entry, str(rec.get("by", "")))
        if kind is RecordKind.POSTURE:
            record = posture_of_record(rec)
            return PostureChanged(at, Posture.parse(str(rec["from"])), record)
        if kind is RecordKind.RESET:
            return CountersReset(at, str(rec["login"]), str(rec["ip"]), int(rec.get("cleared", 0)))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {rec.get('kind')!r} record: {exc!r}") from None
    raise ValueError(f"{rec.get('kind')!r} records are not changes")
