"""The journal's hash chain: a record's hash, and a batch of records encoded as chained lines.

Kept apart from `rempart.ops.journal` (which subclasses nothing compiled but owns threads and
files) so that this loop, run for every decision and report, is compiled with the hot path.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson

from rempart.engine.records import RecordedEvent, event_record

log = logging.getLogger("rempart.ops.journal")


def chain_hash(prev: str, body: bytes) -> str:
    """Hash of a record: sha256 over the previous hash and the record's JSON without `hash`.

    The JSON keeps the record's key order, which `json.loads` preserves, so a verifier
    re-serialises exactly the bytes that were hashed.
    """
    return hashlib.sha256(prev.encode() + body).hexdigest()


def encode_lines(
    items: list[RecordedEvent | dict[str, Any]], seq: int, prev: str
) -> tuple[bytes, int, str]:
    """The chained JSON lines of `items` after record `seq` whose hash is `prev`, with the
    last sequence number and hash. An event that cannot be recorded is logged and skipped:
    a bad event must not fail a decision."""
    lines: list[bytes] = []
    dumps = orjson.dumps
    for item in items:
        try:
            rec = item if isinstance(item, dict) else event_record(item)
        except Exception:
            log.exception("journal: cannot record event %r", item)
            continue
        seq += 1
        rec["seq"] = seq
        rec["prev"] = prev
        body: bytes = dumps(rec)
        prev = chain_hash(prev, body)
        lines.append(body[:-1] + b',"hash":"' + prev.encode() + b'"}\n')
    return b"".join(lines), seq, prev
