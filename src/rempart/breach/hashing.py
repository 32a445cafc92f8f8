"""The ingest hot loop: a batch of raw lines in, sorted unique fingerprint arrays out.

This is the only per-line code of an ingest, kept in one function so that the per-line cost is
a parse, one canonicalisation and two or three C hash calls; the Dovecot fingerprints are combined
vectorised at the end of the batch (see fingerprints.py for the layout).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from rempart.breach.fingerprints import Fingerprinter
from rempart.breach.fpset import sorted_unique
from rempart.breach.parser import (
    R_CANON,
    R_EMPTY_LOGIN,
    fast_pattern,
    split_line,
    to_text,
    to_utf8,
)
from rempart.engine.keys import KeyError_, LoginRules, canonical_login

_FAST: dict[int, object] = {}

SAMPLE_LINES = 5
"""Line numbers kept per rejection reason for the summary."""

_EMPTY = np.zeros(0, dtype=np.uint64)


@dataclass
class Batch:
    """What one batch of lines contributed."""

    logins: np.ndarray = field(default_factory=lambda: _EMPTY)
    pairs: np.ndarray = field(default_factory=lambda: _EMPTY)
    dovecot: np.ndarray = field(default_factory=lambda: _EMPTY)
    lines: int = 0
    valid: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[int]] = field(default_factory=dict)
    audit: set[tuple[str, bytes]] = field(default_factory=set)
    accepted_lines: list[int] | None = None


def hash_lines(
    lines: Sequence[bytes],
    first_lineno: int,
    fpr: Fingerprinter,
    rules: LoginRules,
    max_password: int = 256,
    audit_logins: Collection[str] = (),
    all_utf8: bool = False,
    track_accepted: bool = False,
) -> Batch:
    """Parse and fingerprint `lines` (numbered from `first_lineno`), deduplicated and sorted.

    `all_utf8` may be set when the caller checked the whole block decodes as UTF-8 (skips the
    per-field check). Logins in `audit_logins` get their (login, password) kept for the audit,
    in memory only.
    """
    blake2b = hashlib.blake2b
    sha256 = hashlib.sha256
    k_login = fpr._k_login
    k_pair = fpr._k_pair
    nonce = fpr._nonce
    dovecot_on = fpr.dovecot.enabled
    fast = _FAST.get(max_password)
    if fast is None:
        fast = _FAST[max_password] = fast_pattern(max_password).fullmatch
    login_buf = bytearray()
    pair_buf = bytearray()
    dove_buf = bytearray()
    rejected: dict[str, int] = {}
    samples: dict[str, list[int]] = {}
    audit: set[tuple[str, bytes]] = set()
    accepted: list[int] | None = [] if track_accepted else None
    last_raw = b"\xff"
    canon_b = b""
    digest = b""
    pair_prefix = b""
    canon = ""
    valid = 0
    lineno = first_lineno - 1
    for line in lines:
        lineno += 1
        m = fast(line)  # type: ignore[operator]
        parts = m.groups() if m is not None else split_line(line, max_password)
        if parts.__class__ is str:
            reason = parts  # type: ignore[assignment]
        else:
            login_raw, password = parts  # type: ignore[misc]
            if not all_utf8:
                password = to_utf8(password)
            if login_raw != last_raw:
                try:
                    canon = canonical_login(
                        login_raw.decode() if all_utf8 else to_text(login_raw), rules
                    )
                except KeyError_:
                    canon = "\0"
                if not canon or canon[0] in "@\0":
                    reason = R_CANON if canon == "\0" else R_EMPTY_LOGIN
                    last_raw = b"\xff"
                    rejected[reason] = rejected.get(reason, 0) + 1
                    s = samples.setdefault(reason, [])
                    if len(s) < SAMPLE_LINES:
                        s.append(lineno)
                    continue
                last_raw = login_raw
                canon_b = canon.encode("utf-8", "surrogatepass")
                digest = blake2b(k_login + canon_b, digest_size=16).digest()
                pair_prefix = k_pair + canon_b + b"\0"
            login_buf += digest
            pair_buf += blake2b(pair_prefix + password, digest_size=8).digest()
            if dovecot_on:
                user = login_raw.lower() if all_utf8 else to_utf8(login_raw).lower()
                dove_buf += sha256(nonce + user + b"\0" + password).digest()[:8]
            if audit_logins and canon in audit_logins:
                audit.add((canon, password))
            if accepted is not None:
                accepted.append(lineno)
            valid += 1
            continue
        rejected[reason] = rejected.get(reason, 0) + 1
        s = samples.setdefault(reason, [])
        if len(s) < SAMPLE_LINES:
            s.append(lineno)
    ld = np.frombuffer(bytes(login_buf), dtype=">u8").reshape(-1, 2)
    logins = sorted_unique(ld[:, 0].astype(np.uint64))
    pairs = sorted_unique(np.frombuffer(bytes(pair_buf), dtype=">u8").astype(np.uint64))
    dovecot = _EMPTY
    if dovecot_on and valid:
        heads = np.frombuffer(bytes(dove_buf), dtype=">u8").astype(np.uint64)
        dovecot = sorted_unique(ld[:, 1].astype(np.uint64) ^ (heads >> np.uint64(fpr.shift)))
    return Batch(
        logins=logins,
        pairs=pairs,
        dovecot=dovecot,
        lines=len(lines),
        valid=valid,
        rejected=rejected,
        samples=samples,
        audit=audit,
        accepted_lines=accepted,
    )
