"""LeakCorpus: the in-memory, read-mostly leak corpus the engine asks (implements LeakOracle).

Opened from a data dir, it loads the live generation fully into memory; every lookup is pure CPU
(one or two BLAKE2b calls and bisects over sorted arrays, no I/O, no logging). `reload()` swaps in
a newer generation atomically (one attribute assignment), so lookups from other threads always see
a whole generation. Plaintext passwords pass through `fingerprint_password` and `password_check`
only as arguments; they are never stored or logged.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rempart.breach import store
from rempart.breach.accounts import ExposureClock, PasswordChanges
from rempart.breach.fingerprints import Fingerprinter
from rempart.breach.fpset import FingerprintSet
from rempart.breach.keyfile import load_or_create_key
from rempart.breach.popular import popular_passwords
from rempart.breach.settings import BreachSettings
from rempart.breach.strength import strength
from rempart.engine.keys import KeyError_, canonical_login
from rempart.model import Attempt


@dataclass(frozen=True, slots=True)
class PasswordFingerprint:
    """What the native API puts on the Attempt: `pair_fingerprint` and `password_popular`."""

    pair_fingerprint: bytes
    password_popular: bool


@dataclass(frozen=True, slots=True)
class _Snapshot:
    generation: str
    logins: FingerprintSet
    pairs: FingerprintSet
    dovecot: FingerprintSet
    dovecot_usable: bool
    exposed: dict[str, dict[str, Any]]
    restricted: frozenset[str]
    sources: list[dict[str, Any]]


class LeakCorpus:
    """The leak oracle over one data dir (see module docstring)."""

    def __init__(
        self, data_dir: Path | str, settings: BreachSettings | None = None, shared: bool = False
    ) -> None:
        self.data_dir = Path(data_dir)
        self.shared = shared  # fingerprints mapped from the files, shared by the host's processes
        self.settings = settings or BreachSettings()
        self._fpr = Fingerprinter(load_or_create_key(self.data_dir), self.settings.dovecot)
        self._popular = popular_passwords(self.settings.leaks.popular_top_n)
        self._changes = PasswordChanges(self.data_dir)
        self._changed = set(self._changes.all())  # logins with a reported password change
        self._clock = ExposureClock(self.data_dir)
        self._lock = threading.Lock()
        self._snap = self._load()

    @classmethod
    def open(cls, data_dir: Path | str, settings: BreachSettings | None = None) -> LeakCorpus:
        return cls(data_dir, settings)

    # ---- loading -------------------------------------------------------------------------
    def _load(self) -> _Snapshot:
        gen = store.load(self.data_dir, self._fpr.key_id, self.shared)
        exposed = {e["login"]: e for e in gen.exposed}
        tag = gen.meta.get("dovecot_tag", "")
        return _Snapshot(
            generation=gen.name,
            logins=FingerprintSet(gen.arrays["logins"]),
            pairs=FingerprintSet(gen.arrays["pairs"]),
            dovecot=FingerprintSet(gen.arrays["dovecot"]),
            dovecot_usable=bool(tag) and tag == self._fpr.dovecot_tag,
            exposed=exposed,
            restricted=self._restricted(exposed),
            sources=gen.sources,
        )

    def _restricted(self, exposed: dict[str, dict[str, Any]]) -> frozenset[str]:
        changes = self._changes.all()
        return frozenset(k for k, e in exposed.items() if changes.get(k, 0.0) < e["at"])

    def reload(self) -> bool:
        """Pick up a newer generation (after an ingest); True when something changed."""
        with self._lock:
            if store.current_name(self.data_dir) == self._snap.generation:
                return False
            self._snap = self._load()
            return True

    # ---- LeakOracle ------------------------------------------------------------------------
    def leaked_pair(self, attempt: Attempt) -> bool:
        snap = self._snap
        fp = attempt.pair_fingerprint
        if fp:
            return len(fp) == 8 and int.from_bytes(fp, "big") in snap.pairs
        if attempt.pwhash and snap.dovecot_usable:
            value = self._fpr.dovecot_fp(attempt.login, attempt.pwhash)
            return value is not None and value in snap.dovecot
        return False

    def login_exposed(self, login: str) -> bool:
        return self._fpr.login_fp(login) in self._snap.logins

    def account_restricted(self, login: str) -> bool:
        return login in self._snap.restricted

    def exposure_seen(self, login: str, now: float) -> float:
        # Once the password was changed, the old leaked one (a stale client, or the user setting
        # it again) gets no grace: only a still restricted account has one.
        if login in self._changed and login not in self._snap.restricted:
            return -math.inf
        return self._clock.first_seen(login, now)

    # ---- native API helpers --------------------------------------------------------------
    def canonical(self, login: str) -> str:
        return canonical_login(login, self.settings.logins)

    def fingerprint_password(self, login: str, password: str) -> PasswordFingerprint:
        """Fingerprint for `attempt.pair_fingerprint` / `password_popular` (raw login is fine)."""
        try:
            canon = self.canonical(login)
        except KeyError_:
            return PasswordFingerprint(b"", password in self._popular)
        return PasswordFingerprint(self._fpr.pair_fp(canon, password), password in self._popular)

    def password_changed(self, login: str) -> bool:
        """Record a password change (durable); lifts the restriction. True if it was restricted."""
        canon = self.canonical(login)
        self._changes.record(canon)
        self._changed.add(canon)
        with self._lock:
            snap = self._snap
            was = canon in snap.restricted
            if was:
                self._snap = replace(snap, restricted=snap.restricted - {canon})
        return was

    def password_check(self, login: str, password: str) -> dict[str, Any]:
        """Is this (new) password leaked for this login, popular, and how strong."""
        canon = self.canonical(login)
        snap = self._snap
        leaked = int.from_bytes(self._fpr.pair_fp(canon, password), "big") in snap.pairs
        popular = password in self._popular
        local, _, domain = canon.partition("@")
        score = strength(password, [x for x in (canon, local, domain, login) if x])
        acceptable = (
            not leaked and not popular and score["score"] >= self.settings.leaks.min_strength
        )
        return {
            "login": canon,
            "leaked": leaked,
            "popular": popular,
            "login_exposed": self._fpr.login_fp(canon) in snap.logins,
            "strength": score,
            "acceptable": acceptable,
        }

    # ---- reporting ---------------------------------------------------------------------------
    def exposed_accounts(self) -> list[dict[str, Any]]:
        """Accounts whose current password was found in a leak (login, source, date, restricted)."""
        snap = self._snap
        return [
            {
                "login": k,
                "source": e["source"],
                "date": e["date"],
                "restricted": k in snap.restricted,
            }
            for k, e in sorted(snap.exposed.items())
        ]

    def stats(self) -> dict[str, Any]:
        snap = self._snap
        return {
            "generation": snap.generation,
            "pairs": len(snap.pairs),
            "logins": len(snap.logins),
            "dovecot_pairs": len(snap.dovecot),
            "dovecot_usable": snap.dovecot_usable,
            "exposed_accounts": len(snap.exposed),
            "restricted_accounts": len(snap.restricted),
            "sources": snap.sources,
            "memory_bytes": snap.pairs.nbytes + snap.logins.nbytes + snap.dovecot.nbytes,
        }

    def close(self) -> None:
        self._clock.close()
        self._changes.close()
