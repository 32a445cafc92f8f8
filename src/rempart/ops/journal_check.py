"""What the service's state holds that the journal lacks: the cross-check of `journal verify`.

Every list entry in force, every protocol posture and every console operator was put there by a
change that is journaled before it is acknowledged. This walks the journal once, keeps the last
record per list entry, protocol and operator, and names each piece of state whose last record is
missing or says otherwise (a record removed by hand, or lost by a crash before the fix).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.model import Protocol
from rempart.ops.journal import Journal
from rempart.ops.operators import fingerprint
from rempart.state.writer import decode_posture

OPERATOR_KINDS = ("operator_added", "operator_removed", "operator_password_changed")


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
    journal: Journal, data_dir: Path, operators: dict[str, str], now: float | None = None
) -> list[Missing]:
    """Each list entry in force, posture and operator (`operators`: name → password hash, as
    in operators.json) whose journal record is missing or says otherwise."""
    now = time.time() if now is None else now
    last_list: dict[tuple[str, str, str], str] = {}
    last_posture: dict[str, str] = {}
    last_operator: dict[str, dict[str, Any]] = {}
    for rec in journal.records(
        kinds=frozenset(("list_add", "list_del", "posture", *OPERATOR_KINDS))
    ):
        kind = rec.get("kind")
        if kind in ("list_add", "list_del"):
            key = (str(rec.get("list")), str(rec.get("entry_kind")), str(rec.get("value")))
            last_list[key] = kind
        elif kind == "posture":
            last_posture[str(rec.get("protocol"))] = str(rec.get("to"))
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
    for protocol, stored_posture in sorted(postures.items()):
        journaled = last_posture.get(protocol)
        try:
            # Stored as a posture record (a bare level before postures had records).
            level = decode_posture(Protocol(protocol), stored_posture).level.value
        except ValueError as exc:
            out.append(Missing("posture", protocol, f"unreadable in the state: {exc}"))
            continue
        if journaled != level:
            why = f"is {level!r}, but the journal " + (
                f"last set it to {journaled!r}" if journaled else "has no posture change for it"
            )
            out.append(Missing("posture", protocol, why))
    for name, stored in sorted(operators.items()):
        last = last_operator.get(name)
        if last is None or last.get("kind") == "operator_removed":
            out.append(Missing("operator", name, "exists, but the journal has no record of it"))
        elif last.get("fingerprint") != fingerprint(stored):
            out.append(Missing("operator", name, "its password changed without a journal record"))
    return out
