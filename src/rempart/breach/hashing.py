"""The ingest hot loop: a batch of raw lines in, sorted unique fingerprint arrays out.

Lines go through in slices of `SLICE_LINES`. In each slice the common shape is parsed and
fingerprinted in bulk by the columnar fast path (fastpath.py); the other lines (URL prefixes,
`+tag`s, other encodings, junk) go one by one through the per-line path below, which is the
reference: a parse, one canonicalisation and two or three C hash calls. The per-line path also
gives every rejection, in line order, so the first rejected line numbers are those of the file.
The Dovecot fingerprints are combined vectorised at the end (see fingerprints.py for the layout).
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import compress, count
from operator import not_

import numpy as np

from rempart.breach import fastpath
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

SAMPLE_LINES = 5
"""Line numbers kept per rejection reason for the summary."""

SLICE_LINES = 1 << 14
"""Lines handled in bulk at a time: bounds the fast path's temporary lists (~3 MB); 4k to 256k
lines per slice measured within 3% of each other."""

_FAST: dict[int, Callable[[bytes], re.Match[bytes] | None]] = {}
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
    columnar: bool = True,
) -> Batch:
    """Parse and fingerprint `lines` (numbered from `first_lineno`), deduplicated and sorted.

    `all_utf8` may be set when the caller checked the whole block decodes as UTF-8 (skips the
    per-field check). Logins in `audit_logins` get their (login, password) kept for the audit,
    in memory only. `columnar=False` sends every line through the per-line path (for tests and
    the benchmark's comparison).
    """
    acc = _Accumulator(fpr, rules, max_password, audit_logins, all_utf8, track_accepted)
    with _without_cyclic_gc():
        for start in range(0, len(lines), SLICE_LINES):
            chunk = lines[start : start + SLICE_LINES]
            part = chunk if isinstance(chunk, list) else list(chunk)
            _add_slice(acc, part, first_lineno + start, columnar)
    return acc.batch(len(lines))


def _add_slice(acc: _Accumulator, part: list[bytes], first: int, columnar: bool) -> None:
    """Lines of one slice, numbered from `first`: fast-path lines in bulk, the others one by one."""
    columns = fastpath.split_block(part, acc.max_password) if columnar else None
    if columns is None:
        acc.add_slow(zip(count(first), part))
        return
    logins, passwords = columns
    slow = compress(count(first), map(not_, logins))
    acc.add_slow((n, part[n - first]) for n in slow)
    acc.add_fast(list(filter(None, logins)), list(compress(passwords, logins)))
    if acc.accepted is not None:
        acc.accepted.extend(compress(count(first), logins))


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """The fast path makes a tuple per line, none of them in a cycle; left on, the cyclic GC
    would walk them after every 700 (6% of the ingest time measured here)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Accumulator:
    """Fingerprints and rejections gathered over one batch, from both paths."""

    def __init__(
        self,
        fpr: Fingerprinter,
        rules: LoginRules,
        max_password: int,
        audit_logins: Collection[str],
        all_utf8: bool,
        track_accepted: bool,
    ) -> None:
        self.fpr = fpr
        self.rules = rules
        self.max_password = max_password
        self.audit_logins = audit_logins
        self.all_utf8 = all_utf8
        self.login_parts: list[np.ndarray] = []  # rows of (login fp, Dovecot mask)
        self.pair_parts: list[np.ndarray] = []
        self.dovecot_parts: list[np.ndarray] = []  # leading 8 bytes of Dovecot's sha256
        self.valid = 0
        self.rejected: dict[str, int] = {}
        self.samples: dict[str, list[int]] = {}
        self.audit: set[tuple[str, bytes]] = set()
        self.accepted: list[int] | None = [] if track_accepted else None

    def add_fast(self, logins: list[bytes], passwords: list[bytes]) -> None:
        """Lines the fast path split: canonicalise and fingerprint them in bulk."""
        if not logins:
            return
        canon, users = fastpath.canonical_columns(logins, self.rules)
        digests, pairs, dovecot = fastpath.fingerprint_columns(self.fpr, canon, users, passwords)
        self._add_digests(digests, pairs, dovecot, 32)
        self.valid += len(logins)
        if self.audit_logins:
            texts = list(map(bytes.decode, canon))
            wanted = map(self.audit_logins.__contains__, texts)
            self.audit.update(compress(zip(texts, passwords, strict=True), wanted))

    def _add_digests(self, logins: bytes, pairs: bytes, dovecot: bytes, dove_size: int) -> None:
        self.login_parts.append(np.frombuffer(logins, dtype=">u8").reshape(-1, 2))
        self.pair_parts.append(np.frombuffer(pairs, dtype=">u8"))
        if dovecot:
            heads = np.frombuffer(dovecot, dtype=">u8").reshape(-1, dove_size // 8)[:, 0]
            self.dovecot_parts.append(heads)

    def add_slow(self, numbered: Iterable[tuple[int, bytes]]) -> None:
        """The per-line path: (line number, line) pairs, in line order."""
        blake2b = hashlib.blake2b
        sha256 = hashlib.sha256
        fpr = self.fpr
        k_login = fpr._k_login
        k_pair = fpr._k_pair
        nonce = fpr._nonce
        dovecot_on = fpr.dovecot.enabled
        rules = self.rules
        max_password = self.max_password
        all_utf8 = self.all_utf8
        audit_logins = self.audit_logins
        audit = self.audit
        accepted = self.accepted
        rejected = self.rejected
        samples = self.samples
        fast = _FAST.get(max_password)
        if fast is None:
            fast = _FAST[max_password] = fast_pattern(max_password).fullmatch
        login_buf = bytearray()
        pair_buf = bytearray()
        dove_buf = bytearray()
        last_raw = b"\xff"
        canon_b = b""
        digest = b""
        pair_prefix = b""
        canon = ""
        valid = 0
        for lineno, line in numbered:
            m = fast(line)
            parts = m.groups() if m is not None else split_line(line, max_password)
            if isinstance(parts, str):
                reason = parts
            else:
                login_raw, password = parts
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
        self.valid += valid
        if valid:
            self._add_digests(bytes(login_buf), bytes(pair_buf), bytes(dove_buf), 8)

    def batch(self, lines: int) -> Batch:
        """Sorted unique arrays of everything added."""
        rows = _concat(self.login_parts).reshape(-1, 2)
        dovecot = _EMPTY
        if self.dovecot_parts:
            heads = _concat(self.dovecot_parts)
            dovecot = sorted_unique(rows[:, 1] ^ (heads >> np.uint64(self.fpr.shift)))
        return Batch(
            logins=sorted_unique(rows[:, 0]),
            pairs=sorted_unique(_concat(self.pair_parts)),
            dovecot=dovecot,
            lines=lines,
            valid=self.valid,
            rejected=self.rejected,
            samples=self.samples,
            audit=self.audit,
            accepted_lines=self.accepted,
        )


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """One native-order uint64 array of big-endian parts."""
    if not parts:
        return _EMPTY
    return np.concatenate(parts).astype(np.uint64)
