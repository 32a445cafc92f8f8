"""What the service's state holds that the journal lacks: the cross-check of `journal verify`.

Every list entry in force, every protocol posture and every console operator was put there by a
change that is journaled before it is acknowledged. This walks the journal once, keeps the last
record per list entry, protocol and operator, and names each piece of state whose last record is
missing or says otherwise (a record removed by hand, or lost by a crash before the fix).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rempart.engine.posture import PostureRecord
from rempart.engine.records import posture_of_record
from rempart.model import Protocol
from rempart.ops.host_journals import HostJournals
from rempart.ops.journal import Journal
from rempart.ops.operators import fingerprint
from rempart.state.writer import decode_posture

OPERATOR_KINDS = ("operator_added", "operator_removed", "operator_password_changed")
# A stored posture and the journal's last record of it agree on these (and `since` to the ms).
RECORD_FIELDS = tuple(f.name for f in fields(PostureRecord) if f.name not in ("protocol", "since"))


@dataclass(frozen=True, slots=True)
class Missing:
    what: str  # "block-list entry", "posture", "operator"
    key: str
    why: str

    def __str__(self) -> str:
        return f"{self.what} {self.key}: {self.why}"


def _state_rows(data_dir: Path) -> tuple[list[tuple[str, str, str, float]], dict[str, str]]:
    """(list entries as (list, kind, value, expires), postures by protocol), read-only."""
    path = data_dir / "state.sqlite3"
    if not path.exists():
        return [], {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        entries = db.execute("SELECT list, kind, value, expires FROM list_entries").fetchall()
        postures = dict(
            db.execute(
                "SELECT substr(key, 9), value FROM settings WHERE key LIKE 'posture.%'"
            ).fetchall()
        )
    finally:
        db.close()
    return entries, postures


def missing_records(
    journal: Journal | HostJournals,
    data_dir: Path,
    operators: dict[str, str],
    now: float | None = None,
) -> list[Missing]:
    """Each list entry in force, posture and operator (`operators`: name → password hash, as
    in operators.json) whose journal record is missing or says otherwise."""
    now = time.time() if now is None else now
    last_list: dict[tuple[str, str, str], str] = {}
    last_posture: dict[str, dict[str, Any]] = {}
    last_operator: dict[str, dict[str, Any]] = {}
    for rec in journal.records(
        kinds=frozenset(("list_add", "list_del", "posture", *OPERATOR_KINDS))
    ):
        kind = rec.get("kind")
        if kind in ("list_add", "list_del"):
            key = (str(rec.get("list")), str(rec.get("entry_kind")), str(rec.get("value")))
            last_list[key] = kind
        elif kind == "posture":
            last_posture[str(rec.get("protocol"))] = rec
        else:
            last_operator[str(rec.get("operator"))] = rec
    out: list[Missing] = []
    entries, postures = _state_rows(data_dir)
    for which, kind, value, expires in sorted(entries):
        if expires and expires <= now:
            continue  # expired: no longer in force
        found = last_list.get((which, kind, value))
        if found != "list_add":
            why = "in force, but the journal has no record of its addition"
            if found == "list_del":
                why = "in force, but the journal's last record of it is a removal"
            out.append(Missing(f"{which}-list entry", f"{kind} {value}", why))
    for protocol, value in sorted(postures.items()):
        why = _posture_mismatch(protocol, value, last_posture.get(protocol))
        if why:
            out.append(Missing("posture", protocol, why))
    for name, stored in sorted(operators.items()):
        last = last_operator.get(name)
        if last is None or last.get("kind") == "operator_removed":
            out.append(Missing("operator", name, "exists, but the journal has no record of it"))
        elif last.get("fingerprint") != fingerprint(stored):
            out.append(Missing("operator", name, "its password changed without a journal record"))
    return out


def _posture_mismatch(protocol: str, stored: str, rec: dict[str, Any] | None) -> str:
    """Why the stored posture record and the journal's last record of it disagree ("" when
    they agree: same level, source, author, reason, hold and end, `since` to the ms)."""
    try:
        state = decode_posture(Protocol(protocol), stored)
    except ValueError as exc:
        return f"unreadable in the state ({exc})"
    if rec is None:
        return f"is {state.level.value!r}, but the journal has no posture change for it"
    try:
        journaled = posture_of_record(rec)
    except (KeyError, TypeError, ValueError) as exc:
        return (
            f"is {state.level.value!r}, but the journal's last record of it is unreadable ({exc})"
        )
    if state.level is not journaled.level:
        return f"is {state.level.value!r}, but the journal last set it to {journaled.level.value!r}"
    differ = [name for name in RECORD_FIELDS if getattr(state, name) != getattr(journaled, name)]
    if abs(state.since - journaled.since) > 1e-3:
        differ.append("since")
    if differ:
        return f"its {', '.join(differ)} differ from the journal's last record of it"
    return ""
