"""List entries as records in wforce's `getBL` shape, and the files that carry them.

A record names one entry by wforce's key (`ip`, `login`, `iplogin`, `ja3` or `ipja3`) with its
`expiration` as wforce prints it (`2026-Dec-01 09:33:38` UTC, `+infinity` for never) and a
`reason`; on import `expire_secs` may stand in for `expiration`. Files are JSON lines (one record
a line, exactly what `getBL` lists) or CSV with the header `type,key,expiration,reason`. Reading
names every bad line by number; nothing here touches a list.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

TYPES = ("ip", "login", "iplogin", "ja3", "ipja3")
CSV_HEADER = ("type", "key", "expiration", "reason")
NEVER = "+infinity"
_TIME_FORMAT = "%Y-%b-%d %H:%M:%S"


class RecordError(ValueError):
    """A record or line that cannot be an entry; the message says why."""


@dataclass(frozen=True, slots=True)
class Record:
    """One entry as a file holds it, with the line it came from (0 when not from a file)."""

    type: str  # one of TYPES
    key: str
    expiration: str  # wforce's time, NEVER, or "" when expire_secs is given
    reason: str
    expire_secs: float | None = None
    line: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The record as `getBL` lists it (and the batch endpoint takes it)."""
        out: dict[str, Any] = {self.type: self.key, "reason": self.reason}
        if self.expire_secs is not None:
            out["expire_secs"] = self.expire_secs
        else:
            out["expiration"] = self.expiration
        return out


def parse_time(text: str) -> float:
    """UNIX time of a wforce expiration; 0 for never; RecordError otherwise."""
    text = text.strip()
    if text in (NEVER, "never", ""):
        return 0.0
    for fmt in (_TIME_FORMAT, _TIME_FORMAT + ".%f"):
        try:
            when = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return when.replace(tzinfo=dt.UTC).timestamp()
    raise RecordError(f"expiration {text[:40]!r} is not like 2026-Dec-01 09:33:38 or {NEVER}")


def record_from_dict(data: Any, line: int = 0) -> Record:
    """A record from a getBL-shaped object; RecordError naming what is wrong."""
    if not isinstance(data, dict):
        raise RecordError("not a JSON object")
    present = [t for t in TYPES if data.get(t) is not None]
    if len(present) != 1:
        raise RecordError(f"needs exactly one of {', '.join(TYPES)}")
    kind = present[0]
    key, reason = data[kind], data.get("reason", "")
    if not isinstance(key, str) or not key.strip():
        raise RecordError(f"{kind!r} must be a non-empty string")
    if not isinstance(reason, str):
        raise RecordError("'reason' must be a string")
    secs = data.get("expire_secs")
    if secs is not None:
        if isinstance(secs, bool) or not isinstance(secs, int | float) or secs < 0:
            raise RecordError("'expire_secs' must be a number >= 0")
        return Record(kind, key.strip(), "", reason, float(secs), line)
    expiration = data.get("expiration")
    if not isinstance(expiration, str):
        raise RecordError("needs 'expiration' (or 'expire_secs')")
    parse_time(expiration)
    return Record(kind, key.strip(), expiration.strip(), reason, None, line)


def read_records(stream: TextIO, fmt: str) -> Iterator[Record | RecordError]:
    """Every record of a file, or a RecordError carrying its line number, in order."""
    if fmt == "jsonl":
        for number, text in enumerate(stream, 1):
            if not text.strip():
                continue
            try:
                yield record_from_dict(json.loads(text), number)
            except json.JSONDecodeError as exc:
                yield RecordError(f"line {number}: not JSON ({exc.msg})")
            except RecordError as exc:
                yield RecordError(f"line {number}: {exc}")
        return
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip().lower() for h in header]
    if names[:4] != list(CSV_HEADER):
        yield RecordError(f"line 1: the header must be {','.join(CSV_HEADER)}")
        return
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield RecordError(f"line {number}: {len(row)} fields, the header has {len(names)}")
            continue
        cells = dict(zip(names, row, strict=True))
        kind = cells["type"].strip().lower()
        if kind not in TYPES:
            yield RecordError(f"line {number}: type {kind[:20]!r} is not one of {', '.join(TYPES)}")
            continue
        data: dict[str, Any] = {kind: cells["key"], "reason": cells["reason"]}
        if cells.get("expire_secs", "").strip():
            try:
                data["expire_secs"] = float(cells["expire_secs"])
            except ValueError:
                yield RecordError(f"line {number}: expire_secs is not a number")
                continue
        else:
            data["expiration"] = cells["expiration"]
        try:
            yield record_from_dict(data, number)
        except RecordError as exc:
            yield RecordError(f"line {number}: {exc}")


def write_records(records: Iterable[dict[str, Any]], stream: TextIO, fmt: str) -> int:
    """Write getBL-shaped records as JSON lines or CSV; the number written."""
    count = 0
    writer = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_HEADER)
    for data in records:
        if writer is None:
            stream.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            kind = next(t for t in TYPES if t in data)
            writer.writerow((kind, data[kind], data.get("expiration", ""), data.get("reason", "")))
        count += 1
    return count


def detect_format(name: str, given: str | None) -> str:
    """`csv` or `jsonl`, from --format or the file name."""
    if given:
        return given
    return "csv" if name.lower().endswith(".csv") else "jsonl"
